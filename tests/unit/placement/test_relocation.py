"""Snapshots and moves: `copy` is independent of its original, `relocated` keeps ranks and blocks,
`relocate` takes only free devices (or the partition's own) and changes nothing when refused."""

from __future__ import annotations

import pytest
from superpod import placement

from tests.unit.placement.builders import make_allocator, place


def _mutable_parts(value: object) -> list[object]:
    """Every list, dict and set inside `value`, itself included."""
    if isinstance(value, dict):
        return [value, *(part for item in value.values() for part in _mutable_parts(item))]
    if isinstance(value, list | set):
        return [value, *(part for item in value for part in _mutable_parts(item))]
    return []


def test_a_copy_shares_no_mutable_state_with_its_original():
    allocator = make_allocator("atlas-950", nodes=32)
    place(allocator, "a", 24)
    snapshot = allocator.copy()
    for name, value in vars(allocator.state).items():
        if name in ("tree", "rule", "_slot_tables"):  # read-only, and a cache of pure facts (shared)
            continue
        copied = vars(snapshot.state)[name]
        assert copied == value, name
        originals = {id(part) for part in _mutable_parts(value)}
        assert not originals & {id(part) for part in _mutable_parts(copied)}, name


def test_changes_to_a_copy_never_reach_the_original():
    allocator = make_allocator("cloudmatrix-384")
    place(allocator, "a", 16)
    before = allocator.capacity()
    snapshot = allocator.copy()
    place(snapshot, "b", 64)
    snapshot.release("a")
    snapshot.mark_unhealthy("node-0-10", ["Ascend910-0"])
    assert allocator.capacity() == before
    assert set(allocator.partitions) == {"a"}
    assert set(snapshot.partitions) == {"b"}


def test_relocated_keeps_the_ranks_and_the_blocks():
    allocator = make_allocator("atlas-950", nodes=32)
    before = place(allocator, "a", 32, block_size=16)
    slots = [(f"node-0-{30 - i:02d}", slot.devices) for i, slot in enumerate(before.slots)]
    after = allocator.relocated("a", slots)
    assert [slot.rank for slot in after.slots] == [slot.rank for slot in before.slots]
    assert [slot.node for slot in after.slots] == [node for node, _ in slots]
    assert len(after.block_tiers) == len(before.block_tiers) == 2
    assert after.pod_size == before.pod_size


@pytest.mark.parametrize(
    ("case", "slots", "message"),
    [
        ("a slot is missing", [("node-0-5", ("Ascend910-0", "Ascend910-1"))], "slots"),
        (
            "an unknown node",
            [("nowhere", ("Ascend910-0", "Ascend910-1")), ("node-0-5", ("Ascend910-2", "Ascend910-3"))],
            "unknown node",
        ),
        (
            "a device that does not exist",
            [("node-0-5", ("Ascend910-0", "Ascend910-99")), ("node-0-5", ("Ascend910-2", "Ascend910-3"))],
            "no device",
        ),
        (
            "a slot across two HiAM pairs",
            [("node-0-5", ("Ascend910-1", "Ascend910-2")), ("node-0-5", ("Ascend910-4", "Ascend910-5"))],
            "not one pod",
        ),
        (
            "one device given to two slots",
            [("node-0-5", ("Ascend910-0", "Ascend910-1")), ("node-0-5", ("Ascend910-0", "Ascend910-1"))],
            "two slots",
        ),
    ],
)
def test_relocated_refuses_slots_that_do_not_fit_the_partition(case, slots, message):
    allocator = make_allocator("cloudmatrix-384", nodes=8, reserve=0)
    place(allocator, "a", 4, devices_per_pod=2)
    with pytest.raises(ValueError, match=message):
        allocator.relocated("a", slots)


def test_relocate_moves_a_partition_onto_free_devices_and_frees_the_old_ones():
    allocator = make_allocator("atlas-950", nodes=16)
    before = place(allocator, "a", 8)
    target = allocator.relocated("a", [("node-0-09", before.slots[0].devices)])
    moved = allocator.relocate("a", target)
    assert moved == target
    assert allocator.placement_of("a") == target
    assert allocator.state.free[0] == allocator.tree.nodes[0].full_mask
    assert allocator.capacity().allocated == 8


def test_relocate_may_reuse_the_partitions_own_devices():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    before = place(allocator, "a", 4, devices_per_pod=2)  # pairs 0 and 1 of the first node
    node = before.slots[0].node
    target = allocator.relocated(
        "a", [(node, ("Ascend910-2", "Ascend910-3")), (node, ("Ascend910-4", "Ascend910-5"))]
    )
    assert isinstance(allocator.relocate("a", target), placement.Placement)
    assert allocator.placement_of("a") == target


def test_relocate_onto_a_device_another_partition_holds_is_refused_and_changes_nothing():
    allocator = make_allocator("atlas-950", nodes=16)
    first = place(allocator, "a", 8)
    second = place(allocator, "b", 8)
    before = allocator.capacity()
    target = allocator.relocated("a", [(second.slots[0].node, first.slots[0].devices)])
    conflict = allocator.relocate("a", target)
    assert isinstance(conflict, placement.Conflict)
    assert conflict.held_by == ("b",)
    assert allocator.placement_of("a") == first
    assert allocator.capacity() == before


def test_relocate_onto_an_unhealthy_device_is_refused():
    allocator = make_allocator("atlas-950", nodes=16)
    first = place(allocator, "a", 8)
    allocator.mark_unhealthy("node-0-09", ["npu-3"])
    target = allocator.relocated("a", [("node-0-09", first.slots[0].devices)])
    assert isinstance(allocator.relocate("a", target), placement.Conflict)
    assert allocator.placement_of("a") == first
