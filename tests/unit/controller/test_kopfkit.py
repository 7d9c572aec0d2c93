"""kopf's state storages for partitions (a create placed at the first attempt leaves kopf nothing to write), and
the sleeps of the daemons' loops."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import kopf
import pytest
from kopf._cogs.aiokits import aioenums
from superpod.controller import kopfkit


def partition(status: dict[str, Any] | None = None) -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": "job", "namespace": "team", "uid": "u1", "resourceVersion": "7"},
        "spec": {"superPod": "sp", "npus": 8},
    }
    if status is not None:
        raw["status"] = status
    return kopf.Body(cast(kopf.RawBody, raw))


@pytest.mark.parametrize(
    ("status", "handled"),
    [
        (None, False),
        ({}, False),
        ({"phase": "Pending", "reason": "InsufficientCapacity"}, True),
        ({"phase": "Allocated", "allocation": [{"rank": 0, "node": "n1", "devices": ["d0"]}]}, True),
    ],
    ids=[
        "a partition without status was never handled",
        "an empty status was never handled",
        "a Pending partition was handled",
        "an Allocated partition was handled",
    ],
)
def test_a_partition_counts_as_handled_once_the_operator_wrote_its_phase(
    status: dict[str, Any] | None, handled: bool
) -> None:
    storage = kopfkit.SpecDiffBase()
    body = partition(status)
    stored = storage.fetch(body=body)
    assert (stored is not None) is handled
    if handled:
        assert stored == storage.build(body=body)  # kopf sees no change: no update cause


def test_the_essence_is_the_spec_alone() -> None:
    essence = kopfkit.SpecDiffBase().build(body=partition({"phase": "Allocated"}))
    assert dict(essence) == {"spec": {"superPod": "sp", "npus": 8}}


def test_the_diff_base_writes_nothing() -> None:
    storage = kopfkit.SpecDiffBase()
    body = partition()
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch


def test_a_handler_done_at_once_leaves_no_progress_and_no_marker_to_write() -> None:
    storage = kopfkit.UnmarkedProgressStorage(prefix="superpod.dev")
    body = partition()
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "success": True, "retries": 1}
    storage.store(key=kopf.HandlerId("place"), record=record, body=body, patch=patch)
    assert patch  # while the handler runs, its progress would be written
    storage.purge(key=kopf.HandlerId("place"), body=body, patch=patch)
    assert not patch


def test_a_failed_handler_still_records_its_retry() -> None:
    storage = kopfkit.UnmarkedProgressStorage(prefix="superpod.dev")
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "retries": 1, "delayed": "2026-01-01T00:00:02"}
    storage.store(key=kopf.HandlerId("place"), record=record, body=partition(), patch=patch)
    assert set(patch["metadata"]["annotations"]) == {"superpod.dev/place"}


# ---- Sleeper: a daemon loop's sleeps between passes ------------------------------------------------------


def _stopper() -> tuple[aioenums.FlagSetter[kopf.DaemonStoppingReason], kopf.DaemonStopped]:
    flag: aioenums.FlagSetter[kopf.DaemonStoppingReason] = aioenums.FlagSetter()
    return flag, flag.async_waiter


async def _sleeps(sleeper: kopfkit.Sleeper, wake: asyncio.Event, timeout: float | None) -> float:
    started = time.monotonic()
    await sleeper.until_poked(wake, timeout)
    return time.monotonic() - started


async def test_a_sleep_ends_when_the_loop_is_poked() -> None:
    _, stopped = _stopper()
    wake = asyncio.Event()
    async with kopfkit.Sleeper(stopped) as sleeper:
        sleeping = asyncio.create_task(_sleeps(sleeper, wake, 30.0))
        await asyncio.sleep(0.05)
        assert not sleeping.done()
        wake.set()
        assert await asyncio.wait_for(sleeping, 5.0) < 5.0


async def test_a_sleep_ends_after_its_timeout_without_a_poke() -> None:
    _, stopped = _stopper()
    async with kopfkit.Sleeper(stopped) as sleeper:
        slept = await asyncio.wait_for(_sleeps(sleeper, asyncio.Event(), 0.1), 5.0)
    assert 0.09 <= slept < 5.0


async def test_a_sleep_returns_at_once_when_already_poked_or_stopped() -> None:
    flag, stopped = _stopper()
    wake = asyncio.Event()
    wake.set()
    async with kopfkit.Sleeper(stopped) as sleeper:
        assert await asyncio.wait_for(_sleeps(sleeper, wake, None), 1.0) < 1.0
        flag.set(kopf.DaemonStoppingReason.OPERATOR_EXITING)
        assert await asyncio.wait_for(_sleeps(sleeper, asyncio.Event(), None), 1.0) < 1.0


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["without a timeout", "with a long timeout"])
async def test_stopping_the_daemon_ends_a_sleep_and_tells_the_loop_why(timeout: float | None) -> None:
    flag, stopped = _stopper()
    wake = asyncio.Event()
    async with kopfkit.Sleeper(stopped) as sleeper:
        sleeping = asyncio.create_task(_sleeps(sleeper, wake, timeout))
        await asyncio.sleep(0.05)
        flag.set(kopf.DaemonStoppingReason.RESOURCE_DELETED)
        assert await asyncio.wait_for(sleeping, 5.0) < 5.0
    assert stopped and stopped.reason == kopf.DaemonStoppingReason.RESOURCE_DELETED


async def test_a_sleeper_leaves_no_task_behind() -> None:
    _, stopped = _stopper()
    before = asyncio.all_tasks()
    async with kopfkit.Sleeper(stopped) as sleeper:
        await asyncio.sleep(0)
        relaying = asyncio.all_tasks() - before  # the relay of the stop (and kopf's own wait inside it)
        for _ in range(3):
            sleeping = asyncio.create_task(sleeper.until_poked(asyncio.Event(), 0.05))
            await asyncio.sleep(0.01)
            assert asyncio.all_tasks() - before == relaying | {sleeping}  # no task per sleep
            await sleeping
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == before


async def test_a_cancelled_sleep_is_cancelled_not_timed_out() -> None:
    _, stopped = _stopper()
    async with kopfkit.Sleeper(stopped) as sleeper:
        sleeping = asyncio.create_task(sleeper.until_poked(asyncio.Event(), 30.0))
        await asyncio.sleep(0.05)
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
