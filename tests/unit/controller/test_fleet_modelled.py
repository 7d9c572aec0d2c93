"""With Leases a replica builds the model (inventory, tree, allocator) of the SuperPods it owns only.

The fleet runs for real (its reflectors list and watch) against an API in memory; ownership is what the
shards would tell it: `reload` when the replica takes a SuperPod, `unmodel` when it gives one up.
"""

from __future__ import annotations

from typing import Any

from superpod import placement
from superpod.api import partition as api_partition
from superpod.controller import fleet as fleet_module
from superpod.controller import status as derive

from tests.unit.controller import fakeapi

JSON = dict[str, Any]
NOW = "2026-12-07T00:00:00Z"


def partition(name: str, npus: int, status: JSON | None = None) -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "resourceVersion": "2",
            "creationTimestamp": "2026-12-07T00:00:01Z",
        },
        "spec": {"superPod": "sp", "npus": npus},
        "status": status or {},
    }


def plan(allocator: placement.Allocator, npus: int) -> placement.Placement:
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": npus})
    decision = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement), decision
    return decision


def devices(decision: placement.Placement) -> set[tuple[str, str]]:
    return {(slot.node, device) for slot in decision.slots for device in slot.devices}


async def placed_by_another_replica(name: str, npus: int) -> JSON:
    """A partition as its owner wrote it: placed on the same four nodes by a fleet that models them."""
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    owner = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    await owner.start()
    try:
        allocator = owner.superpods["sp"].allocator
        assert allocator is not None
        decision = plan(allocator, npus)
        return partition(name, npus, derive.allocated(decision, previous=None, generation=1, now=NOW))
    finally:
        await owner.stop()


async def test_a_replica_models_the_superpods_it_owns_and_places_on_a_taken_one_around_what_is_held():
    held = await placed_by_another_replica("held", 16)
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    api.listed(fakeapi.PARTITIONS, held)
    fleet = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    fleet.inventory_debounce = 0.0
    fleet.modelled = set()  # as with Leases: nothing owned yet
    await fleet.start()
    try:
        state = fleet.superpods["sp"]
        # not owned: no inventory, no tree; what admission reads of the SuperPod is there
        assert state.allocator is None and not state.observed
        assert state.profile is not None and state.resource
        assert "team/held" not in state.pending, (
            "a placed partition does not wait on a replica that does not own it"
        )
        fleet.inventory_changed()
        assert state.allocator is None

        fleet.reload(["sp"], [held])  # taken: built from the mirror, the fresh list restored into it
        allocator = state.allocator
        assert allocator is not None
        restored = allocator.placement_of("team/held")
        assert restored is not None
        assert allocator.capacity().allocated == 16
        new = plan(allocator, 16)  # the rest of the SuperPod's usable devices: never one that is held
        assert not devices(new) & devices(restored)

        fleet.unmodel("sp")  # given up: the model goes, the spec and the partitions stay
        assert state.allocator is None and state.profile is not None
        assert "team/held" in fleet.partitions
        fleet.inventory_changed()
        assert state.allocator is None
    finally:
        await fleet.stop()


async def test_one_replica_alone_models_every_superpod():
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=4)
    fleet = fleet_module.Fleet(api, clock=lambda: NOW)  # type: ignore[arg-type]
    await fleet.start()
    try:
        assert fleet.superpods["sp"].allocator is not None
        fleet.unmodel("sp")  # nothing to give up without Leases
        assert fleet.superpods["sp"].allocator is not None
    finally:
        await fleet.stop()
