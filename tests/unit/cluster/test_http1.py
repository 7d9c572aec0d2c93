"""The client's HTTP/1.1 calls: every way an answer's body may end, connections kept and not kept, and a kept
connection that the server closed under a call."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from superpod.cluster import http1

Script = Callable[[int, int, bytes], bytes | Awaitable[bytes | None] | None]
"""(connection number, call number on it, the call as received) -> the bytes to answer, or None to close the
connection without an answer."""


class Server:
    """A raw HTTP/1.1 server on 127.0.0.1 that answers each call as its script says and records what came."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.close_after: set[tuple[int, int]] = set()  # (connection, call): closed once it is answered
        self.connections = 0
        self.calls: list[tuple[int, bytes]] = []  # (connection number, the call's request line and headers)
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            for call in range(1_000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                self.bodies.append(await reader.readexactly(length))
                self.calls.append((number, head))
                answer = self.script(number, call, head)
                if inspect.isawaitable(answer):
                    answer = await answer
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if (number, call) in self.close_after:
                    return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(script: Script) -> AsyncIterator[tuple[Server, str]]:
    server = Server(script)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        listening.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"{header}\r\n" for header in headers)
    return f"HTTP/1.1 {status}\r\n{lines}\r\n".encode() + body


def sized(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    return answer(body, f"Content-Length: {len(body)}", *headers, status=status)


async def test_calls_on_one_connection_are_answered_in_turn_and_it_is_kept():
    async with serving(lambda conn, call, head: sized(b'{"n": %d}' % call)) as (server, url):
        pool = http1.Pool(url, headers={"Authorization": "Bearer t"})
        try:
            answers = [await pool.request("GET", f"/api/v1/nodes/n{i}") for i in range(3)]
        finally:
            await pool.close()
    assert answers == [(200, b'{"n": 0}'), (200, b'{"n": 1}'), (200, b'{"n": 2}')]
    assert server.connections == 1
    assert [head.split(b"\r\n")[0] for _, head in server.calls] == [
        b"GET /api/v1/nodes/n0 HTTP/1.1",
        b"GET /api/v1/nodes/n1 HTTP/1.1",
        b"GET /api/v1/nodes/n2 HTTP/1.1",
    ]
    assert all(b"\r\nAuthorization: Bearer t\r\n" in head for _, head in server.calls)
    assert all(b"\r\nHost: 127.0.0.1:" in head for _, head in server.calls)


async def test_a_body_is_sent_with_its_type_and_length():
    async with serving(lambda conn, call, head: sized(b"{}")) as (server, url):
        pool = http1.Pool(url)
        try:
            await pool.request("PATCH", "/x", b'{"a": 1}', "application/merge-patch+json")
            await pool.request("POST", "/y")
        finally:
            await pool.close()
    patch, post = (head for _, head in server.calls)
    assert b"\r\nContent-Type: application/merge-patch+json\r\n" in patch
    assert b"\r\nContent-Length: 8\r\n" in patch
    assert b"\r\nContent-Length: 0\r\n" in post
    assert server.bodies == [b'{"a": 1}', b""]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            answer(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
            id="chunked",
        ),
        pytest.param(
            answer(b"C\r\nhello, world\r\n0\r\nX-Trailer: 1\r\n\r\n", "Transfer-Encoding: chunked"),
            id="chunked with a trailer",
        ),
        pytest.param(sized(b"hello, world"), id="with its length"),
        pytest.param(
            answer(b"hello, world", "content-length:   12", "connection: keep-alive"),
            id="headers in any case",
        ),
    ],
)
async def test_a_body_is_read_whole_however_it_is_framed_and_the_connection_kept(raw: bytes):
    async with serving(lambda conn, call, head: raw) as (server, url):
        pool = http1.Pool(url)
        try:
            first = await pool.request("GET", "/a")
            second = await pool.request("GET", "/b")
        finally:
            await pool.close()
    assert first == second == (200, b"hello, world")
    assert server.connections == 1


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(sized(b"bye", "Connection: close"), id="Connection: close"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nbye", id="HTTP/1.0"),
        pytest.param(answer(b"bye"), id="a body that ends with the connection"),
    ],
)
async def test_a_connection_the_answer_closes_is_not_used_again(raw: bytes):
    async with serving(lambda conn, call, head: raw) as (server, url):
        server.close_after.update({(1, 0), (2, 0)})  # as the answer says
        pool = http1.Pool(url)
        try:
            answers = [await pool.request("GET", "/a") for _ in range(2)]
        finally:
            await pool.close()
    assert answers == [(200, b"bye"), (200, b"bye")]
    assert server.connections == 2


async def test_an_answer_without_a_body_by_its_status_is_not_waited_for():
    async with serving(lambda conn, call, head: answer(b"", status="204 No Content")) as (_, url):
        pool = http1.Pool(url)
        try:
            assert await asyncio.wait_for(pool.request("DELETE", "/a"), 2) == (204, b"")
        finally:
            await pool.close()


async def test_an_interim_answer_is_skipped():
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + sized(b"done", status="201 Created")
    async with serving(lambda conn, call, head: raw) as (_, url):
        pool = http1.Pool(url)
        try:
            assert await pool.request("POST", "/a", b"{}") == (201, b"done")
        finally:
            await pool.close()


