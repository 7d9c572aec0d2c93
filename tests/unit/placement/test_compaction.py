"""plan_compaction: unbound partitions moved, a domain at a time, to reopen whole nodes or racks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from superpod.placement import compaction, mobility, moves

from tests.unit.placement.builders import make_allocator
from tests.unit.placement.defrag_builders import held, hold, tier_index
from tests.unit.placement.test_defrag_properties import scattered_states

UNBOUND = mobility.Workload()


def one_per_node():
    """Atlas 950, two racks of eight nodes, a one-NPU unbound partition on every node."""
    allocator = make_allocator("atlas-950", nodes=16)
    for node in range(16):
        hold(allocator, f"one-{node:02d}", (node, (node % 8,)))
    return allocator, {pid: UNBOUND for pid in allocator.partitions}


def after(allocator, planned):
    trial = allocator.copy()
    moves.carry_out(trial, planned)
    return trial


@pytest.mark.parametrize(
    ("case", "tier", "threshold", "max_moves", "max_devices", "count", "fragmentation"),
    [
        ("nodes are emptied until the node fragmentation is gone", None, 0.0, 100, None, 14, 0.0),
        ("it stops once the fragmentation is at the threshold", None, 0.5, 100, None, 7, 0.5),
        ("the move budget bounds the plan", None, 0.0, 3, None, 3, 1 - 3 * 8 / 112),
        ("the device budget bounds the plan", None, 0.0, 100, 5, 5, 1 - 5 * 8 / 112),
        ("a rack is emptied into the other rack", "rack", 0.0, 100, None, 8, 1 - 64 / 112),
        ("nothing moves below the threshold", None, 1.0, 100, None, 0, 1.0),
    ],
)
def test_compaction_reopens_domains_within_its_budget(
    case, tier, threshold, max_moves, max_devices, count, fragmentation
):
    allocator, workloads = one_per_node()
    before = allocator.capacity()
    planned = compaction.plan_compaction(
        allocator, workloads, threshold=threshold, max_moves=max_moves, max_devices=max_devices, tier=tier
    )
    assert allocator.capacity() == before, "planning changes nothing"
    assert len(planned) == count
    level = 1 if tier == "rack" else 0
    assert after(allocator, planned).state.fragmentation(level) == pytest.approx(fragmentation)


def test_running_partitions_stay_under_unbound_and_move_when_movable():
    allocator, workloads = one_per_node()
    running = {pid: mobility.Workload(running_pods=1, movable=True) for pid in workloads}
    assert compaction.plan_compaction(allocator, running, threshold=0.0, max_moves=100) == ()
    planned = compaction.plan_compaction(
        allocator, running, threshold=0.0, max_moves=100, policy=mobility.Policy.MOVABLE
    )
    assert len(planned) == 14
    assert all(move.pods_disturbed == 1 for move in planned)


def test_a_domain_with_one_partition_that_may_not_move_is_left_alone():
    allocator, workloads = one_per_node()
    workloads = {
        **workloads,
        **{f"one-{node:02d}": mobility.Workload(running_pods=1) for node in range(1, 16)},
    }
    # only node 0's partition may move, and only to a touched node: it joins node 1's
    planned = compaction.plan_compaction(allocator, workloads, threshold=0.0, max_moves=100)
    assert [move.partition_id for move in planned] == ["one-00"]
    assert planned[0].after.slots[0].node == "node-0-01"


def test_a_tier_below_the_node_is_refused():
    allocator, workloads = one_per_node()
    with pytest.raises(ValueError, match="not module"):
        compaction.plan_compaction(allocator, workloads, threshold=0.0, max_moves=1, tier="module")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=scattered_states())
def test_compaction_only_lowers_the_fragmentation_and_keeps_every_promise(state):
    allocator, workloads = state
    for tier, level in (("node", 0), ("rack", 1)):
        if level >= len(allocator.tree.levels) - 1:
            continue
        planned = compaction.plan_compaction(allocator, workloads, threshold=0.0, max_moves=6, tier=tier)
        assert len(planned) <= 6
        owner = {device: pid for pid, found in allocator.partitions.items() for device in held(found)}
        for move in planned:
            assert mobility.may_move(mobility.Policy.UNBOUND, workloads[move.partition_id])
            assert tier_index(allocator, move.after.tier_span) <= tier_index(allocator, move.before.tier_span)
            for new, old in zip(move.after.block_tiers, move.before.block_tiers, strict=True):
                assert tier_index(allocator, new) <= tier_index(allocator, old)
            for device in held(move.before):
                assert owner.pop(device) == move.partition_id
            for device in held(move.after):
                assert device not in owner
                owner[device] = move.partition_id
        before = allocator.state.fragmentation(level)
        result = after(allocator, planned).state.fragmentation(level)
        assert result < before or not planned
