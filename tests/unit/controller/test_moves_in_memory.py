"""A replica that restores a partition moved while its pods run holds both its devices and the reserved ones,
and follows the replica carrying the move out when it is done or given up. The fleet runs for real (its
reflectors list and watch) against an API in memory."""

from __future__ import annotations

from typing import Any

import pytest_asyncio
from superpod import placement
from superpod.api import partition as api_partition
from superpod.controller import relocation
from superpod.controller import status as derive

from tests.unit.controller import fakeapi
from tests.unit.controller.test_fleet_races import KEY, NOW, partition, started

JSON = dict[str, Any]


@pytest_asyncio.fixture
async def api() -> fakeapi.FakeApi:
    found = fakeapi.FakeApi()
    fakeapi.cloudmatrix(found, nodes=4)
    return found


def _statuses(allocator: placement.Allocator) -> tuple[JSON, JSON]:
    """A placed partition of 8 and the status of its move onto 8 free devices of another node."""
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": 8})
    decision = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement)
    placed = derive.allocated(decision, previous=None, generation=1, now=NOW)
    other = next(
        node for node in allocator.tree.nodes if node.name != decision.slots[0].node and not node.reserve
    )
    new = [{"rank": 0, "node": other.name, "devices": list(other.devices[8:16])}]
    moving = dict(placed, move={"allocation": new, "forPartition": "team/big", "started": NOW})
    return placed, moving


def _held(allocator: placement.Allocator, key: str) -> set[str]:
    found = allocator.placement_of(key)
    return set(found.device_ids()) if found is not None else set()


async def test_a_restored_move_holds_both_sets_of_devices_then_follows_the_switch(api):
    async with started(api) as probe:
        assert probe.superpods["sp"].allocator is not None
        placed, moving = _statuses(probe.superpods["sp"].allocator)
    api.listed(fakeapi.PARTITIONS, partition("u1", 8, status=moving, version="2"))
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        allocator = state.allocator
        assert allocator is not None
        old = {f"{s['node']}/{d}" for s in placed["allocation"] for d in s["devices"]}
        new = {f"{s['node']}/{d}" for s in moving["move"]["allocation"] for d in s["devices"]}
        assert _held(allocator, KEY) == old
        assert _held(allocator, relocation.reservation_key(KEY)) == new
        assert allocator.capacity().allocated == 16  # nobody else can get either set

        # the replica moving it switched: it holds the new devices only, the old ones are free
        done = dict(moving, allocation=moving["move"]["allocation"], move=None)
        api.send(fakeapi.PARTITIONS, "MODIFIED", partition("u1", 8, status=done, version="3"))
        await fakeapi.until(lambda: _held(allocator, KEY) == new)
        assert allocator.placement_of(relocation.reservation_key(KEY)) is None
        assert allocator.capacity().allocated == 8


async def test_a_move_given_up_elsewhere_gives_the_reservation_back(api):
    async with started(api) as probe:
        assert probe.superpods["sp"].allocator is not None
        placed, moving = _statuses(probe.superpods["sp"].allocator)
    api.listed(fakeapi.PARTITIONS, partition("u1", 8, status=moving, version="2"))
    async with started(api) as fleet:
        allocator = fleet.superpods["sp"].allocator
        assert allocator is not None
        assert allocator.capacity().allocated == 16
        api.send(
            fakeapi.PARTITIONS, "MODIFIED", partition("u1", 8, status=dict(moving, move=None), version="3")
        )
        await fakeapi.until(lambda: allocator.capacity().allocated == 8)
        old = {f"{s['node']}/{d}" for s in placed["allocation"] for d in s["devices"]}
        assert _held(allocator, KEY) == old
