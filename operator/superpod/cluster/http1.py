"""HTTP/1.1 requests on kept-alive connections: the API client's calls that are not watches.

aiohttp's client builds, for every call, a URL object, a request and a response object, multidicts of headers,
timers and trace hooks, and parses the answer through its payload streams: about a fifth of the operator's CPU per
partition went there (docs/performance.md). A call here is one write of bytes (request line, fixed headers,
body) on a connection kept from an earlier call, and one read of the answer: its status, the three headers that
say how the body ends (`Content-Length`, `Transfer-Encoding: chunked`, `Connection: close`), and the body.
Nothing is asked for that is not read: no compression (`Accept-Encoding` is not sent), no cookies, no redirects
(the API server sends none to these calls), no HEAD calls (the client makes none). Watches, which stream for minutes, stay on aiohttp.

Failures look as aiohttp's do to the callers, so retries and error handling do not change: a connection that
cannot be made or written is `aiohttp.ClientOSError`, one the server closed before the whole answer came is
`aiohttp.ServerDisconnectedError` (both `aiohttp.ClientConnectionError`), an answer that is not HTTP is
`aiohttp.ClientPayloadError`. A connection is kept only after a complete answer that does not ask to close it,
and used again only while the server has not closed it and it has been idle less than `keepalive` seconds
(aiohttp's own default, 15 s; kube-apiserver keeps idle connections 90 s). A call on a kept connection that
finds it closed under it before any byte of the answer came is sent once more on a new connection when it is
repeatable (every method but POST), as aiohttp does and as RFC 9112 (section 9.3.1) allows; a POST is not.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

import aiohttp

KEEPALIVE = 15.0  # seconds a connection may sit idle and still be used again
BUFFER = 1 << 20  # bytes read ahead of the reader (and the longest status line, header or chunk-size line)
NO_BODY = frozenset({204, 304})
SAFE = "/:@!$&'()*+,;=-._~%?"  # what a path and query keep as they are: already quoted, or allowed


class Connection:
    """One TCP (or TLS) connection and when it was last answered on."""

    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float, keepalive: float) -> bool:
        return (
            now - self.idle_since < keepalive
            and not self.reader.at_eof()
            and not self.writer.transport.is_closing()
        )

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Kept-alive connections to one server, and calls on them. The caller bounds how many calls run at once
    (the client's turns), which bounds the connections too."""

    def __init__(
        self,
        server: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
        keepalive: float = KEEPALIVE,
    ) -> None:
        """`server`: `http(s)://host[:port][/prefix]`; `headers`: sent with every call (Authorization,
        User-Agent, Accept)."""
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) server URL: {server!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl_context = ssl_context if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        self.keepalive = keepalive
        host = parts.netloc.rpartition("@")[2]
        fixed = {"Host": host, **(headers or {})}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._idle: list[Connection] = []  # the most recently used last: it is the likeliest to be open
        self._busy: set[Connection] = set()

    async def close(self) -> None:
        for connection in [*self._idle, *self._busy]:
            connection.close()
        self._idle.clear()
        self._busy.clear()

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        content_type: str | None = None,
        check: Callable[[], None] | None = None,
    ) -> tuple[int, bytes]:
        """Send one call (`target`: path and query) and return the answer's status and body. `check` is called
        right before the call's bytes are written, with no wait between (not before a connection is opened:
        a process paused while connecting would send, once resumed, a call judged before the pause); what it
        raises ends the call unsent."""
        head = self._head(method, target, body, content_type)
        message = head + body if body else head
        connection = self._take()
        if connection is not None:
            try:
                return await self._exchange(connection, message, check)
            except _Unanswered:
                if method == "POST":  # it may have been received: never sent twice
                    raise aiohttp.ServerDisconnectedError() from None
        connection = await self._connect()
        try:
            return await self._exchange(connection, message, check)
        except _Unanswered:
            raise aiohttp.ServerDisconnectedError() from None

    def _head(self, method: str, target: str, body: bytes | None, content_type: str | None) -> bytes:
        path = self.prefix + (target if target.isascii() and " " not in target else quote(target, safe=SAFE))
        lines = f"{method} {path} HTTP/1.1\r\n"
        if body is not None:
            lines += f"Content-Type: {content_type or 'application/json'}\r\nContent-Length: {len(body)}\r\n"
        elif method not in ("GET", "DELETE"):
            lines += "Content-Length: 0\r\n"
        return lines.encode("latin-1") + self._fixed + b"\r\n"

    def _take(self) -> Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now, self.keepalive):
                return connection
            connection.close()
        return None

    async def _connect(self) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context is not None else None,
                limit=BUFFER,
            )
        except OSError as error:
            raise aiohttp.ClientOSError(
                error.errno, f"cannot connect to {self.host}:{self.port}: {error}"
            ) from error
        return Connection(reader, writer)

    async def _exchange(
        self, connection: Connection, message: bytes, check: Callable[[], None] | None = None
    ) -> tuple[int, bytes]:
        """Write the call and read its answer on `connection`; it goes back to the pool only after a complete
        answer that allows it. `_Unanswered` when the connection broke before any byte of the answer."""
        self._busy.add(connection)
        keep = False
        try:
            reader = connection.reader
            if check is not None:
                check()
            try:
                connection.writer.write(message)
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                if not error.partial:
                    raise _Unanswered() from error
                raise aiohttp.ServerDisconnectedError() from error
            except (ConnectionError, BrokenPipeError) as error:
                raise _Unanswered() from error
            status, length, chunked, close = _parse_head(head)
            while 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                status, length, chunked, close = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            if status in NO_BODY:
                data = b""
            elif chunked:
                data = await _read_chunked(reader)
            elif length is not None:
                data = await reader.readexactly(length)
            else:  # the body ends with the connection
                data = await reader.read()
                close = True
            keep = not close
            return status, data
        except asyncio.IncompleteReadError as error:
            raise aiohttp.ServerDisconnectedError() from error
        except asyncio.LimitOverrunError as error:
            raise aiohttp.ClientPayloadError(f"an answer's line is longer than {BUFFER} bytes") from error
        except OSError as error:
            if isinstance(error, aiohttp.ClientOSError):
                raise
            raise aiohttp.ClientOSError(error.errno, str(error)) from error
        finally:
            self._busy.discard(connection)
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:  # broken, closed by the server, or left mid-answer (a timeout, a cancellation)
                connection.close()


class _Unanswered(Exception):
    """The connection broke before any byte of the answer: the server may not have read the call."""


def _parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length or None, chunked, the server closes the connection) of a status line and its
    headers; `aiohttp.ClientPayloadError` when they are not HTTP/1.x."""
    lines = head.split(b"\r\n")
    first = lines[0]
    if not first.startswith(b"HTTP/1.") or len(first) < 12 or not first[9:12].isdigit():
        raise aiohttp.ClientPayloadError(f"not an HTTP/1 answer: {first[:80]!r}")
    status = int(first[9:12])
    close = first[7:8] == b"0"  # HTTP/1.0: closed unless it says keep-alive
    length: int | None = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError as error:
                raise aiohttp.ClientPayloadError(f"bad Content-Length: {value[:40]!r}") from error
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                close = False
    return status, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError as error:
            raise aiohttp.ClientPayloadError(f"bad chunk size: {line[:40]!r}") from error
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any, up to the blank line
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise aiohttp.ClientPayloadError("a chunk does not end with CRLF")
