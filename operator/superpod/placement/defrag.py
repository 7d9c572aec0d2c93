"""Defragmentation: the cheapest moves that make a Fragmented request placeable.

`plan_defragmentation(allocator, request, policy=..., workloads=...)` answers, without changing anything:

- `Moves((), placement)` when the request fits as things are;
- `Moves(moves, placement)` when moving some partitions makes it fit: the moves in a safe order
  (`superpod.placement.moves`), then the request's placement once they are done;
- the allocator's `Rejection` when the request does not fit for a reason moves cannot change
  (InsufficientCapacity, Unsatisfiable), or a Fragmented one saying why no allowed move helps.

The request goes to its best tier: the lowest tiers its blocks and the partition could have on an empty
SuperPod, else the lowest reachable (`occupancy.goals`). Among the plans reaching it: fewest devices moved,
then fewest running pods disturbed (every pod of a moved running partition restarts: its rank table
changes), then fewest partitions moved. A moved partition keeps its ranks' order (slot i moves to slot i),
never spans a wider tier than before and never breaks a block into a wider tier. What may move is the
`policy` (`Never`, `Unbound`: partitions without a running pod, `Movable`: also those marked movable) applied
to each partition's `Workload`; a partition missing from `workloads` counts as running and not movable.
Partitions holding whole nodes or an unhealthy device never move.

Small instances are searched exhaustively (`exhaustive`: the answer is the cheapest, `Moves.exact`); when
there are more movable slots than `exact_slots`, or the search would try more than `exact_budget`
positions, the heuristic (`evacuation`) answers. Every plan is checked before it is returned: the moves are
carried out on a copy of the allocator, in their order, and the request placed there.
"""

from __future__ import annotations

from collections.abc import Mapping

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import evacuation, exhaustive, mobility, moves, result
from superpod.placement import occupancy as placement_occupancy
from superpod.placement import request as placement_request

PendingReason = api_partition.PendingReason


def plan_defragmentation(
    allocator: placement_allocator.Allocator,
    request: placement_request.PlacementRequest,
    *,
    policy: mobility.Policy = mobility.Policy.UNBOUND,
    workloads: Mapping[str, mobility.Workload] | None = None,
    exact_slots: int = 10,
    exact_budget: int = 20_000,
) -> moves.Moves | result.Rejection:
    """See the module docstring. Pure: `allocator` is not changed."""
    decision = allocator.plan_partition(request)
    if isinstance(decision, result.Placement):
        return moves.Moves((), decision, exact=True)
    if decision.reason is not PendingReason.FRAGMENTED:
        return decision
    occupancy = placement_occupancy.Occupancy(allocator, policy, workloads or {})
    movable = sum(1 for occupant in occupancy.occupants if occupant.movable)
    if not movable:
        return result.Rejection(
            PendingReason.FRAGMENTED, f"{decision.message}; no partition may move (policy {policy.value})"
        )
    proven = True
    for goal in placement_occupancy.goals(allocator, request):
        try:
            plan = exhaustive.search(occupancy, goal, max_slots=exact_slots, budget=exact_budget)
        except exhaustive.TooLarge:
            proven = False
            plan = evacuation.search(occupancy, goal)
        if plan is None:
            continue
        found = materialise(allocator, occupancy, plan, request, goal)
        if found is not None and found[1] is not None:
            return moves.Moves(found[0], found[1], exact=proven)
        proven = False  # a plan that failed its check is a heuristic's slip; later goals are not proven
    return result.Rejection(
        PendingReason.FRAGMENTED,
        f"{decision.message}; no moves of the {movable} partitions the policy {policy.value} lets move make room",
    )


def materialise(
    allocator: placement_allocator.Allocator,
    occupancy: placement_occupancy.Occupancy,
    plan: placement_occupancy.Plan,
    request: placement_request.PlacementRequest | None,
    goal: placement_occupancy.Goal | None,
) -> tuple[tuple[moves.Move, ...], result.Placement | None] | None:
    """The plan as moves in a safe order, checked on a copy: every move accepted in turn, then (given a
    request) the request placed within the goal's tiers. None when the check fails."""
    tree = allocator.tree
    changed: dict[int, dict[int, tuple[int, int]]] = {}
    for (o, i), position in plan.positions.items():
        if position != occupancy.occupants[o].slots[i]:
            changed.setdefault(o, {})[i] = position
    found: list[moves.Move] = []
    for o, new in sorted(changed.items()):
        occupant = occupancy.occupants[o]
        slots = [new.get(i, position) for i, position in enumerate(occupant.slots)]
        names = [
            (
                tree.nodes[node].name,
                tuple(d for bit, d in enumerate(tree.nodes[node].devices) if mask >> bit & 1),
            )
            for node, mask in slots
        ]
        before = allocator.placement_of(occupant.pid)
        assert before is not None
        after = allocator.relocated(occupant.pid, names)
        found.append(
            moves.Move(
                partition_id=occupant.pid,
                before=before,
                after=after,
                devices_moved=len(new) * occupant.pod_size,
                pods_disturbed=occupant.running_pods,
            )
        )
    ordered = moves.safe_order(found)
    if ordered is None:
        return None
    trial = allocator.copy()
    try:
        moves.carry_out(trial, ordered)
    except ValueError:
        return None
    if request is None or goal is None:
        return ordered, None
    placement = trial.plan_partition(request)
    if not isinstance(placement, result.Placement) or not _within(allocator, placement, goal):
        return None
    return ordered, placement


def _within(
    allocator: placement_allocator.Allocator, placement: result.Placement, goal: placement_occupancy.Goal
) -> bool:
    profile = allocator.tree.profile
    return (profile.tier_index(placement.tier_span) or 0) <= goal.tier
