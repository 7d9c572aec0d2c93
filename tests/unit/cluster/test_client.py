"""The API client retries transient failures of repeatable calls, and never repeats a create."""

from __future__ import annotations

import asyncio

from aiohttp import web
from superpod.cluster import client

from tests.localserver import Handler, serving


def _failing(failures: int, status: int = 503) -> tuple[Handler, list[str]]:
    """A server's handler that fails the first `failures` requests with `status`; the methods it was sent."""
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            return web.json_response(
                {"kind": "Status", "code": status, "reason": "ServiceUnavailable"}, status=status
            )
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": "x"}})

    return handle, calls


async def test_a_get_survives_two_unavailable_answers():
    handle, calls = _failing(failures=2)
    async with serving(handle) as url, client.KubeClient(client.Credentials(server=url)) as api:
        assert (await api.get("/api/v1/configmaps/x"))["kind"] == "ConfigMap"
    assert calls == ["GET", "GET", "GET"]


async def test_a_create_is_never_repeated():
    handle, calls = _failing(failures=1)
    async with serving(handle) as url, client.KubeClient(client.Credentials(server=url)) as api:
        try:
            await api.create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
        except client.ApiError as error:
            assert error.status == 503
        else:
            raise AssertionError("the 503 was hidden")
    assert calls == ["POST"]


async def test_a_definite_refusal_is_not_retried():
    handle, calls = _failing(failures=5, status=422)
    async with serving(handle) as url, client.KubeClient(client.Credentials(server=url)) as api:
        try:
            await api.patch("/api/v1/namespaces/a/configmaps/x", {"data": {}})
        except client.ApiError as error:
            assert error.status == 422
    assert calls == ["PATCH"]


async def test_a_request_that_times_out_says_which_request_it_was():
    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async with serving(never) as url, client.KubeClient(client.Credentials(server=url), timeout=0.2) as api:
        try:
            await api.create("/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}})
        except TimeoutError as error:
            assert str(error) == "POST /api/v1/namespaces/a/configmaps: no answer within 0.2 s"
        else:
            raise AssertionError("no timeout")


async def test_a_request_queued_behind_others_is_not_timed_out_by_the_queue():
    """Ten at once on two connections, each answered in 0.3 s with a 0.5 s timeout: the last waits 1.2 s for a
    connection, and is still answered; none is sent twice."""
    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.method)
        await asyncio.sleep(0.3)
        return web.json_response({"kind": "ConfigMap"})

    async with serving(slow) as url:
        credentials = client.Credentials(server=url)
        async with client.KubeClient(credentials, timeout=0.5, connections=2) as api:
            answers = await asyncio.gather(*(api.patch(f"/api/v1/configmaps/c{i}", {}) for i in range(10)))
    assert [answer["kind"] for answer in answers] == ["ConfigMap"] * 10
    assert calls == ["PATCH"] * 10
