"""The fleet's memory when a partition is replaced by another of the same name behind its back.

A partition is known by namespace/name; a new object under an old name (deleted and created again while a watch
was down, or while a status write was in flight) must never inherit the old one's devices.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from superpod import placement
from superpod.api import partition as api_partition
from superpod.cluster import client
from superpod.controller import fleet as fleet_module
from superpod.controller import status as derive

from tests.builders import objects

JSON = dict[str, Any]
KEY = "team/job"


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


def synced_fleet(nodes: int = 4) -> fleet_module.Fleet:
    """A fleet that has mirrored one CloudMatrix 384 SuperPod of `nodes` nodes, as after its start."""
    fleet = fleet_module.Fleet(SimpleNamespace())  # type: ignore[arg-type]
    superpod = {"metadata": {"name": "sp", "generation": 1}, "spec": {"profile": "cloudmatrix-384"}}
    fleet._on_superpod("sp", None, superpod)
    for index in range(nodes):
        name = f"n{index}"
        node = objects.node(name).superpod(0, rack=0, server=index).devices(16).ready().obj()
        fleet._on_node(name, None, node)
        configmap = objects.deviceinfo_configmap(name, server_index=index)
        fleet._on_configmap(f"kube-system/{configmap['metadata']['name']}", None, configmap)
    synced = asyncio.Event()
    synced.set()
    fleet._reflectors = [SimpleNamespace(synced=synced)]  # type: ignore[list-item]
    fleet._rebuild(fleet.superpods["sp"])
    return fleet


def placed(fleet: fleet_module.Fleet, uid: str, npus: int) -> JSON:
    """A partition as the mirror sees it after its placement was written."""
    allocator = fleet.superpods["sp"].allocator
    assert allocator is not None
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": npus})
    decision = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement)
    return partition(uid, npus, derive.allocated(decision, previous=None, generation=1), version="2")


def test_a_partition_replaced_under_its_name_in_one_mirror_update_loses_the_old_ones_devices() -> None:
    """A watch that resumes with a relist shows a delete and re-create as one update of the key."""
    fleet = synced_fleet()
    state = fleet.superpods["sp"]
    assert state.allocator is not None
    old = placed(fleet, "u1", 16)
    fleet._on_partition(KEY, None, old)
    assert state.allocator.placement_of(KEY) is not None

    new = partition("u2", 4, version="3")
    fleet._on_partition(KEY, old, new)

    assert state.allocator.placement_of(KEY) is None
    assert KEY in state.pending
    assert state.allocator.capacity().allocated == 0


class RecreatedDuringWrite:
    """An API whose first guarded status patch meets a 409: the partition was deleted and created again."""

    def __init__(self, fresh: JSON) -> None:
        self.fresh = fresh
        self.patches: list[JSON] = []

    async def patch(self, path: str, body: JSON, **_: Any) -> JSON:
        self.patches.append(body)
        if len(self.patches) == 1:
            raise client.ApiError(409, {"reason": "Conflict"})
        return {**self.fresh, "status": body["status"]}

    async def get(self, path: str, **_: Any) -> JSON:
        return self.fresh

    async def get_or_none(self, path: str) -> JSON | None:
        return self.fresh

    async def create(self, path: str, body: JSON) -> JSON:
        return body


@pytest.mark.parametrize("npus", [4, 16], ids=["a smaller one", "one of the same size"])
async def test_a_placement_is_not_written_onto_a_partition_created_again_during_its_write(npus: int) -> None:
    fleet = synced_fleet()
    state = fleet.superpods["sp"]
    assert state.allocator is not None
    old = partition("u1", 16)
    fleet._on_partition(KEY, None, old)
    api = RecreatedDuringWrite(partition("u2", npus, version="5"))
    fleet.api = fleet.writer.api = api  # type: ignore[assignment]

    written = await fleet._place(state, old)

    assert written == {}
    assert len(api.patches) == 1  # the new partition's status is the new partition's own business
    assert state.allocator.placement_of(KEY) is None


class SilentApi:
    """An API whose status patches never answer (the daemon is stopped while one is in flight)."""

    def __init__(self) -> None:
        self.patching = asyncio.Event()

    async def patch(self, path: str, body: JSON, **_: Any) -> JSON:
        self.patching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_placement_cancelled_during_its_write_is_queued_again() -> None:
    """kopf stops the SuperPod's daemon (a pause by peering, the SuperPod's daemon restarted) mid-write: the
    partition, placed by that daemon and no longer pending, must be tried again when the daemon runs again."""
    fleet = synced_fleet()
    state = fleet.superpods["sp"]
    assert state.allocator is not None
    fleet._on_partition(KEY, None, partition("u1", 16, status={"phase": "Pending"}))
    assert KEY in state.pending
    api = SilentApi()
    fleet.api = fleet.writer.api = api  # type: ignore[assignment]
    placing = asyncio.create_task(fleet.retry_pending(state))
    await asyncio.wait_for(api.patching.wait(), timeout=5)

    placing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await placing

    assert state.allocator.placement_of(KEY) is None
    assert KEY in state.pending
