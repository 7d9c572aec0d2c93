"""Partition events reach the operator through the fleet's mirror: the owner of a partition's SuperPod places it
at once; a replica that does not own the SuperPod does nothing for it (no API call), yet places it once the
SuperPod becomes its own (its owner died); a failed placement is tried again; a deleted partition that still
carries kopf's old finalizer is released and let go. The fleet runs for real against an API in memory."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from superpod.cluster import client
from superpod.controller import fleet as fleet_module
from superpod.controller import inuse, partitionevents, shards

from tests.unit.controller import fakeapi

JSON = dict[str, Any]
KEY = "team/job"
NOW = "2026-11-29T00:00:00Z"


class Owner(shards.Solo):
    """A replica that owns the SuperPods named in `owned` (a test moves them)."""

    def __init__(self, *owned: str) -> None:
        self.owned = set(owned)

    def owns(self, superpod: str) -> bool:
        return superpod in self.owned


def partition(
    *, status: JSON | None = None, finalizers: list[str] | None = None, deleting: bool = False
) -> JSON:
    metadata: JSON = {
        "name": "job",
        "namespace": "team",
        "uid": "u1",
        "resourceVersion": "1",
        "creationTimestamp": "2026-11-29T00:00:01Z",
        "finalizers": finalizers or [],
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-29T00:01:00Z"
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": metadata,
        "spec": {"superPod": "sp", "npus": 16},
        "status": status or {},
    }


class Server:
    """Applies the operator's merge patches to the one partition, as the API server would."""

    def __init__(self, api: fakeapi.FakeApi, obj: JSON) -> None:
        self.obj = obj
        self.failures = 0  # status patches to refuse with a 500 first

    async def patch(self, path: str, body: JSON) -> JSON:
        if path.endswith("/status"):
            if self.failures:
                self.failures -= 1
                raise client.ApiError(500, {"reason": "InternalError"})
            self.obj = {**self.obj, "status": body["status"]}
        else:
            self.obj = copy.deepcopy(self.obj)
            self.obj["metadata"]["finalizers"] = body["metadata"]["finalizers"]
        version = int(self.obj["metadata"]["resourceVersion"]) + 1
        self.obj = {**self.obj, "metadata": {**self.obj["metadata"], "resourceVersion": str(version)}}
        return copy.deepcopy(self.obj)


@pytest_asyncio.fixture
async def api() -> fakeapi.FakeApi:
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    return api


@contextlib.asynccontextmanager
async def replica(
    api: fakeapi.FakeApi, owner: Owner, *, recheck: float = 60.0
) -> AsyncIterator[fleet_module.Fleet]:
    fleet = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    fleet.inventory_debounce = 0.0
    events = partitionevents.PartitionEvents(fleet, owner, backoff=0.05, recheck=recheck)
    await fleet.start()
    await events.start()
    try:
        yield fleet
    finally:
        await events.stop()
        await fleet.stop()


def phase(fleet: fleet_module.Fleet) -> str:
    return str(((fleet.partitions.get(KEY) or {}).get("status") or {}).get("phase") or "")


async def test_the_owner_places_a_new_partition_when_the_mirror_sees_it(api):
    server = Server(api, partition())
    api.patch_with = server.patch
    async with replica(api, Owner("sp")) as fleet:
        api.send(fakeapi.PARTITIONS, "ADDED", partition())
        await fakeapi.until(lambda: phase(fleet) == "Allocated")
        allocator = fleet.superpods["sp"].allocator
        assert allocator is not None and allocator.placement_of(KEY) is not None
        assert "superpod.dev/in-use" in fleet.partitions[KEY]["metadata"]["finalizers"]


async def test_a_replica_that_does_not_own_the_superpod_does_nothing_for_its_partition_until_it_does(api):
    server = Server(api, partition())
    api.patch_with = server.patch
    owner = Owner()
    async with replica(api, owner, recheck=0.05) as fleet:
        api.send(fakeapi.PARTITIONS, "ADDED", partition())
        await fakeapi.until(lambda: KEY in fleet.partitions)
        api.send(fakeapi.PARTITIONS, "MODIFIED", {**partition(), "metadata": {**partition()["metadata"]}})
        await asyncio.sleep(0.3)  # several sweeps
        assert api.patches == [] and api.events == []
        assert KEY in fleet.superpods["sp"].pending  # it knows the partition waits, as every replica does

        owner.owned.add("sp")  # its owner died: this replica holds the SuperPod now
        await fakeapi.until(lambda: phase(fleet) == "Allocated")
        allocator = fleet.superpods["sp"].allocator
        assert allocator is not None and allocator.placement_of(KEY) is not None


async def test_a_failed_placement_is_tried_again(api):
    server = Server(api, partition())
    server.failures = 1
    api.patch_with = server.patch
    async with replica(api, Owner("sp")) as fleet:
        api.send(fakeapi.PARTITIONS, "ADDED", partition())
        await fakeapi.until(lambda: phase(fleet) == "Allocated")
        assert sum(path.endswith("/status") for path, _ in api.patches) >= 2


async def test_a_deleted_partition_with_kopfs_old_finalizer_is_let_go_by_the_owner_only(api):
    """Made by an operator that let kopf handle partitions: no in-use finalizer, kopf's own one (its devices
    are free: no pod of it is protected)."""
    placed_status: JSON = {}
    server = Server(api, partition())
    api.patch_with = server.patch
    async with replica(api, Owner("sp")) as fleet:  # placed first, as that operator did
        api.send(fakeapi.PARTITIONS, "ADDED", partition())
        await fakeapi.until(lambda: phase(fleet) == "Allocated")
        placed_status = fleet.partitions[KEY]["status"]
    old = partition(status=placed_status, finalizers=[inuse.HANDLER_FINALIZER], deleting=True)
    api.listed(fakeapi.PARTITIONS, old)
    server.obj = copy.deepcopy(old)
    api.patches.clear()

    async with replica(api, Owner(), recheck=0.05):
        await asyncio.sleep(0.3)
        assert api.patches == []  # not this replica's to let go

    async with replica(api, Owner("sp")) as fleet:
        await fakeapi.until(lambda: server.obj["metadata"]["finalizers"] == [])
        allocator = fleet.superpods["sp"].allocator
        assert allocator is not None and allocator.placement_of(KEY) is None
