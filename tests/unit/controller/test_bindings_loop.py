"""The bindings loop of a SuperPod: which partitions it reconciles, and when."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from superpod.controller import bindings, partitionmap

JSON = dict[str, Any]


class Stop:
    """Stands for kopf's DaemonStopped: false until set, awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> Stop:
        await self.event.wait()
        return self


def partition(name: str, superpod: str = "sp-a", placed: bool = True) -> JSON:
    status = {"phase": "Allocated", "allocation": [{"rank": 0, "node": "n1", "devices": ["d0"]}]}
    return {
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"superPod": superpod, "npus": 1},
        "status": status if placed else {"phase": "Pending"},
    }


def partition_map(partitions: list[JSON]) -> partitionmap.PartitionMap:
    """The fleet's partitions as its mirror keeps them (indexed)."""
    found = partitionmap.PartitionMap()
    for obj in partitions:
        found[f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"] = obj
    return found


def pod(name: str, partition_name: str) -> JSON:
    labels = {"superpod.dev/partition": partition_name}
    return {"metadata": {"name": name, "namespace": "team", "labels": labels}, "status": {"phase": "Running"}}


class Recorder:
    """Bindings whose reconcile records the partitions it is called for and answers from `delays`."""

    def __init__(self, partitions: list[JSON]) -> None:
        fleet = SimpleNamespace(partitions=partition_map(partitions))
        binder = SimpleNamespace(forget=lambda namespace, name: None)
        self.bindings = bindings.Bindings(SimpleNamespace(), fleet, binder)  # type: ignore[arg-type]
        self.calls: list[str] = []
        self.delays: dict[str, float | None] = {}
        self.called = asyncio.Event()

        async def reconcile(key: str) -> float | None:
            self.calls.append(key)
            self.called.set()
            return self.delays.pop(key, None)

        self.bindings.reconcile = reconcile  # type: ignore[method-assign]

    async def calls_after(self, action: Any = None, count: int = 1) -> list[str]:
        """Run `action`, then wait until `count` more reconciles happened; the keys reconciled meanwhile."""
        before = len(self.calls)
        if action is not None:
            action()
        async with asyncio.timeout(5):
            while len(self.calls) < before + count:
                self.called.clear()
                await self.called.wait()
        return self.calls[before:]


@pytest.fixture
async def running() -> Any:
    """A Recorder and a started loop for SuperPod sp-a; stopped after the test."""
    loops: list[tuple[asyncio.Task[None], Stop]] = []

    def start(recorder: Recorder) -> Recorder:
        stop = Stop()
        task = asyncio.create_task(recorder.bindings.follow("sp-a", stop))  # type: ignore[arg-type]
        loops.append((task, stop))
        return recorder

    yield start
    for task, stop in loops:
        stop.event.set()
        await asyncio.wait_for(task, timeout=5)


async def test_a_loop_that_starts_reconciles_every_placed_partition_of_its_superpod_once(
    running: Any,
) -> None:
    recorder = Recorder(
        [partition("a"), partition("b"), partition("other", superpod="sp-b"), partition("q", placed=False)]
    )
    calls = await recorder.calls_after(lambda: running(recorder), count=2)
    await asyncio.sleep(0.05)
    assert sorted(recorder.calls) == sorted(calls) == ["team/a", "team/b"]


async def test_a_pod_event_has_its_partition_reconciled(running: Any) -> None:
    recorder = running(Recorder([partition("a"), partition("b")]))
    await recorder.calls_after(count=2)
    calls = await recorder.calls_after(lambda: recorder.bindings.pods.on_pod("", None, pod("b-0", "b")))
    assert calls == ["team/b"]


async def test_a_partition_change_has_it_reconciled_unless_it_is_not_placed(running: Any) -> None:
    recorder = running(Recorder([partition("a"), partition("b")]))
    await recorder.calls_after(count=2)
    recorder.bindings.partition_changed("team/a", partition("a", placed=False))
    calls = await recorder.calls_after(lambda: recorder.bindings.partition_changed("team/b", partition("b")))
    assert calls == ["team/b"]


async def test_a_partition_asking_to_be_looked_at_again_is_after_its_delay(running: Any) -> None:
    recorder = Recorder([partition("a")])
    recorder.delays["team/a"] = 0.2
    running(recorder)
    await recorder.calls_after(count=1)
    started = asyncio.get_running_loop().time()
    assert await recorder.calls_after(count=1) == ["team/a"]
    assert asyncio.get_running_loop().time() - started >= 0.15


async def test_a_partition_that_is_gone_is_not_looked_at_again(running: Any) -> None:
    recorder = Recorder([partition("a"), partition("b")])
    recorder.delays["team/a"] = 0.2
    running(recorder)
    await recorder.calls_after(count=2)
    recorder.bindings.fleet.partitions.pop("team/a")  # the fleet forgets it first, then tells the listeners
    recorder.bindings.partition_changed("team/a", None)
    calls = await recorder.calls_after(lambda: recorder.bindings.pods.on_pod("", None, pod("b-0", "b")))
    await asyncio.sleep(0.3)
    assert calls == ["team/b"] and recorder.calls.count("team/a") == 1


async def test_a_partition_is_brought_in_line_again_only_when_it_or_its_pods_changed() -> None:
    placed = partition("a")
    placed["metadata"] |= {"uid": "u1", "resourceVersion": "5", "finalizers": ["superpod.dev/in-use"]}
    state = SimpleNamespace(
        profile=SimpleNamespace(name="cloudmatrix-384", resource_name="huawei.com/Ascend910")
    )
    fleet = SimpleNamespace(partitions=partition_map([placed]), superpods={"sp-a": state})
    binder = SimpleNamespace(known=lambda namespace, name: None, forget=lambda namespace, name: None)
    tracker = bindings.Bindings(SimpleNamespace(), fleet, binder)  # type: ignore[arg-type]
    tracker.pods.reflector.synced.set()
    synced: list[JSON] = []

    async def sync(obj: JSON, profile: str, pods: Any) -> bool:
        synced.append(obj)
        return True

    tracker.tables.sync = sync  # type: ignore[method-assign]
    for _ in range(3):
        assert await tracker.reconcile("team/a") is None
    assert len(synced) == 1
    running = pod("a-0", "a")
    running["metadata"]["resourceVersion"] = "7"
    tracker.pods.on_pod("", None, running)
    await tracker.reconcile("team/a")
    fleet.partitions["team/a"] = placed | {"metadata": placed["metadata"] | {"resourceVersion": "8"}}
    await tracker.reconcile("team/a")
    await tracker.reconcile("team/a")
    assert len(synced) == 3


async def test_a_reconcile_that_fails_unexpectedly_is_retried_and_the_others_go_on(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder([partition("a"), partition("b")])
    failures = iter([RuntimeError("a bug")])
    recorded = recorder.bindings.reconcile

    async def flaky(key: str) -> float | None:
        if key == "team/a":
            error = next(failures, None)
            if error is not None:
                raise error
        return await recorded(key)

    recorder.bindings.reconcile = flaky  # type: ignore[method-assign]
    running(recorder)
    calls = await recorder.calls_after(count=2)  # b at once, a after its retry
    assert sorted(calls) == ["team/a", "team/b"]
    assert "reconcile failed" in caplog.text


async def test_a_sweep_reconciles_every_placed_partition_once_and_a_few_at_a_time(running: Any) -> None:
    """Reconciles are mostly API round trips: many partitions are brought in line `CONCURRENCY` at a time,
    never more, and each once."""
    names = [f"p{index:02d}" for index in range(3 * bindings.CONCURRENCY + 1)]
    recorder = Recorder([partition(name) for name in names])
    at_once = most = 0
    release = asyncio.Event()

    async def slow(key: str) -> float | None:
        nonlocal at_once, most
        recorder.calls.append(key)
        at_once += 1
        most = max(most, at_once)
        if len(recorder.calls) >= bindings.CONCURRENCY:
            release.set()
        await release.wait()
        await asyncio.sleep(0.001)
        at_once -= 1
        recorder.called.set()
        return None

    recorder.bindings.reconcile = slow  # type: ignore[method-assign]
    await recorder.calls_after(lambda: running(recorder), count=len(names))
    assert sorted(recorder.calls) == [f"team/{name}" for name in names]
    assert most == bindings.CONCURRENCY
