"""The API client retries transient failures of repeatable calls, and never repeats a create."""

from __future__ import annotations

from aiohttp import web
from superpod.cluster import client


async def _server(failures: int, status: int = 503):
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            return web.json_response(
                {"kind": "Status", "code": status, "reason": "ServiceUnavailable"}, status=status
            )
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", calls


async def test_a_get_survives_two_unavailable_answers():
    runner, url, calls = await _server(failures=2)
    try:
        async with client.KubeClient(client.Credentials(server=url)) as api:
            assert (await api.get("/api/v1/configmaps/x"))["kind"] == "ConfigMap"
        assert calls == ["GET", "GET", "GET"]
    finally:
        await runner.cleanup()


async def test_a_create_is_never_repeated():
    runner, url, calls = await _server(failures=1)
    try:
        async with client.KubeClient(client.Credentials(server=url)) as api:
            try:
                await api.create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
            except client.ApiError as error:
                assert error.status == 503
            else:
                raise AssertionError("the 503 was hidden")
        assert calls == ["POST"]
    finally:
        await runner.cleanup()


async def test_a_definite_refusal_is_not_retried():
    runner, url, calls = await _server(failures=5, status=422)
    try:
        async with client.KubeClient(client.Credentials(server=url)) as api:
            try:
                await api.patch("/api/v1/namespaces/a/configmaps/x", {"data": {}})
            except client.ApiError as error:
                assert error.status == 422
        assert calls == ["PATCH"]
    finally:
        await runner.cleanup()


async def test_a_request_that_times_out_says_which_request_it_was():
    import asyncio

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with client.KubeClient(
            client.Credentials(server=f"http://127.0.0.1:{port}"), timeout=0.2
        ) as api:
            try:
                await api.create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
            except TimeoutError as error:
                assert str(error) == "POST /api/v1/namespaces/a/configmaps: no answer within 0.2 s"
            else:
                raise AssertionError("no timeout")
    finally:
        await runner.cleanup()


async def test_a_request_queued_behind_others_is_not_timed_out_by_the_queue():
    """Ten at once on two connections, each answered in 0.3 s with a 0.5 s timeout: the last waits 1.2 s for a
    connection, and is still answered; none is sent twice."""
    import asyncio

    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.method)
        await asyncio.sleep(0.3)
        return web.json_response({"kind": "ConfigMap"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        credentials = client.Credentials(server=f"http://127.0.0.1:{port}")
        async with client.KubeClient(credentials, timeout=0.5, connections=2) as api:
            answers = await asyncio.gather(*(api.patch(f"/api/v1/configmaps/c{i}", {}) for i in range(10)))
        assert [answer["kind"] for answer in answers] == ["ConfigMap"] * 10
        assert calls == ["PATCH"] * 10
    finally:
        await runner.cleanup()
