"""The publisher's pacing helpers: bounded concurrency that survives failures, and work spread over an interval."""

from __future__ import annotations

import asyncio
import time

import pytest
from superpod_sandbox.sim import publisher


async def test_bounded_never_runs_more_than_the_limit_and_keeps_going_after_a_failure(caplog):
    running = 0
    peak = 0
    done: list[int] = []

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if item == 3:
            raise RuntimeError("node 3 failed")
        done.append(item)

    await publisher.bounded(4, work, range(20))
    assert peak == 4
    assert sorted(done) == [i for i in range(20) if i != 3]
    assert "node 3 failed" in caplog.text


async def test_a_cancelled_batch_leaves_no_coroutine_unawaited():
    started: list[int] = []

    async def slow(item: int) -> None:
        started.append(item)
        await asyncio.sleep(10)

    task = asyncio.create_task(publisher.bounded(2, slow, range(10)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started == [0, 1]  # the other eight coroutines were never created (warnings are errors here)


async def test_spread_touches_every_name_once_over_about_the_interval():
    seen: list[str] = []

    async def touch(name: str) -> None:
        seen.append(name)

    began = time.monotonic()
    await publisher.spread(0.3, [f"n{i}" for i in range(30)], touch, 8)
    elapsed = time.monotonic() - began
    assert sorted(seen) == sorted(f"n{i}" for i in range(30))
    assert elapsed >= 0.25  # spread over the interval, not all at once (the upper end is the machine's load)
