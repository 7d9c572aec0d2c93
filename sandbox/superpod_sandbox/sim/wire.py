"""The simulated kubelets' and device plugins' writes: HTTP/1.1 on a few kept-alive connections, nothing more.

A SuperCluster's simulator stands for 65,536 kubelets and as many device plugins: registering them is 131,072
POSTs, and their heartbeats and refreshes are hundreds of writes a second. Through aiohttp's client (the
operator's `KubeClient`) each request cost the simulator about as much CPU as the API server spent serving it
(its session, request, response, timer and connector objects, measured at 45% of the simulator's samples under
`py-spy`). `Connections` sends the same requests and reads the same answers with what a kubelet's write needs
and no more: a request line, headers and a JSON body out, a status, `Content-Length` or chunked body back,
over a pool of connections each carrying one request at a time. Answers and errors are the client's
(`client.ApiError` with kube's Status), its retries too: a transient failure (429, 5xx, a broken connection) is
retried for every method but POST.

Reads and watches stay on the operator's `KubeClient` (`clusterview`), made by `kube_client` with this
package's JSON codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from superpod.cluster import client

from superpod_sandbox import codec

JSON = dict[str, Any]


def kube_client(credentials: client.Credentials, **options: Any) -> client.KubeClient:
    """`client.KubeClient(credentials, **options)` encoding and decoding with `codec` (orjson)."""
    return client.KubeClient(credentials, dumps=codec.dumps, loads=codec.loads, **options)


class _Stale(Exception):
    """A kept-alive connection the server had closed before it read the request: nothing was done."""


class Connections:
    """At most `size` connections to the API server of `credentials`. Use as `async with`."""

    def __init__(self, credentials: client.Credentials, *, size: int = 32, timeout: float = 120.0) -> None:
        address = urlsplit(credentials.server)
        self._host = address.hostname or "127.0.0.1"
        self._port = address.port or (443 if address.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = (
            client.tls_context(credentials) if address.scheme == "https" else None
        )
        headers = f"Host: {address.netloc}\r\nAccept: application/json\r\nUser-Agent: superpod-sim\r\n"
        if credentials.token:
            headers += f"Authorization: Bearer {credentials.token}\r\n"
        self._headers = headers
        self._timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def __aenter__(self) -> Connections:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(
        self, path: str, body: Any, *, content_type: str = client.MERGE_PATCH, **params: str
    ) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params or None)

    async def get(self, path: str, **params: str) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def get_or_none(self, path: str) -> JSON | None:
        try:
            return await self.get(path)
        except client.ApiError as error:
            if error.status == 404:
                return None
            raise

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        """One API call, as `client.KubeClient.request` makes it (the same retries, answers and errors)."""
        target = path + ("?" + urlencode(params) if params else "")
        data = b"" if body is None else codec.dumps(body)
        head = f"{method} {target} HTTP/1.1\r\n{self._headers}"
        if body is not None:
            head += f"Content-Type: {content_type}\r\n"
        message = f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        attempts = 1 + (0 if method == "POST" else client.RETRIES)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                async with asyncio.timeout(self._timeout):  # no task per request, unlike wait_for
                    status, raw = await self._exchange(message)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
                if last:
                    raise
            else:
                try:
                    payload: JSON = codec.loads(raw) if raw else {}
                except ValueError:  # not kube's answer (a proxy's error page)
                    payload = {"message": raw[:500].decode(errors="replace")}
                if status < 300:
                    return payload
                if last or status not in client.TRANSIENT:
                    raise client.ApiError(status, payload)
            await asyncio.sleep(client.BACKOFF * 2**attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def _exchange(self, message: bytes) -> tuple[int, bytes]:
        async with self._slots:
            while self._idle:  # a kept-alive connection the server may have closed meanwhile: then a new one
                connection = self._idle.pop()
                try:
                    return await self._on(connection, message, reused=True)
                except _Stale:
                    continue
            connection = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
            return await self._on(connection, message, reused=False)

    async def _on(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], message: bytes, *, reused: bool
    ) -> tuple[int, bytes]:
        reader, writer = connection
        keep = False
        try:
            writer.write(message)
            try:
                status_line = await reader.readuntil(b"\r\n")
            except asyncio.IncompleteReadError as eof:
                if reused and not eof.partial:
                    raise _Stale from None
                raise
            except ConnectionResetError:
                if reused:  # reset before a byte of the answer: closed before the request was read
                    raise _Stale from None
                raise
            status = int(status_line.split(b" ", 2)[1])
            headers = (await reader.readuntil(b"\r\n\r\n")).lower()
            fields = dict(line.split(b":", 1) for line in headers.split(b"\r\n") if b":" in line)
            if fields.get(b"transfer-encoding", b"").strip() == b"chunked":
                raw = await _chunked(reader)
            elif b"content-length" in fields:
                raw = await reader.readexactly(int(fields[b"content-length"]))
            else:  # the answer ends with the connection
                raw = await reader.read()
                return status, raw
            keep = fields.get(b"connection", b"").strip() != b"close"
            return status, raw
        finally:
            if keep:
                self._idle.append(connection)
            else:
                writer.close()


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            await _trailers(reader)
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the chunk's CRLF


async def _trailers(reader: asyncio.StreamReader) -> None:
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
