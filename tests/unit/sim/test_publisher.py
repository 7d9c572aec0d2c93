"""The publisher's pacing helpers: bounded concurrency that survives failures, and work spread over an interval."""

from __future__ import annotations

import asyncio
import itertools
import math
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


@pytest.mark.parametrize(
    ("interval", "count", "size"),
    [
        (300.0, 1024, 1),  # an Atlas 950 SuperPoD at the real 5 min: a node every 0.29 s
        (60.0, 1936, 2),  # Atlas 960 at 60 s: two nodes every 62 ms
        (300.0, 65536, 11),  # a whole SuperCluster from one loop
        (0.3, 30, 5),
        (1.0, 1, 1),
    ],
)
def test_spread_steps_are_fine_and_cover_exactly_the_interval(interval, count, size):
    step = publisher.slice_seconds(interval, count)
    assert publisher.batch_size(interval, count) == size
    assert math.ceil(count / size) * step == pytest.approx(interval)  # each name once per interval, no faster
    assert step >= publisher.SLICE_SECONDS - 1e-9 or step == pytest.approx(interval / count)


async def test_spread_writes_a_batch_each_step_not_the_interval_at_once():
    times: list[float] = []

    async def touch(name: str) -> None:
        times.append(time.monotonic())

    await publisher.spread(0.2, ["a", "b", "c", "d"], touch, 8)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 4 and min(gaps) >= 0.04  # one name per 50 ms step
