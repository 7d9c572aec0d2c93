"""plan_defragmentation: the cheapest moves that make a Fragmented request placeable, in a safe order."""

from __future__ import annotations

import pytest
from superpod import placement
from superpod.api import partition as api_partition
from superpod.placement import mobility

from tests.unit.placement.builders import make_allocator, place
from tests.unit.placement.defrag_builders import check_moves, hold, tiny_allocator

Reason = api_partition.PendingReason
Policy = mobility.Policy
UNBOUND = mobility.Workload()


def running(pods: int, *, movable: bool = False) -> mobility.Workload:
    return mobility.Workload(running_pods=pods, movable=movable)


def plan(allocator, request, policy=Policy.UNBOUND, workloads=None, **options):
    workloads = workloads if workloads is not None else {pid: UNBOUND for pid in allocator.partitions}
    before = allocator.capacity()
    outcome = placement.plan_defragmentation(
        allocator, request, policy=policy, workloads=workloads, **options
    )
    assert allocator.capacity() == before, "planning changes nothing"
    if isinstance(outcome, placement.Moves):
        check_moves(allocator, request, outcome, policy, workloads)
    return outcome


def split_dies():
    """Four A3 nodes, all full but node 0's last two HiAM pairs: one die of each held by a partition
    ('low' on die 12, 'high' on die 14), dies 13 and 15 free, so no whole pair is free."""
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    hold(allocator, "rest-0", *[(0, (d,)) for d in range(12)])
    for node in (1, 2, 3):
        hold(allocator, f"rest-{node}", *[(node, (d,)) for d in range(16)])
    hold(allocator, "low", (0, (12,)))
    hold(allocator, "high", (0, (14,)))
    fixed = {pid: running(16) for pid in allocator.partitions if pid.startswith("rest")}
    return allocator, fixed


def test_a_request_that_fits_needs_no_move():
    allocator = make_allocator("cloudmatrix-384")
    outcome = plan(allocator, placement.PlacementRequest(16))
    assert isinstance(outcome, placement.Moves)
    assert outcome.moves == ()
    assert outcome.placement == allocator.plan_partition(placement.PlacementRequest(16))


def test_too_few_free_devices_stay_insufficient_capacity():
    allocator = make_allocator("atlas-950", nodes=16)
    place(allocator, "most", 124, devices_per_pod=4)
    outcome = plan(allocator, placement.PlacementRequest(8))
    assert isinstance(outcome, placement.Rejection)
    assert outcome.reason == Reason.INSUFFICIENT_CAPACITY


def test_one_die_moves_inside_its_node_to_reopen_a_hiam_pair():
    allocator, fixed = split_dies()
    outcome = plan(
        allocator, placement.PlacementRequest(2), workloads={**fixed, "low": UNBOUND, "high": UNBOUND}
    )
    assert isinstance(outcome, placement.Moves)
    assert outcome.exact
    assert outcome.cost() == (1, 0, 1)
    (move,) = outcome.moves
    assert move.after.slots[0].node == move.before.slots[0].node == "node-0-0"
    assert outcome.placement.tier_span == "module"


@pytest.mark.parametrize(
    ("case", "low", "high", "policy", "moved"),
    [
        (
            "an unbound partition moves rather than a running one",
            running(1, movable=True),
            UNBOUND,
            Policy.MOVABLE,
            "high",
        ),
        (
            "of two unbound partitions the one first in name order moves",
            UNBOUND,
            UNBOUND,
            Policy.UNBOUND,
            "high",
        ),
        (
            "a running partition marked movable moves under Movable",
            running(1, movable=True),
            running(1),
            Policy.MOVABLE,
            "low",
        ),
        (
            "a running partition never moves under Unbound",
            running(1, movable=True),
            UNBOUND,
            Policy.UNBOUND,
            "high",
        ),
    ],
)
def test_who_moves_follows_the_policy_then_the_pods_disturbed(case, low, high, policy, moved):
    allocator, fixed = split_dies()
    outcome = plan(allocator, placement.PlacementRequest(2), policy, {**fixed, "low": low, "high": high})
    assert isinstance(outcome, placement.Moves), outcome
    assert [move.partition_id for move in outcome.moves] == [moved]


