"""A mirror survives any event the API server can send and any failure of its watch, and says when it lags.

The watch reads events of any size (kube allows objects of about 1.5 MiB, and aiohttp's own line reading stops
at 512 KiB); whatever ends a watch is logged, counted and followed by a new watch after a backoff; a mirror
that cannot follow the API is named by `out_of_sync` once the bound has passed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import http_exceptions, web
from superpod.cluster import client, reflector

from tests.localserver import Handler, serving

JSON = dict[str, Any]
PATH = "/api/v1/namespaces/kube-system/configmaps"


def _configmap(name: str, version: int, size: int = 10) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "kube-system", "resourceVersion": str(version)},
        "data": {"blob": "x" * size},
    }


def _streaming(body: bytes, chunk: int) -> Handler:
    """A server's handler that answers every watch with `body`, written in pieces of `chunk` bytes."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for start in range(0, len(body), chunk):
            await response.write(body[start : start + chunk])
        await response.write_eof()
        return response

    return handle


@pytest.mark.parametrize(
    ("sizes", "chunk"),
    [
        pytest.param([10, 20], 7, id="small events in tiny pieces"),
        pytest.param([630_000], 65_536, id="a 630 KB ConfigMap (over aiohttp's 512 KiB line limit)"),
        pytest.param([10, 1_048_576, 10], 1_000_003, id="a 1 MiB ConfigMap between small ones, odd pieces"),
        pytest.param([1_600_000, 1_600_000], 4_000_000, id="two objects over 1.5 MiB in one piece"),
    ],
)
async def test_a_watch_reads_events_of_any_size(sizes, chunk):
    events = [{"type": "ADDED", "object": _configmap(f"c{i}", i, size)} for i, size in enumerate(sizes)]
    body = b"".join(json.dumps(event).encode() + b"\n" for event in events) + b"\n"
    opened: list[bool] = []
    async with (
        serving(_streaming(body, chunk), "GET") as url,
        client.KubeClient(client.Credentials(server=url)) as api,
    ):
        got = [event async for event in api.watch(PATH, opened=lambda: opened.append(True))]
    assert got == events
    assert opened == [True]


class FakeApi:
    """Lists one ConfigMap; each watch runs the next scripted step (events to yield, then an error or an end)."""

    def __init__(self, steps: list[Callable[[], AsyncIterator[JSON]]]) -> None:
        self.steps = steps
        self.watches = 0

    async def get(self, path: str, **params: str) -> JSON:
        return {"metadata": {"resourceVersion": "1"}, "items": [_configmap("listed", 1)]}

    async def watch(
        self, path: str, *, opened: Callable[[], None] | None = None, **params: str
    ) -> AsyncIterator[JSON]:
        step = self.steps[min(self.watches, len(self.steps) - 1)]
        self.watches += 1
        if opened is not None:
            opened()
        async for event in step():
            yield event


def _failing(error: BaseException) -> Callable[[], AsyncIterator[JSON]]:
    async def step() -> AsyncIterator[JSON]:
        raise error
        yield {}  # an async generator

    return step


def _event(name: str, version: int) -> Callable[[], AsyncIterator[JSON]]:
    async def step() -> AsyncIterator[JSON]:
        yield {"type": "ADDED", "object": _configmap(name, version)}
        await asyncio.Event().wait()  # then the stream stays open

    return step


