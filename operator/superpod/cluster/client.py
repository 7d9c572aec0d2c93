"""A small async Kubernetes API client, for the writes kopf does not do for us.

kopf watches and patches the objects its handlers serve; the operator also reads Nodes and ConfigMaps, writes
rank-table ConfigMaps and Events, and the simulator drives a whole fleet. The official `kubernetes` client is
synchronous (a thread per call), so this thin client speaks JSON over HTTP/1.1 itself instead: its calls on
kept-alive connections of its own (`http1`), its watches on one aiohttp session.
Credentials come from a kubeconfig (the current context: token, client certificate, CA) or from the pod's
service account.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import random
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import yaml

from superpod.cluster import codec, http1

JSON = dict[str, Any]
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


TRANSIENT = frozenset({429, 500, 502, 503, 504})
RETRIES = 4
BACKOFF = 0.05  # seconds before the first retry; doubled each time, jittered


def _no_check() -> None:
    pass


class ApiError(Exception):
    """A non-2xx answer; carries the Kubernetes Status object."""

    def __init__(self, status: int, body: JSON) -> None:
        self.status = status
        self.body = body
        self.reason = str(body.get("reason", ""))
        super().__init__(f"{status} {self.reason}: {body.get('message', body)}")


@dataclasses.dataclass(frozen=True)
class Credentials:
    server: str
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def _materialise(data: str | None, path: str | None, base: Path) -> str | None:
    """kubeconfig allows inline base64 data or a file path; ssl wants files."""
    if data:
        with tempfile.NamedTemporaryFile(prefix="superpod-", suffix=".pem", delete=False) as handle:
            handle.write(base64.b64decode(data))
        return handle.name
    if path:
        return str((base / path).resolve())
    return None


def credentials_from_kubeconfig(path: str | os.PathLike[str] | None = None) -> Credentials:
    """Credentials of the current context of `path` (default: $KUBECONFIG, then ~/.kube/config)."""
    if path is None:
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
    file = Path(path)
    config = yaml.safe_load(file.read_text()) or {}
    contexts = {item["name"]: item.get("context") or {} for item in config.get("contexts", [])}
    context = contexts[config["current-context"]]
    cluster = next(
        item["cluster"] for item in config.get("clusters", []) if item["name"] == context["cluster"]
    )
    user = next(
        (item.get("user") or {} for item in config.get("users", []) if item["name"] == context.get("user")),
        {},
    )
    base = file.parent
    return Credentials(
        server=cluster["server"].rstrip("/"),
        ca_file=_materialise(
            cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        cert_file=_materialise(user.get("client-certificate-data"), user.get("client-certificate"), base),
        key_file=_materialise(user.get("client-key-data"), user.get("client-key"), base),
    )


def credentials_in_cluster() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    return Credentials(
        server=f"https://{host}:{port}",
        ca_file=str(SERVICE_ACCOUNT / "ca.crt"),
        token=(SERVICE_ACCOUNT / "token").read_text().strip(),
    )


def tls_context(credentials: Credentials) -> ssl.SSLContext:
    """The TLS client context of `credentials`: its CA (or none checked), its client certificate."""
    context = ssl.create_default_context(cafile=credentials.ca_file)
    if credentials.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if credentials.cert_file and credentials.key_file:
        context.load_cert_chain(credentials.cert_file, credentials.key_file)
    return context


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """`("v1", "pods", "ns", "p")` -> `/api/v1/namespaces/ns/pods/p`."""
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [prefix]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


WriteGuard = Callable[[str, str], contextlib.AbstractContextManager[Callable[[], None]]]
"""`guard(method, path)`: entered around every write; what it yields is called before each attempt and raises
to keep the write from going out (the operator's fencing: see superpod.controller.shards)."""


class KubeClient:
    """JSON over HTTP: calls on `http1`'s kept-alive connections, watches on one aiohttp session. Use as
    `async with KubeClient(credentials) as api:`."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        user_agent: str | None = None,
        connections: int = 64,
        dumps: Callable[[Any], str | bytes] = codec.dumps,
        loads: Callable[[bytes], Any] = codec.loads,
    ) -> None:
        """`connections`: at most this many at once (each open watch keeps one for itself). `dumps` and
        `loads`: the JSON codec of bodies, answers and watch events (`codec`: orjson; another must give and
        take the same documents as `json`'s)."""
        self.credentials = credentials
        self._dumps = dumps
        self._loads = loads
        self.user_agent = user_agent
        self._connections = connections
        self.write_guard: WriteGuard | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pool: http1.Pool | None = None
        # a request waits for its turn here, outside its timeout: aiohttp's timeout counts the wait for a pooled
        # connection, so with thousands queued (a burst's placements) each timed out before being sent, was
        # sent again, and the API server answered requests nobody waited for any more
        self._turns = asyncio.Semaphore(connections)

    async def __aenter__(self) -> KubeClient:
        ssl_context: ssl.SSLContext | bool = False
        if self.credentials.server.startswith("https"):
            ssl_context = tls_context(self.credentials)
        headers = {"Accept": "application/json"}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        if self.credentials.token:
            headers["Authorization"] = f"Bearer {self.credentials.token}"
        self._session = aiohttp.ClientSession(
            base_url=self.credentials.server,
            headers=headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(ssl=ssl_context, limit=self._connections),
            # the API server sets no cookies (client-go keeps none): no jar to consult and update per request
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self._pool = http1.Pool(
            self.credentials.server,
            ssl_context=ssl_context if isinstance(ssl_context, ssl.SSLContext) else None,
            headers=headers,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient used outside `async with`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        retries: int | None = None,
    ) -> JSON:
        """One API call. Transient failures (429, 5xx, a broken connection, a timeout) are retried with short
        jittered backoffs for every method but POST, whose repetition could create a second object; PATCH and
        PUT are safe to repeat (the same merge result, or a 409 when guarded by a resourceVersion that a
        first attempt already moved)."""
        url = path + ("?" + urlencode(params) if params else "")
        data = body if body is None or isinstance(body, str | bytes) else self._dumps(body)
        encoded = data.encode() if isinstance(data, str) else data
        attempts = 1 + (retries if retries is not None else (0 if method == "POST" else RETRIES))
        guard = self.write_guard if method != "GET" else None
        with guard(method, path) if guard is not None else contextlib.nullcontext(_no_check) as check:
            return await self._attempts(method, url, encoded, content_type, attempts, check)

    async def _attempts(
        self,
        method: str,
        url: str,
        data: bytes | None,
        content_type: str,
        attempts: int,
        check: Callable[[], None],
    ) -> JSON:
        if self._pool is None:
            raise RuntimeError("KubeClient used outside `async with`")
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                async with self._turns:
                    async with asyncio.timeout(self._timeout.total):
                        # JSON is UTF-8 (RFC 8259). The write guard judges the request as its bytes go out
                        # (`check`, in the pool), not when it was queued or before a connection was opened
                        status, raw = await self._pool.request(method, url, data, content_type, check)
                try:
                    payload: JSON = self._loads(raw) if raw else {}
                except ValueError:  # a proxy's or load balancer's error page
                    payload = {"message": raw[:500].decode(errors="replace")}
                if status < 300:
                    return payload
                if last or status not in TRANSIENT:
                    raise ApiError(status, payload)
            except TimeoutError as error:
                if last:  # aiohttp's timeout says nothing (an empty message): name the request
                    raise TimeoutError(
                        f"{method} {url}: no answer within {self._timeout.total:g} s"
                        + (f" (each of {attempts} attempts)" if attempts > 1 else "")
                    ) from error
            except aiohttp.ClientConnectionError:
                if last:
                    raise
            await asyncio.sleep(BACKOFF * 2**attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def get(self, path: str, **params: str) -> JSON:
        return await self.request("GET", path, params=params or None)

    async def get_or_none(self, path: str) -> JSON | None:
        try:
            return await self.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def list(self, path: str, **params: str) -> list[JSON]:
        """Every item, following `continue` tokens."""
        items: list[JSON] = []
        while True:
            page = await self.get(path, **params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params = {**params, "continue": token}

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def patch(self, path: str, body: Any, *, content_type: str = MERGE_PATCH, **params: str) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params or None)

    async def delete(self, path: str, **params: str) -> JSON | None:
        try:
            return await self.request("DELETE", path, params=params or None)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def watch(
        self, path: str, *, opened: Callable[[], None] | None = None, **params: str
    ) -> AsyncIterator[JSON]:
        """Watch events (`{"type": ..., "object": ...}`) until the server ends the stream; `opened` is called
        once the server has accepted the watch (before the first event, which may be long in coming)."""
        query = {**params, "watch": "true"}
        async with self.session.get(
            path + "?" + urlencode(query), timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        ) as response:
            if response.status >= 300:
                raw = await response.read()
                try:
                    body = self._loads(raw) if raw else {}
                except ValueError:  # a proxy's error page
                    body = {"message": raw[:500].decode(errors="replace")}
                raise ApiError(response.status, body if isinstance(body, dict) else {"message": str(body)})
            if opened is not None:
                opened()
            async for line in json_lines(response.content):
                yield self._loads(line)


async def json_lines(content: aiohttp.StreamReader, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
    """The non-empty lines of a stream, however long.

    aiohttp's own line reading (`async for line in content`) gives up on a line over its buffer's high-water
    mark (512 KiB) with `LineTooLong`; a watch event carries a whole object, which kube allows up to about
    1.5 MiB (a ConfigMap of 1 MiB, a partition status of thousands of slots). Lines are cut from chunks here,
    each byte looked at once however the chunks fall.
    """
    buffer = bytearray()
    async for chunk in content.iter_chunked(chunk_size):
        searched = len(buffer)  # the bytes before held no newline
        buffer += chunk
        start = 0
        end = buffer.find(b"\n", searched)
        while end >= 0:
            if buffer[start:end].strip():
                yield bytes(buffer[start:end])
            start = end + 1
            end = buffer.find(b"\n", start)
        del buffer[:start]
    if buffer.strip():
        yield bytes(buffer)
