"""Background compaction: which partitions to move so that whole nodes (or racks) come free again.

`plan_compaction(allocator, workloads, threshold=..., max_moves=...)` answers, without changing anything,
the moves (in a safe order) to carry out now; none while the fragmentation of the tier (see
`superpod.placement.state`) is at most `threshold`. Greedy, one domain of the tier at a time: among the
touched domains (some partition holds a device there) whose every holder may move, the one with the fewest
held devices is emptied. Its slots go only to domains of the tier that are touched already (never to an
untouched one, which would only move the fragmentation), nearest first and best fit, never widening a
partition's span or a block (`evacuation.Evacuation`). So each step makes one more domain untouched and
touches none: the fragmentation falls with every step. It stops at the threshold, when the budget
(`max_moves` partitions, `max_devices` devices: the caller's rate limit) would be exceeded, or when no
domain can be emptied. A partition moves at most once per plan.

What may move is the `policy` applied to each `Workload`, as for `plan_defragmentation`; the default,
Unbound, moves only partitions no pod runs on, so compaction disturbs nothing that runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from superpod.placement import allocator as placement_allocator
from superpod.placement import defrag, evacuation, mobility, moves
from superpod.placement import occupancy as placement_occupancy

CANDIDATES = 16  # domains tried per step, fewest held devices first


def plan_compaction(
    allocator: placement_allocator.Allocator,
    workloads: Mapping[str, mobility.Workload],
    *,
    threshold: float,
    max_moves: int,
    max_devices: int | None = None,
    tier: str | None = None,
    policy: mobility.Policy = mobility.Policy.UNBOUND,
) -> tuple[moves.Move, ...]:
    """See the module docstring. `tier` is the tier whose domains are reopened (default the node tier);
    ValueError for a tier below the node or unknown to the profile."""
    tree = allocator.tree
    level = level_of(allocator, tier)
    trial = allocator.copy()
    done: list[moves.Move] = []
    moved: set[str] = set()
    devices = 0
    while trial.state.fragmentation(level) > threshold and len(done) < max_moves:
        occupancy = placement_occupancy.Occupancy(trial, policy, workloads)
        held = trial.state.held_count[level]
        candidates = sorted(
            (held[domain], domain)
            for domain, found in enumerate(tree.levels[level])
            if held[domain]
            and not any(tree.nodes[n].reserve for n in range(found.first_node, found.end_node))
        )
        step = None
        tried = 0
        for count, domain in candidates:
            if tried >= CANDIDATES:
                break
            if max_devices is not None and devices + count > max_devices:
                break  # candidates only grow from here
            found = tree.levels[level][domain]
            leaving = [
                slot
                for node in range(found.first_node, found.end_node)
                for slot in occupancy.on_node.get(node, ())
            ]
            owners = {occupancy.occupants[o] for o, _ in leaving}
            if any(not owner.movable or owner.pid in moved for owner in owners):
                continue
            if len(done) + len(owners) > max_moves:
                continue
            tried += 1
            step = _empty(trial, occupancy, level, domain, leaving)
            if step is not None:
                break
        if step is None:
            break
        moves.carry_out(trial, step)
        done.extend(step)
        moved.update(move.partition_id for move in step)
        devices += sum(move.devices_moved for move in step)
    ordered = moves.safe_order(done)
    assert ordered is not None, "each step took only devices free before it"
    return ordered


def _empty(
    allocator: placement_allocator.Allocator,
    occupancy: placement_occupancy.Occupancy,
    level: int,
    domain: int,
    leaving: list[placement_occupancy.Slot],
) -> tuple[moves.Move, ...] | None:
    """The moves that send every slot of `domain` into touched domains of its level, or None."""
    tree = allocator.tree
    held = allocator.state.held_count[level]
    found = tree.levels[level][domain]

    def allowed(node: int) -> bool:
        home = tree.nodes[node].domains[level]
        return home != domain and held[home] > 0

    sending = evacuation.Evacuation(occupancy, leaving, allowed)
    for node in range(found.first_node, found.end_node):
        sending.set_aside(node, sending.free[node])
    plan = sending.run()
    if plan is None:
        return None
    materialised = defrag.materialise(allocator, occupancy, plan, None, None)
    return None if materialised is None else materialised[0]


def level_of(allocator: placement_allocator.Allocator, tier: str | None) -> int:
    """The tree level of `tier` (None: the node tier); ValueError below the node or for an unknown tier."""
    tree = allocator.tree
    if tier is None:
        return 0
    index = tree.profile.tier_index(tier)
    if index is None or index < tree.node_tier:
        names = ", ".join(tree.tier_name(level) for level in range(len(tree.levels)))
        raise ValueError(f"compaction reopens domains of {names}; not {tier}")
    return index - tree.node_tier