def _error_event(code: int) -> Callable[[], AsyncIterator[JSON]]:
    async def step() -> AsyncIterator[JSON]:
        yield {
            "type": "ERROR",
            "object": {"kind": "Status", "code": code, "message": "etcdserver: leader changed"},
        }

    return step


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the timeout"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(_failing(http_exceptions.LineTooLong(b"{...", 524288)), id="aiohttp's LineTooLong"),
        pytest.param(_failing(aiohttp.ClientPayloadError("cut mid-chunk")), id="a stream cut mid-chunk"),
        pytest.param(_failing(client.ApiError(503, {"reason": "ServiceUnavailable"})), id="a 503 answer"),
        pytest.param(_failing(json.JSONDecodeError("Expecting value", "{", 1)), id="an unreadable event"),
        pytest.param(_failing(ConnectionResetError("reset by peer")), id="a reset connection"),
        pytest.param(_failing(RuntimeError("a bug")), id="anything else"),
        pytest.param(_error_event(500), id="an ERROR event"),
    ],
)
async def test_the_mirror_starts_its_watch_again_after_any_failure_and_counts_it(failure, caplog):
    api = FakeApi([failure, _event("after", 2)])
    told: list[tuple[str, int]] = []
    reflector.restart_observers.add(lambda resource, n: told.append((resource, n)))
    seen: list[str] = []
    mirror = reflector.Reflector(
        api,  # type: ignore[arg-type]
        PATH,
        lambda key, old, new: seen.append(key),
        retry_delay=0.01,
    )
    task = asyncio.create_task(mirror.run())
    try:
        with caplog.at_level(logging.WARNING, logger=reflector.__name__):
            await _until(lambda: "kube-system/after" in seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        reflector.restart_observers.clear()
    assert seen == ["kube-system/listed", "kube-system/after"]
    assert mirror.restarts == 1
    assert told == [("kube-system/configmaps", 0), ("kube-system/configmaps", 1)]
    assert "watch of kube-system/configmaps" in caplog.text and "starting it again" in caplog.text


async def test_a_watch_that_fails_at_every_try_is_out_of_sync_after_the_bound_and_in_sync_once_it_holds():
    breaking = _failing(aiohttp.ServerDisconnectedError())
    api = FakeApi([breaking])
    mirror = reflector.Reflector(
        api,  # type: ignore[arg-type]
        PATH,
        lambda key, old, new: None,
        retry_delay=0.01,
        retry_most=0.02,
        settle=0.05,
    )
    task = asyncio.create_task(mirror.run())
    try:
        await _until(lambda: mirror.restarts >= 1)
        assert reflector.out_of_sync(10.0) == []  # within the bound
        await _until(lambda: reflector.out_of_sync(0.2) != [])
        ((resource, seconds),) = reflector.out_of_sync(0.2)
        assert resource == "kube-system/configmaps" and seconds > 0.2
        assert mirror.restarts >= 5  # it kept trying, with backoff

        api.steps = [_event("healed", 2)]  # the API answers again: a watch that stays open
        await _until(lambda: reflector.out_of_sync(0.0) == [])
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reflector.out_of_sync(0.0) == []  # a stopped mirror is no longer watched over


def _events(*events: JSON) -> Callable[[], AsyncIterator[JSON]]:
    async def step() -> AsyncIterator[JSON]:
        for event in events:
            yield event
        await asyncio.Event().wait()

    return step


def _stamped(version: int, blob: str, stamp: str) -> JSON:
    """The listed ConfigMap at `version`, with a `stamp` the transform below drops (a heartbeat's time)."""
    configmap = _configmap("listed", version)
    configmap["data"] = {"blob": blob, "stamp": stamp}
    return configmap


def _unstamped(obj: JSON) -> JSON:
    return {**obj, "data": {k: v for k, v in (obj.get("data") or {}).items() if k != "stamp"}}


@pytest.mark.parametrize(
    ("quiet", "told"),
    [
        pytest.param(True, ["listed 1", "listed 2->3", "end 5"], id="quiet: only real changes are told"),
        pytest.param(
            False, ["listed 1", "listed 1->2", "listed 2->3", "listed 3->4", "end 5"], id="every event"
        ),
    ],
)
async def test_a_change_the_transform_drops_is_told_to_nobody_and_the_copy_held_takes_its_version(
    quiet, told
):
    """A Node's status report that moves only heartbeat times, which the mirror's reduction drops, costs the
    handlers nothing; the copy they hold still carries the newest resourceVersion (their writes are guarded
    by it)."""
    api = FakeApi(
        [
            _events(
                {"type": "MODIFIED", "object": _stamped(2, "x" * 10, "t2")},  # as listed, but for the stamp
                {"type": "MODIFIED", "object": _stamped(3, "changed", "t3")},
                {"type": "MODIFIED", "object": _stamped(4, "changed", "t4")},
                {"type": "ADDED", "object": _configmap("end", 5)},
            )
        ]
    )
    seen: list[str] = []
    held: dict[str, JSON] = {}

    def on_change(key: str, old: JSON | None, new: JSON | None) -> None:
        assert new is not None
        name, version = key.rpartition("/")[2], new["metadata"]["resourceVersion"]
        seen.append(f"{name} {old['metadata']['resourceVersion']}->{version}" if old else f"{name} {version}")
        held[key] = new

    mirror = reflector.Reflector(
        api,  # type: ignore[arg-type]
        PATH,
        on_change,
        transform=_unstamped,
        quiet_unchanged=quiet,
    )
    task = asyncio.create_task(mirror.run())
    try:
        await _until(lambda: "kube-system/end" in held)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen == told
    copy = held["kube-system/listed"]
    assert copy is mirror.objects["kube-system/listed"]
    assert copy["metadata"]["resourceVersion"] == "4"
    assert copy["data"] == {"blob": "changed"}


async def test_a_410_gone_lists_again_without_counting_a_restart(caplog):
    caplog.set_level(logging.INFO, logger=reflector.__name__)
    api = FakeApi([_error_event(410), _event("after", 3)])
    seen: list[str] = []
    mirror = reflector.Reflector(
        api,  # type: ignore[arg-type]
        PATH,
        lambda key, old, new: seen.append(key),
        retry_delay=0.01,
    )
    task = asyncio.create_task(mirror.run())
    try:
        await _until(lambda: "kube-system/after" in seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert mirror.restarts == 0
    # a list again is the API server's cost: said in the log, so one that keeps expiring is seen
    assert any("expired" in r.getMessage() and "listing" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/api/v1/nodes", "nodes"),
        ("/api/v1/namespaces/kube-system/configmaps", "kube-system/configmaps"),
        ("/apis/superpod.dev/v1alpha1/superpodpartitions", "superpodpartitions"),
        ("/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions", "team-a/superpodpartitions"),
    ],
)
def test_a_mirror_is_named_by_what_it_follows(path, resource):
    assert reflector.resource_of(path) == resource
