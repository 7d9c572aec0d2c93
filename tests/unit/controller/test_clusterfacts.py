"""PriorityClasses are read once per `ttl`, however many placements ask at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from superpod.cluster import client
from superpod.controller import clusterfacts


class Api:
    """Lists of PriorityClasses that answer only when the test lets them (or fail)."""

    def __init__(self) -> None:
        self.lists = 0
        self.answer = asyncio.Event()
        self.failing = False

    async def list(self, path: str, **_: Any) -> list[dict[str, Any]]:
        assert path == clusterfacts.PRIORITY_CLASSES
        self.lists += 1
        await self.answer.wait()
        if self.failing:
            raise client.ApiError(503, {"reason": "ServiceUnavailable"})
        return [{"metadata": {"name": f"class-{self.lists}"}, "value": 100}]


def facts(api: Api, clock: list[float]) -> clusterfacts.ClusterFacts:
    return clusterfacts.ClusterFacts(cast(client.KubeClient, api), ttl=10.0, clock=lambda: clock[0])


async def test_a_burst_of_placements_shares_one_list_of_priority_classes() -> None:
    api, clock = Api(), [100.0]
    reader = facts(api, clock)
    asking = [asyncio.create_task(reader.priority_classes()) for _ in range(50)]
    await asyncio.sleep(0)
    api.answer.set()
    answers = await asyncio.gather(*asking)
    assert api.lists == 1
    assert all(set(answer) == {"class-1"} for answer in answers)
    assert set(await reader.priority_classes()) == {"class-1"}  # within the ttl: no list
    assert api.lists == 1

    clock[0] += 11.0  # expired: one list again, for all who ask
    again = await asyncio.gather(*(reader.priority_classes() for _ in range(5)))
    assert api.lists == 2
    assert all(set(answer) == {"class-2"} for answer in again)


async def test_a_failed_list_keeps_the_last_answer_and_is_tried_again_at_the_next_ask() -> None:
    api, clock = Api(), [100.0]
    reader = facts(api, clock)
    api.answer.set()
    assert set(await reader.priority_classes()) == {"class-1"}
    clock[0] += 11.0
    api.failing = True
    assert set(await reader.priority_classes()) == {"class-1"}
    api.failing = False
    assert set(await reader.priority_classes()) == {"class-3"}  # not cached after the failure
    assert api.lists == 3


async def test_a_placement_cancelled_while_it_waits_does_not_cancel_the_list_the_others_wait_for() -> None:
    api, clock = Api(), [100.0]
    reader = facts(api, clock)
    first = asyncio.create_task(reader.priority_classes())
    second = asyncio.create_task(reader.priority_classes())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    api.answer.set()
    assert set(await second) == {"class-1"}
    assert api.lists == 1
