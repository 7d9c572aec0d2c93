"""The audit of memory against the partitions' statuses: a device held in memory for a partition whose status
does not show it, for longer than a write takes, is put right, and the SuperPod counts what its partitions hold.

The fleet runs for real (its reflectors list and watch) against an API in memory; the audit's clock is a fake
one, so "two audits in a row" is two calls with the clock moved on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from superpod import placement
from superpod.api import partition as api_partition
from superpod.controller import audit
from superpod.controller import fleet as fleet_module
from superpod.controller import status as derive

from tests.unit.controller import fakeapi

JSON = dict[str, Any]
NOW = "2026-12-07T00:00:00Z"


def partition(name: str, npus: int, status: JSON | None = None, version: str = "2") -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "resourceVersion": version,
            "creationTimestamp": "2026-12-07T00:00:01Z",
            "finalizers": [api_partition.IN_USE_FINALIZER],
        },
        "spec": {"superPod": "sp", "npus": npus},
        "status": status or {},
    }


def planned(allocator: placement.Allocator, npus: int) -> placement.Placement:
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": npus})
    decision = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement), decision
    return decision


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def api() -> fakeapi.FakeApi:
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    return api


@contextlib.asynccontextmanager
async def started(api: fakeapi.FakeApi, clock: Clock) -> AsyncIterator[fleet_module.Fleet]:
    fleet = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    fleet.audit = audit.Audit(fleet.reconciler, clock=clock)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


def counted(fleet: fleet_module.Fleet) -> int:
    """What the SuperPod's status would say is allocated."""
    return int(fleet.superpod_status(fleet.superpods["sp"])["devices"]["allocated"])


async def test_devices_held_for_a_partition_that_is_gone_are_released_at_the_second_audit(api):
    """A placement in memory for a partition the API no longer has (its deletion was handled before the
    placement was made): counted allocated, held by nothing, until the audit frees it."""
    clock = Clock()
    async with started(api, clock) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        state.allocator.commit("team/gone", planned(state.allocator, 4))
        assert counted(fleet) == 4

        assert await fleet.audit_books(state) == 0  # seen once: it may be a decision on its way
        clock.now += audit.EVERY - 1
        assert await fleet.audit_books(state) == 0  # not due yet
        assert state.allocator.placement_of("team/gone") is not None
        clock.now += 1
        assert await fleet.audit_books(state) == 1

        assert state.allocator.placement_of("team/gone") is None
        assert counted(fleet) == 0


async def test_a_partition_whose_status_lost_its_placement_gets_it_written_again(api):
    """Memory holds devices for a partition whose status says Pending (a placement whose write was lost): the
    audit writes the placement, so that the count and the statuses agree and the devices serve their holder."""
    api.listed(fakeapi.PARTITIONS, partition("job", 8, status={"phase": "Pending", "reason": "Fragmented"}))

    async def accept(path: str, body: JSON) -> JSON:
        return partition("job", 8, status=body["status"], version=str(len(api.patches) + 2))

    api.patch_with = accept
    clock = Clock()
    async with started(api, clock) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        state.pending.remove("team/job")
        decision = planned(state.allocator, 8)
        state.allocator.commit("team/job", decision)

        await fleet.audit_books(state)
        assert api.patches == []
        clock.now += audit.EVERY
        assert await fleet.audit_books(state) == 1

        written = fleet.partitions["team/job"]["status"]
        assert written["phase"] == api_partition.Phase.ALLOCATED.value
        recorded = {f"{slot['node']}/{d}" for slot in written["allocation"] for d in slot["devices"]}
        assert recorded == set(decision.device_ids())
        assert counted(fleet) == 8
        clock.now += audit.EVERY
        assert await fleet.audit_books(state) == 0  # in line now


async def test_a_partition_being_written_or_seen_differently_since_is_left_alone(api):
    """A difference seen at one audit only, or one whose partition has a write under way, is not acted on: a
    decision on its way to the status looks the same for a moment."""
    api.listed(fakeapi.PARTITIONS, partition("job", 8, status={"phase": "Pending", "reason": "Fragmented"}))
    clock = Clock()
    async with started(api, clock) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        state.allocator.commit("team/job", planned(state.allocator, 8))
        await fleet.audit_books(state)
        clock.now += audit.EVERY
        async with fleet.reconciler.serial.hold("team/job"):  # its placement is being written
            assert await fleet.audit_books(state) == 0
        # decided again since (another placement object): a new difference, seen once
        state.allocator.release("team/job")
        state.allocator.commit("team/job", planned(state.allocator, 8))
        clock.now += audit.EVERY
        assert await fleet.audit_books(state) == 0
        assert api.patches == []


async def test_the_audit_leaves_placed_partitions_whose_status_matches_alone(api):
    listed = partition("job", 8)
    api.listed(fakeapi.PARTITIONS, listed)
    clock = Clock()
    async with started(api, clock) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        decision = planned(state.allocator, 8)
        status = derive.allocated(decision, previous=None, generation=1, now=NOW)
        api.send(fakeapi.PARTITIONS, "MODIFIED", partition("job", 8, status=status, version="3"))
        await fakeapi.until(lambda: state.allocator.placement_of("team/job") is not None)
        for _ in range(3):
            assert await fleet.audit_books(state) == 0
            clock.now += audit.EVERY
        found, in_line = audit.drifts(state.allocator, fleet.partitions)
        assert found == {} and set(in_line) == {"team/job"}
        assert counted(fleet) == 8
        # a partition found in line is compared again once its copy changes
        lost = partition("job", 8, status={"phase": "Pending", "reason": "Fragmented"}, version="4")
        api.send(fakeapi.PARTITIONS, "MODIFIED", lost)
        await fakeapi.until(lambda: fleet.partitions["team/job"]["metadata"]["resourceVersion"] == "4")
        assert await fleet.audit_books(state) == 0
        assert set(fleet.audit.last["sp"][1]) == {"team/job"}