@pytest.mark.parametrize(
    ("case", "policy", "workloads", "says"),
    [
        (
            "policy Never moves nothing",
            Policy.NEVER,
            {"low": UNBOUND, "high": UNBOUND},
            "no partition may move",
        ),
        (
            "running partitions stay under Unbound",
            Policy.UNBOUND,
            {"low": running(1), "high": running(1)},
            "no partition may move",
        ),
        (
            "running partitions not marked movable stay under Movable",
            Policy.MOVABLE,
            {"low": running(1), "high": running(1)},
            "no partition may move",
        ),
        (
            "a partition the caller does not describe counts as running",
            Policy.UNBOUND,
            {},
            "no partition may move",
        ),
    ],
)
def test_nothing_moves_without_leave(case, policy, workloads, says):
    allocator, fixed = split_dies()
    outcome = plan(allocator, placement.PlacementRequest(2), policy, {**fixed, **workloads})
    assert isinstance(outcome, placement.Rejection)
    assert outcome.reason == Reason.FRAGMENTED
    assert says in outcome.message


def test_a_partition_holding_an_unhealthy_device_never_moves():
    # 'low' spoils node 0's pair 6 and also holds die 0 of node 1, which fails: it is repair's to move
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    hold(allocator, "rest-0", *[(0, (d,)) for d in range(12)])
    hold(allocator, "rest-1", *[(1, (d,)) for d in range(1, 16)])
    for node in (2, 3):
        hold(allocator, f"rest-{node}", *[(node, (d,)) for d in range(16)])
    hold(allocator, "low", (0, (12,)), (1, (0,)))
    hold(allocator, "high", (0, (14,)))
    fixed = {pid: running(16) for pid in allocator.partitions if pid.startswith("rest")}
    workloads = {**fixed, "low": UNBOUND, "high": running(1)}
    assert isinstance(plan(allocator, placement.PlacementRequest(2), workloads=workloads), placement.Moves)
    allocator.mark_unhealthy("node-0-1", ["Ascend910-0"])
    outcome = plan(allocator, placement.PlacementRequest(2), workloads=workloads)
    assert isinstance(outcome, placement.Rejection)
    assert "no partition may move" in outcome.message


def fewest_devices_first():
    """Node 0: 'r' (running, one die) spoils one of its two free pairs. Node 1: two unbound dies 'u1',
    'u2' spoil both of its pairs. Node 2 has one free die, node 3 none."""
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    hold(allocator, "fixed-0", *[(0, (d,)) for d in range(12)])
    hold(allocator, "r", (0, (12,)))
    hold(allocator, "fixed-1", *[(1, (d,)) for d in (*range(12), 13, 15)][:12])
    hold(allocator, "u1", (1, (12,)))
    hold(allocator, "u2", (1, (14,)))
    hold(allocator, "fixed-2", *[(2, (d,)) for d in range(15)])
    hold(allocator, "fixed-3", *[(3, (d,)) for d in range(16)])
    fixed = {pid: running(16) for pid in allocator.partitions if pid.startswith("fixed")}
    return allocator, fixed


@pytest.mark.parametrize(
    ("case", "policy", "moved", "cost"),
    [
        (
            "one running die moves rather than two unbound ones when both may",
            Policy.MOVABLE,
            ["r"],
            (1, 1, 1),
        ),
        ("two unbound dies move when the running one may not", Policy.UNBOUND, ["u1", "u2"], (2, 0, 2)),
    ],
)
def test_fewest_devices_moved_come_first(case, policy, moved, cost):
    allocator, fixed = fewest_devices_first()
    workloads = {**fixed, "r": running(1, movable=True), "u1": UNBOUND, "u2": UNBOUND}
    outcome = plan(allocator, placement.PlacementRequest(4, devices_per_pod=4), policy, workloads)
    assert isinstance(outcome, placement.Moves), outcome
    assert sorted(move.partition_id for move in outcome.moves) == moved
    assert outcome.cost() == cost
    assert outcome.exact


