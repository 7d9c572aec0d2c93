"""The allocator's contract: plan is pure, commit/release/restore keep the books, rejections say why."""

from __future__ import annotations

import pytest
from superpod import placement
from superpod.api import partition as api_partition

from tests.unit.placement.builders import make_allocator, place

Reason = api_partition.PendingReason


def test_planning_changes_nothing():
    allocator = make_allocator("cloudmatrix-384")
    before = allocator.capacity()
    first = allocator.plan_partition(placement.PlacementRequest(64))
    second = allocator.plan_partition(placement.PlacementRequest(64))
    assert first == second
    assert allocator.capacity() == before


def test_commit_then_release_restores_the_capacity():
    allocator = make_allocator("atlas-950")
    before = allocator.capacity()
    place(allocator, "a", 48)
    assert allocator.capacity().allocated == 48
    allocator.release("a")
    assert allocator.capacity() == before


def test_committing_a_stale_plan_is_refused():
    allocator = make_allocator("cloudmatrix-384")
    decision = allocator.plan_partition(placement.PlacementRequest(16))
    assert isinstance(decision, placement.Placement)
    allocator.commit("a", decision)
    with pytest.raises(ValueError, match="not free"):
        allocator.commit("b", decision)


def test_restore_refuses_a_device_another_partition_holds():
    allocator = make_allocator("cloudmatrix-384")
    taken = place(allocator, "a", 2)
    conflict = allocator.restore("b", taken.slots)
    assert isinstance(conflict, placement.Conflict)
    assert conflict.held_by == ("a",)
    assert allocator.capacity().allocated == 2


def test_restore_rebuilds_the_same_books_as_commit():
    planner = make_allocator("atlas-950")
    original = place(planner, "a", 24)
    rebuilt = make_allocator("atlas-950")
    restored = rebuilt.restore("a", original.api_slots())
    assert isinstance(restored, placement.Placement)
    assert restored.device_ids() == original.device_ids()
    assert rebuilt.capacity() == planner.capacity()


@pytest.mark.parametrize(
    ("profile", "npus", "fields"),
    [
        pytest.param("cloudmatrix-384", 800, {}, id="more devices than the superpod has"),
        pytest.param("atlas-950", 128, {"max_tier": "rack"}, id="a partition larger than its max tier"),
        pytest.param("cloudmatrix-384", 3, {"devices_per_pod": 3}, id="an odd pod size on A3"),
        pytest.param("ascend-910a", 3, {"devices_per_pod": 3}, id="three devices per pod on 910A"),
        pytest.param("atlas-950", 8, {"max_tier": "galaxy"}, id="an unknown tier name"),
        pytest.param("atlas-950", 12, {"block_size": 8}, id="npus not a multiple of the block"),
        pytest.param("cloudmatrix-384", 4, {"max_tier": "module"}, id="more than a module within a module"),
    ],
)
def test_impossible_requests_are_unsatisfiable(profile, npus, fields):
    decision = make_allocator(profile).plan_partition(placement.PlacementRequest(npus, **fields))
    assert isinstance(decision, placement.Rejection)
    assert decision.reason == Reason.UNSATISFIABLE
    assert "asked" in decision.message and "\n" not in decision.message


def test_a_full_superpod_reports_insufficient_capacity_with_the_largest_block():
    allocator = make_allocator("cloudmatrix-384")
    place(allocator, "big", 736)  # everything but the two reserve nodes
    decision = allocator.plan_partition(placement.PlacementRequest(1))
    assert isinstance(decision, placement.Rejection)
    assert decision.reason == Reason.INSUFFICIENT_CAPACITY
    assert "free 0 of 768 (32 reserved, 0 unhealthy)" in decision.message
    assert "largest free block: module 0, node 0, superpod 0" in decision.message


def test_free_devices_without_a_whole_free_node_are_fragmented():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    for node in range(4):
        place(allocator, f"small-{node}", 12)  # best fit puts each on its own node: 4 free per node
    decision = allocator.plan_partition(placement.PlacementRequest(16))
    assert isinstance(decision, placement.Rejection)
    assert decision.reason == Reason.FRAGMENTED


def _books(allocator: placement.Allocator) -> tuple[object, ...]:
    state = allocator.state
    return (
        allocator.capacity(),
        dict(allocator.partitions),
        list(state.held),
        [list(level) for level in state.partitions_in],
        {key: [list(level) for level in caps] for key, caps in state.caps.items()},
        {pid: dict(allocator.held_by(pid)) for pid in allocator.partitions},
        {node.index: dict(allocator.holders(node.index)) for node in allocator.tree.nodes},
    )


def test_released_frees_the_partitions_inside_the_block_and_puts_them_back_exactly():
    allocator = make_allocator("atlas-950", nodes=16)
    for pid, npus in (("a", 64), ("b", 32), ("c", 24), ("d", 8)):
        place(allocator, pid, npus)
    before = _books(allocator)
    big = placement.PlacementRequest(48, max_tier="rack")
    assert isinstance(allocator.plan_partition(big), placement.Rejection)
    with allocator.released(["a", "unknown", "a"]):
        assert allocator.placement_of("a") is None
        assert allocator.capacity().free == before[0].free + 64  # type: ignore[attr-defined]
        assert isinstance(allocator.plan_partition(big), placement.Placement)
    assert _books(allocator) == before


def test_released_puts_the_partitions_back_when_the_block_raises():
    allocator = make_allocator("cloudmatrix-384", nodes=8)
    place(allocator, "a", 16)
    place(allocator, "b", 3)
    before = _books(allocator)
    with pytest.raises(KeyError), allocator.released(["a", "b"]):
        raise KeyError("inside")
    assert _books(allocator) == before


def test_a_commit_on_released_devices_inside_the_block_cannot_be_put_back():
    allocator = make_allocator("ascend-910b", nodes=2)
    place(allocator, "a", 8)
    place(allocator, "b", 8)
    with pytest.raises(RuntimeError, match="partitions a cannot be put back"), allocator.released(["a", "b"]):
        place(allocator, "thief", 8, max_tier="node")
    assert allocator.placement_of("thief") is not None
    assert allocator.placement_of("b") is not None  # the other one is back
    assert allocator.placement_of("a") is None


def test_held_by_and_holders_are_read_only_views_of_the_books():
    allocator = make_allocator("atlas-950", nodes=16)
    placed = place(allocator, "a", 12)
    held = allocator.held_by("a")
    assert sum(mask.bit_count() for mask in held.values()) == 12
    assert {allocator.tree.nodes[index].name for index in held} == {slot.node for slot in placed.slots}
    for index, mask in held.items():
        assert allocator.holders(index) == {"a": mask}
    assert allocator.held_by("nobody") == {}
    with pytest.raises(TypeError):
        held[0] = 1  # type: ignore[index]