async def test_a_kept_connection_closed_under_a_repeatable_call_sends_it_again_on_a_new_one():
    """The server answers the first call and closes the connection when the second comes (an idle timeout
    racing the call): the GET is sent once more, on a new connection, and answered."""

    def script(conn: int, call: int, head: bytes) -> bytes | None:
        return None if (conn, call) == (1, 1) else sized(b"ok")

    async with serving(script) as (server, url):
        pool = http1.Pool(url)
        try:
            assert await pool.request("GET", "/a") == (200, b"ok")
            assert await pool.request("GET", "/b") == (200, b"ok")
        finally:
            await pool.close()
    assert [(conn, head.split(b" ")[1]) for conn, head in server.calls] == [
        (1, b"/a"),
        (1, b"/b"),
        (2, b"/b"),
    ]


async def test_a_kept_connection_closed_under_a_create_does_not_send_it_twice():
    def script(conn: int, call: int, head: bytes) -> bytes | None:
        return None if (conn, call) == (1, 1) else sized(b"ok")

    async with serving(script) as (server, url):
        pool = http1.Pool(url)
        try:
            await pool.request("GET", "/a")
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await pool.request("POST", "/b", b"{}")
            assert await pool.request("GET", "/c") == (200, b"ok")
        finally:
            await pool.close()
    assert [head.split(b" ")[1] for _, head in server.calls] == [b"/a", b"/b", b"/c"]


async def test_a_connection_the_server_closed_while_idle_is_not_used():
    async with serving(lambda conn, call, head: sized(b"ok")) as (server, url):
        server.close_after.add((1, 0))
        pool = http1.Pool(url)
        try:
            await pool.request("GET", "/a")
            await asyncio.sleep(0.1)  # the server's close reaches the client's side
            assert await pool.request("POST", "/b", b"{}") == (200, b"ok")
        finally:
            await pool.close()
    assert server.connections == 2
    assert [conn for conn, _ in server.calls] == [1, 2]


async def test_an_answer_cut_short_is_an_error_and_its_connection_dropped():
    def script(conn: int, call: int, head: bytes) -> bytes | None:
        return answer(b"hel", "Content-Length: 12") if conn == 1 else sized(b"ok")

    async with serving(script) as (server, url):
        server.close_after.add((1, 0))  # the server goes away mid-answer
        pool = http1.Pool(url)
        try:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await pool.request("GET", "/a")
            assert await pool.request("GET", "/b") == (200, b"ok")
        finally:
            await pool.close()
    assert server.connections == 2


async def test_an_answer_that_is_not_http_is_an_error():
    async with serving(lambda conn, call, head: b"SSH-2.0-OpenSSH\r\n\r\n") as (_, url):
        pool = http1.Pool(url)
        try:
            with pytest.raises(aiohttp.ClientPayloadError):
                await pool.request("GET", "/a")
        finally:
            await pool.close()


async def test_a_server_that_is_not_there_is_a_connection_error():
    listening = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    pool = http1.Pool(f"http://127.0.0.1:{port}")
    with pytest.raises(aiohttp.ClientConnectionError):
        await pool.request("GET", "/a")


async def test_a_call_abandoned_mid_answer_leaves_no_connection_to_be_used_again():
    """A timeout between the call and its answer: the late answer must not be read as the next call's."""
    received, release = asyncio.Event(), asyncio.Event()

    async def script(conn: int, call: int, head: bytes) -> bytes:
        if head.startswith(b"GET /slow"):
            received.set()
            await release.wait()
            return sized(b"late")
        return sized(b"answer %d.%d" % (conn, call))

    async with serving(script) as (server, url):
        pool = http1.Pool(url)
        try:
            assert await pool.request("GET", "/warm") == (200, b"answer 1.0")  # one kept connection
            call = asyncio.ensure_future(pool.request("GET", "/slow"))
            await received.wait()
            call.cancel()  # abandoned after it was sent, before its answer came
            with pytest.raises(asyncio.CancelledError):
                await call
            release.set()
            await asyncio.sleep(0.05)  # the late answer is written (to a closed connection)
            assert await pool.request("GET", "/next") == (200, b"answer 2.0")
        finally:
            await pool.close()
    assert server.connections == 2


def test_a_server_url_with_a_path_prefixes_every_call():
    pool = http1.Pool("https://proxy.example:8443/k8s/clusters/c-1/")
    assert (pool.host, pool.port, pool.prefix) == ("proxy.example", 8443, "/k8s/clusters/c-1")
    assert http1.Pool("http://10.0.0.1").port == 80
    assert http1.Pool("https://10.0.0.1").port == 443
    with pytest.raises(ValueError):
        http1.Pool("10.0.0.1:6443")


async def test_a_call_is_judged_once_its_connection_is_open_and_a_refused_one_is_never_sent():
    """The write guard's fence: a process paused while connecting must not send, once resumed, a call judged
    before the pause; so `check` runs when the bytes are about to go out, on an open connection."""

    class Refused(Exception):
        pass

    async with serving(lambda conn, call, head: sized(b"{}")) as (server, url):
        pool = http1.Pool(url)
        seen: list[int] = []
        try:

            def judged() -> None:
                seen.append(server.connections)  # the server has accepted the connection by now

            assert await pool.request("POST", "/api/v1/namespaces/a/configmaps", b"{}", None, judged) == (
                200,
                b"{}",
            )

            def refuse() -> None:
                raise Refused()

            with pytest.raises(Refused):
                await pool.request("POST", "/api/v1/namespaces/a/configmaps", b"{}", None, refuse)
            await asyncio.sleep(0.1)
        finally:
            await pool.close()
    assert seen == [1]
    assert len(server.calls) == 1  # the refused call never reached the server