def test_a_partition_spanning_a_rack_moves_whole_into_another_rack_rather_than_stretch():
    # tiny profile: nodes of 4 devices, racks of two nodes. 'p' has a die on nodes 0 and 1 (rack 0); node 1
    # is otherwise full, nodes 2 and 3 (rack 1) have one die held each. A whole node for the request means
    # emptying node 0: p's slot there cannot go to rack 1 alone (p would span the pod), so both go.
    allocator = tiny_allocator()
    hold(allocator, "p", (0, (0,)), (1, (0,)))
    hold(allocator, "f", (1, (1,)), (1, (2,)), (1, (3,)))
    hold(allocator, "g", (2, (0,)))
    hold(allocator, "h", (3, (0,)))
    workloads = {"p": UNBOUND, "f": running(3), "g": running(1), "h": running(1)}
    for exact_slots in (10, 0):
        outcome = plan(allocator, placement.PlacementRequest(4), workloads=workloads, exact_slots=exact_slots)
        assert isinstance(outcome, placement.Moves), outcome
        (move,) = outcome.moves
        assert move.devices_moved == 2
        assert {slot.domains["rack"] for slot in move.after.slots} == {"rack-1"}
        assert move.after.tier_span in ("node", "rack")


def test_a_block_leaving_moves_whole_into_one_domain_of_its_tier():
    # 'q' has two blocks of two dies, each on one node (tier node) in different racks. Emptying node 0 moves
    # block 0: node 1 has one free die and node 3 two, so the block goes to node 3 whole, never split 1 + 1.
    allocator = tiny_allocator()
    hold(allocator, "q", (0, (0,)), (0, (2,)), (2, (0,)), (2, (2,)), block_size=2)
    hold(allocator, "f", (1, (1,)), (1, (2,)), (1, (3,)))
    hold(allocator, "g", (2, (3,)))
    hold(allocator, "h", (3, (0,)), (3, (2,)))
    assert allocator.placement_of("q").block_tiers == ("node", "node")
    workloads = {"q": UNBOUND, "f": running(3), "g": running(1), "h": running(2)}
    for exact_slots in (10, 0):
        outcome = plan(allocator, placement.PlacementRequest(4), workloads=workloads, exact_slots=exact_slots)
        assert isinstance(outcome, placement.Moves), outcome
        (move,) = outcome.moves
        assert move.devices_moved == 2
        assert [slot.node for slot in move.after.slots] == ["node-0-3", "node-0-3", "node-0-2", "node-0-2"]
        assert move.after.block_tiers == ("node", "node")


def test_a_move_into_devices_another_move_frees_comes_after_it():
    # tiny profile. Node 0: 'x' holds pair 0, pair 1 is free. Node 1: 'y' holds die 0, die 1 is free, pair 1
    # is held. Node 2: die 0 free, the rest held; node 3 full. Emptying node 0: x needs a whole pair, which
    # only node 1 can give once y has gone to node 2. So y moves first, then x.
    allocator = tiny_allocator()
    hold(allocator, "x", (0, (0, 1)))
    hold(allocator, "y", (1, (0,)))
    hold(allocator, "f", (1, (2,)), (1, (3,)), (2, (1,)), (2, (2,)), (2, (3,)))
    hold(allocator, "g", (3, (0, 1, 2, 3)))
    workloads = {"x": UNBOUND, "y": UNBOUND, "f": running(5), "g": running(1)}
    outcome = plan(allocator, placement.PlacementRequest(4), workloads=workloads)
    assert isinstance(outcome, placement.Moves), outcome
    assert [move.partition_id for move in outcome.moves] == ["y", "x"]
    assert outcome.cost() == (3, 0, 2)
    assert outcome.exact


def reopen_a_rack():
    """Atlas 950, two racks of eight nodes: every node of both racks holds one unbound one-NPU partition."""
    allocator = make_allocator("atlas-950", nodes=16)
    for node in range(16):
        hold(allocator, f"one-{node:02d}", (node, (node % 8,)))
    return allocator


def test_two_whole_nodes_are_reopened_inside_one_rack_the_requests_best_tier():
    allocator = reopen_a_rack()
    outcome = plan(allocator, placement.PlacementRequest(16))
    assert isinstance(outcome, placement.Moves), outcome
    assert outcome.placement.tier_span == "rack"
    assert outcome.cost() == (2, 0, 2)
    assert not outcome.exact  # 16 movable slots: the fast search answered


def test_a_whole_rack_is_reopened_by_moving_its_small_partitions_to_the_other_rack():
    allocator = reopen_a_rack()
    outcome = plan(allocator, placement.PlacementRequest(64, max_tier="rack"))
    assert isinstance(outcome, placement.Moves), outcome
    assert outcome.cost() == (8, 0, 8)
    racks = {move.after.slots[0].domains["rack"] for move in outcome.moves}
    assert len(racks) == 1 and racks != {outcome.placement.slots[0].domains["rack"]}
