"""The fleet's memory when a partition is replaced by another of the same name behind its back, when its
placement's write is cut short, or when two passes decide on it at once.

A partition is known by namespace/name; a new object under an old name (deleted and created again while a watch
was down, or while a status write was in flight) must never inherit the old one's devices. The fleet runs for
real (its reflectors list and watch) against an API in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from superpod import placement
from superpod.api import partition as api_partition
from superpod.cluster import client, writer
from superpod.controller import fleet as fleet_module
from superpod.controller import status as derive

from tests.builders import objects
from tests.unit.controller import fakeapi

JSON = dict[str, Any]
KEY = "team/job"
NOW = "2026-11-29T00:00:00Z"


def partition(uid: str, npus: int, status: JSON | None = None, version: str = "1") -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {
            "name": "job",
            "namespace": "team",
            "uid": uid,
            "resourceVersion": version,
            "creationTimestamp": f"2026-11-29T00:00:0{version}Z",
        },
        "spec": {"superPod": "sp", "npus": npus},
        "status": status or {},
    }


@pytest_asyncio.fixture
async def api() -> fakeapi.FakeApi:
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    return api


@contextlib.asynccontextmanager
async def started(api: fakeapi.FakeApi) -> AsyncIterator[fleet_module.Fleet]:
    fleet = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    fleet.inventory_debounce = 0.0
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


def placed(fleet: fleet_module.Fleet, uid: str, npus: int) -> JSON:
    """A partition as the mirror sees it after its placement was written."""
    allocator = fleet.superpods["sp"].allocator
    assert allocator is not None
    decision = planned(allocator, npus)
    return partition(uid, npus, derive.allocated(decision, previous=None, generation=1, now=NOW), version="2")


async def test_a_partition_replaced_under_its_name_in_one_mirror_update_loses_the_old_ones_devices(api):
    """A watch that resumes with a relist shows a delete and re-create as one update of the key."""
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        old = placed(fleet, "u1", 16)
        api.send(fakeapi.PARTITIONS, "ADDED", old)
        await fakeapi.until(lambda: state.allocator.placement_of(KEY) is not None)

        api.send(fakeapi.PARTITIONS, "MODIFIED", partition("u2", 4, version="3"))
        await fakeapi.until(lambda: KEY in state.pending)

        assert state.allocator.placement_of(KEY) is None
        assert state.allocator.capacity().allocated == 0


@pytest.mark.parametrize("npus", [4, 16], ids=["a smaller one", "one of the same size"])
async def test_a_placement_is_not_written_onto_a_partition_created_again_during_its_write(api, npus):
    old = partition("u1", 16)
    api.listed(fakeapi.PARTITIONS, old)
    api.objects[writer.partition_path("team", "job")] = partition("u2", npus, version="5")

    async def conflict(path: str, body: JSON) -> JSON:
        raise client.ApiError(409, {"reason": "Conflict"})

    api.patch_with = conflict
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None

        written = await fleet.place(old)

        assert written == {}
        # the new partition's status (and finalizers) are the new partition's own business: one try of its
        # status, and the in-use finalizer only tried (by the handler, again before the status write)
        assert [path.endswith("/status") for path, _ in api.patches] == [False, False, True]
        assert state.allocator.placement_of(KEY) is None


async def test_a_placement_cancelled_during_its_write_is_queued_again(api):
    """kopf stops the SuperPod's daemon (a pause by peering, the SuperPod's daemon restarted) mid-write: the
    partition, placed by that daemon and no longer pending, must be tried again when the daemon runs again."""
    api.listed(fakeapi.PARTITIONS, partition("u1", 16, status={"phase": "Pending"}))
    patching = asyncio.Event()

    async def silent(path: str, body: JSON) -> JSON:
        patching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    api.patch_with = silent
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None
        assert KEY in state.pending
        placing = asyncio.create_task(fleet.retry_pending(state))
        await asyncio.wait_for(patching.wait(), timeout=5)

        placing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await placing

        assert state.allocator.placement_of(KEY) is None
        assert KEY in state.pending


async def test_a_wait_decided_before_another_pass_placed_the_partition_is_not_written_over_its_placement(api):
    """The SuperPod's daemon decides a new partition waits (no room); before it writes that, kopf's create
    handler places it (a device came free). The stale wait must not turn the placed partition Pending: its
    status would hide the devices the operator holds for it, which then belong to nobody."""
    api.listed(fakeapi.PARTITIONS, partition("u1", 16, status={"phase": "Pending"}))

    async def accept(path: str, body: JSON) -> JSON:
        return partition("u1", 16, status=body["status"], version=str(len(api.patches) + 1))

    api.patch_with = accept
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        allocator = state.allocator
        assert allocator is not None and KEY in state.pending and state.tenancy is None
        allocator.commit("team/hog", planned(allocator, allocator.capacity().free))

        async with fleet.reconciler.serial.hold(KEY):  # the create handler holds the partition
            retrying = asyncio.create_task(fleet.retry_pending(state))
            await fakeapi.until(lambda: state.tenancy is not None)  # the daemon's pass has decided
            allocator.release("team/hog")
            allocator.commit(KEY, planned(allocator, 16))
            api.send(
                fakeapi.PARTITIONS,
                "MODIFIED",
                partition("u1", 16, status={"phase": "Allocated"}, version="2"),
            )
        await retrying

        assert allocator.placement_of(KEY) is not None
        phases = [body["status"].get("phase") for path, body in api.patches if path.endswith("/job/status")]
        assert api_partition.Phase.PENDING.value not in phases


async def test_a_placement_of_a_partition_gone_before_its_write_is_released_from_a_tree_rebuilt_meanwhile(
    api,
):
    """The create path places the copy it was handed; the partition is deleted before the operator's first write
    (its `forget` freed nothing: it held nothing yet), and a node joins while the placement is being written: the
    new tree holds every placement of the old one. The write finds the partition gone; its devices must be free
    in the tree the SuperPod has now, or they belong to nobody for good (the SuperPod counts them allocated)."""
    new = partition("u1", 16)

    async def answer(path: str, body: JSON) -> JSON:
        if not path.endswith("/status"):  # the in-use finalizer: the partition is gone already
            if KEY in fleet.partitions:
                api.send(fakeapi.PARTITIONS, "DELETED", new)
                await fakeapi.until(lambda: KEY not in fleet.partitions)
            raise client.ApiError(404, {"reason": "NotFound"})
        before = state.allocator
        assert before is not None and before.placement_of(KEY) is not None  # decided on the handed copy
        api.send(
            fakeapi.NODES, "ADDED", objects.node("n4").superpod(0, rack=0, server=4).devices(16).ready().obj()
        )
        api.send(fakeapi.DEVICEINFO, "ADDED", objects.deviceinfo_configmap("n4", server_index=4))
        await fakeapi.until(lambda: state.allocator is not before)
        raise client.ApiError(404, {"reason": "NotFound"})

    api.listed(fakeapi.PARTITIONS, new)
    api.patch_with = answer
    async with started(api) as fleet:
        state = fleet.superpods["sp"]
        assert state.allocator is not None

        written = await fleet.place(new)

        assert written == {}
        assert state.allocator.placement_of(KEY) is None
        assert state.allocator.capacity().allocated == 0


def planned(allocator: placement.Allocator, npus: int) -> placement.Placement:
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": npus})
    decision = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement), decision
    return decision
