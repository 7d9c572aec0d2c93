"""The bench's creates wait for a slow API server instead of failing on its first timeout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from superpod.cluster import client
from superpod_sandbox.commands import bench_e2e

from tests.localserver import serving


async def test_a_create_that_timed_out_is_retried_and_its_409_means_created(monkeypatch):
    monkeypatch.setattr(bench_e2e, "CREATE_BACKOFF", 0.01)
    stored: list[str] = []
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.method)
        name = (await request.json())["metadata"]["name"]
        if name in stored:
            return web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409)
        stored.append(name)
        await asyncio.sleep(1.0)  # created, answered after the client gave up
        return web.json_response({"metadata": {"name": name}}, status=201)

    async with serving(handle) as url:
        async with client.KubeClient(client.Credentials(server=url), timeout=0.3) as api:
            await bench_e2e.create_patiently(
                api, "/api/v1/namespaces/a/configmaps", {"metadata": {"name": "x"}}
            )
        assert calls == ["POST", "POST"]
        assert stored == ["x"]


async def test_a_first_409_and_a_refusal_are_not_hidden(monkeypatch):
    monkeypatch.setattr(bench_e2e, "CREATE_BACKOFF", 0.01)
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.method)
        return web.json_response({"kind": "Status", "code": 409, "reason": "AlreadyExists"}, status=409)

    async with serving(handle) as url:
        async with client.KubeClient(client.Credentials(server=url)) as api:
            with pytest.raises(client.ApiError) as raised:
                await bench_e2e.create_patiently(api, "/api/v1/namespaces/a/configmaps", {"metadata": {}})
        assert raised.value.status == 409
        assert calls == ["POST"]


async def test_the_bench_gives_up_after_its_attempts_with_a_message(monkeypatch):
    monkeypatch.setattr(bench_e2e, "CREATE_BACKOFF", 0.01)
    monkeypatch.setattr(bench_e2e, "CREATE_ATTEMPTS", 3)
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.method)
        await asyncio.sleep(1.0)
        return web.json_response({}, status=201)

    async with serving(handle) as url:
        async with client.KubeClient(client.Credentials(server=url), timeout=0.2) as api:
            with pytest.raises(TimeoutError) as raised:
                await bench_e2e.create_patiently(api, "/api/v1/namespaces/a/configmaps", {"metadata": {}})
        assert str(raised.value) == "POST /api/v1/namespaces/a/configmaps: no answer within 0.2 s"
        assert calls == ["POST", "POST", "POST"]


def allocated_event(partition: str, reason: str = "Allocated") -> dict[str, Any]:
    """A watch event of a core/v1 Event the operator posts about a partition."""
    involved = {"kind": "SuperPodPartition", "name": partition}
    return {"type": "ADDED", "object": {"reason": reason, "involvedObject": involved}}


async def test_a_phase_waits_for_the_rank_tables_and_events_the_last_one_left(monkeypatch):
    timings = bench_e2e.Timings()
    for name in ("p1", "p2"):
        timings.on_event(
            {
                "object": {
                    "metadata": {"name": name},
                    "status": {"phase": "Allocated", "rankTable": f"rt-{name}"},
                }
            }
        )
    timings.tables.add("rt-p1")
    timings.on_kube_event(allocated_event("p1"))
    waiting = asyncio.create_task(bench_e2e.settle(timings, ["p1", "p2"]))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # p2's rank table is still to be written
    timings.tables.add("rt-p2")
    timings.on_kube_event(allocated_event("p2", reason="RankTableWritten"))  # another Event of it
    await asyncio.sleep(0.5)
    assert not waiting.done()  # and its Allocated Event
    timings.on_kube_event(allocated_event("p2"))
    assert await asyncio.wait_for(waiting, 2.0) is not None


async def test_a_rank_table_never_written_does_not_hold_the_bench_forever(monkeypatch):
    monkeypatch.setattr(bench_e2e, "SETTLE_MOST", 0.3)
    timings = bench_e2e.Timings()
    timings.on_event(
        {"object": {"metadata": {"name": "p1"}, "status": {"phase": "Allocated", "rankTable": "rt"}}}
    )
    assert await bench_e2e.settle(timings, ["p1"]) is None


async def test_an_event_never_posted_holds_the_bench_only_briefly(monkeypatch):
    """A replica killed between a partition's status and its Event never posts that Event."""
    monkeypatch.setattr(bench_e2e, "EVENTS_MOST", 0.3)
    timings = bench_e2e.Timings()
    timings.on_event(
        {"object": {"metadata": {"name": "p1"}, "status": {"phase": "Allocated", "rankTable": "rt"}}}
    )
    timings.tables.add("rt")
    assert await asyncio.wait_for(bench_e2e.settle(timings, ["p1"]), 2.0) is None


def test_a_phase_is_told_second_by_second():
    """Each second of a phase: the partitions applied in it, their median and slowest apply-to-Allocated."""
    timings = bench_e2e.Timings()
    began = 100.0
    for name, applied, latency in [
        ("a", 100.1, 0.010),
        ("b", 100.5, 0.030),
        ("c", 100.9, 0.020),
        ("d", 102.2, 0.4),
    ]:
        timings.applied[name] = applied
        timings.placed[name] = applied + latency
    timings.applied["e"] = 102.5  # applied, never seen placed: not counted
    assert bench_e2e.by_second(timings, ["a", "b", "c", "d", "e"], began) == [
        {"second": 0, "applied": 3, "p50Ms": 20.0, "maxMs": 30.0},
        {"second": 2, "applied": 1, "p50Ms": 400.0, "maxMs": 400.0},
    ]


async def test_a_phase_of_no_partitions_ends_at_once_with_zero_figures():
    """`--burst 0` measured a paced phase and then waited its whole timeout for a burst that never came."""
    phase = await asyncio.wait_for(bench_e2e._phase(None, bench_e2e.Timings(), [], [], 0.0, 600.0), 1.0)  # type: ignore[arg-type]
    assert phase["partitions"] == 0 and phase["allPlacedSeconds"] == 0.0 and phase["bySecond"] == []
