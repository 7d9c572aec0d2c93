"""Repair: slots on failed devices move to healthy ones, nearest first, inside the partition's tier span."""

from __future__ import annotations

from superpod import placement
from superpod.api import partition as api_partition

from tests.unit.placement.builders import make_allocator, place


def test_a_failed_die_is_replaced_on_the_same_node_when_it_has_room():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    before = place(allocator, "a", 2)
    repaired = allocator.repair("a", [before.device_ids()[0]])
    assert isinstance(repaired, placement.Placement)
    assert repaired.slots[0].node == before.slots[0].node
    assert before.device_ids()[0] not in repaired.device_ids()
    assert repaired.tier_span == "module"


def test_a_full_node_moves_its_slot_to_a_reserve_node():
    allocator = make_allocator("cloudmatrix-384")  # nodes 46 and 47 are the reserve
    place(allocator, "fill", 46 * 16 - 16 * 2)  # two free nodes remain besides the reserve
    before = place(allocator, "job", 32)  # takes them
    failed = before.device_ids()[0]
    repaired = allocator.repair("job", [failed])
    assert isinstance(repaired, placement.Placement)
    moved = next(slot for slot in repaired.slots if slot.rank == 0)
    assert moved.node == "node-0-46"
    assert [slot.rank for slot in repaired.slots] == [0, 16]
    assert allocator.capacity().unhealthy == 1  # the failed die, now released
    assert allocator.capacity().reserved == 16


def test_a_single_node_partition_moves_to_another_node_preferring_free_nodes_to_the_reserve():
    allocator = make_allocator("cloudmatrix-384")
    before = place(allocator, "job", 16)
    repaired = allocator.repair("job", [before.device_ids()[5]])
    assert isinstance(repaired, placement.Placement)
    assert repaired.slots[0].node == "node-0-01"
    assert repaired.tier_span == "node"


def test_a_slot_sharing_its_node_with_another_slot_stays_on_that_node():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    before = place(allocator, "job", 8, devices_per_pod=4)  # two slots on one node, 8 dies left there
    repaired = allocator.repair("job", [before.device_ids()[0]])
    assert isinstance(repaired, placement.Placement)
    assert {slot.node for slot in repaired.slots} == {before.slots[0].node}
    assert repaired.tier_span == "node"


def test_repair_without_room_in_the_tier_span_keeps_the_partition_and_says_why():
    allocator = make_allocator("atlas-950", nodes=16)
    before = place(allocator, "job", 16, devices_per_pod=4)  # two nodes of rack 0
    place(allocator, "rest", 112)
    repaired = allocator.repair("job", [before.device_ids()[0]])
    assert isinstance(repaired, placement.Rejection)
    assert repaired.reason == api_partition.PendingReason.FRAGMENTED
    assert "within its rack" in repaired.message
    assert allocator.placement_of("job") == before
    assert allocator.capacity().allocated == 128  # the failed device stays with the partition


def test_repair_of_an_unknown_partition_is_a_rejection():
    allocator = make_allocator("atlas-950", nodes=8)
    assert isinstance(allocator.repair("ghost", ["node-0-0/npu-0"]), placement.Rejection)


def test_repair_of_a_whole_node_partition_moves_to_a_whole_free_node():
    allocator = make_allocator("ascend-910b", nodes=3)
    before = place(allocator, "job", 8, whole_nodes=True)
    place(allocator, "other", 1)
    repaired = allocator.repair("job", [before.device_ids()[0]])
    assert isinstance(repaired, placement.Placement)
    assert repaired.held[0][0] == "node-0-2"
    assert len(repaired.held[0][1]) == 8
