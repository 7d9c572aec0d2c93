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
