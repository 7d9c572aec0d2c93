"""The allocations as the mover sees them, and the goal a request sets.

`Occupancy` holds every placed partition as an `Occupant`: its slots as (node index, device mask) in rank
order, its blocks, the tiers its span and its blocks have now (a move may never widen them), whether it may
move and how many running pods a move would disturb. `Goal` is what a request needs from the free devices:
`slots` slots of `pod_size` inside one domain of `level`, in blocks of `block_slots` slots each inside one
domain of `block_level` (the allocator's counting: a domain hosts as many blocks as its slot capacity holds,
`units` below). Goals are checked on plain per-node free masks, so a search can try states cheaply
(`GoalCount` keeps the check current while single nodes change). A search answers with a `Plan`: the new
positions of the slots that move; `subset_cost` is what moving a set of slots costs, `acyclic` whether the
moves can be ordered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from superpod.placement import allocator as placement_allocator
from superpod.placement import mobility
from superpod.placement import request as placement_request
from superpod.placement import span as placement_span
from superpod.topology import noderules
from superpod.topology import tree as topology_tree

Slot = tuple[int, int]  # (occupant index, slot index)
Position = tuple[int, int]  # (node index, device mask)


@dataclasses.dataclass(frozen=True)
class Occupant:
    """A placed partition."""

    pid: str
    slots: tuple[tuple[int, int], ...]  # (node index, device mask) per slot, in rank order
    pod_size: int
    block_slots: int  # slots per block; blocks are consecutive runs of slots
    span_tier: int  # profile tier index of the lowest domain holding every slot
    block_tiers: tuple[int, ...]  # the same per block
    movable: bool
    running_pods: int

    def blocks(self) -> range:
        return range(len(self.slots) // self.block_slots)

    def block_of(self, slot: int) -> int:
        return slot // self.block_slots

    def fits(self, tree: topology_tree.TopologyTree, slots: Sequence[tuple[int, int]]) -> bool:
        """Whether `slots` (new positions, rank order) keep its span and every block's tier, or narrow them."""
        if placement_span.span(tree, slots)[0] > self.span_tier:
            return False
        k = self.block_slots
        return all(
            placement_span.span(tree, slots[b * k : (b + 1) * k])[0] <= tier
            for b, tier in enumerate(self.block_tiers)
        )


class Occupancy:
    """Free masks and occupants of one allocator, read once; the allocator is not kept."""

    def __init__(
        self,
        allocator: placement_allocator.Allocator,
        policy: mobility.Policy,
        workloads: Mapping[str, mobility.Workload],
    ) -> None:
        tree = allocator.tree
        self.tree = tree
        self.rule = tree.profile.rule
        state = allocator.state
        self.free = list(state.free)  # healthy, unheld; reserve nodes included (see `usable`)
        self.usable = [not node.reserve for node in tree.nodes]
        self.occupants: list[Occupant] = []
        self.on_node: dict[int, list[tuple[int, int]]] = {}  # node -> (occupant, slot) on it
        tiers = {tier.name: index for index, tier in enumerate(tree.profile.tiers)}
        for pid, placement in sorted(allocator.partitions.items()):
            slots = []
            for slot in placement.slots:
                index = tree.device_index[slot.node]
                mask = 0
                for device in slot.devices:
                    mask |= 1 << index[device]
                slots.append((tree.by_name[slot.node].index, mask))
            unhealthy = any(state.unhealthy[node] & mask for node, mask in slots)
            workload = workloads.get(pid)
            if workload is None:  # unknown to the caller: assume it runs and must stay
                workload = mobility.Workload(running_pods=len(slots), movable=False)
            blocks = max(1, len(placement.block_tiers))
            occupant = Occupant(
                pid=pid,
                slots=tuple(slots),
                pod_size=placement.pod_size,
                block_slots=max(1, len(slots) // blocks),
                span_tier=tiers[placement.tier_span],
                block_tiers=tuple(tiers[tier] for tier in placement.block_tiers)
                or (tiers[placement.tier_span],),
                # whole-node partitions hold devices no slot names, and a partition holding an unhealthy
                # device is repair's business: neither is moved
                movable=mobility.may_move(policy, workload) and not placement.whole_nodes and not unhealthy,
                running_pods=workload.running_pods,
            )
            position = len(self.occupants)
            self.occupants.append(occupant)
            for slot_index, (node, _) in enumerate(slots):
                self.on_node.setdefault(node, []).append((position, slot_index))

    def movable_slots(self) -> list[tuple[int, int]]:
        """(occupant, slot) of every slot that may move, off reserve nodes or on them."""
        return [
            (o, i)
            for o, occupant in enumerate(self.occupants)
            if occupant.movable
            for i in range(len(occupant.slots))
        ]

    def slot_capacity(self, node: int, mask: int, pod_size: int) -> int:
        """Pods of `pod_size` the free `mask` of `node` hosts (0 on reserve nodes)."""
        if not self.usable[node]:
            return 0
        tree_node = self.tree.nodes[node]
        return noderules.slot_capacity(self.rule, tree_node.modules, mask, pod_size)


@dataclasses.dataclass(frozen=True)
class Goal:
    """What a request needs from the free devices; see the module docstring."""

    pod_size: int
    whole_nodes: bool
    slots: int
    block_slots: int
    block_level: int
    level: int
    tier: int  # profile tier index the request's placement would span (for messages and ordering)

    @property
    def blocks(self) -> int:
        return self.slots // self.block_slots

    def node_capacity(self, occupancy: Occupancy, node: int, mask: int) -> int:
        if self.whole_nodes and mask != occupancy.tree.nodes[node].full_mask:
            return 0
        return occupancy.slot_capacity(node, mask, self.pod_size)

    def met(self, occupancy: Occupancy, free: Sequence[int]) -> bool:
        """Whether the request is placeable on these free masks: some domain of `level` hosts every block."""
        tree = occupancy.tree
        caps = [self.node_capacity(occupancy, node, free[node]) for node in range(len(tree.nodes))]
        return any(units >= self.blocks for units in self.units(tree, caps, self.level))

    def units(self, tree: topology_tree.TopologyTree, caps: Sequence[int], level: int) -> list[int]:
        """Per domain of `level` (>= block_level): the blocks its block-level domains host, from node caps."""
        sums = [0] * len(tree.levels[self.block_level])
        for node, cap in enumerate(caps):
            if cap:
                sums[tree.nodes[node].domains[self.block_level]] += cap
        units = [value // self.block_slots for value in sums]
        for current in range(self.block_level, level):
            parents = tree.parents[current]
            above = [0] * len(tree.levels[current + 1])
            for domain, value in enumerate(units):
                if value:
                    above[parents[domain]] += value
            units = above
        return units


class GoalCount:
    """`Goal.met` kept up to date while single nodes' free masks change (for searches that try many states)."""

    def __init__(self, goal: Goal, occupancy: Occupancy, free: Sequence[int]) -> None:
        self.goal = goal
        self.occupancy = occupancy
        tree = occupancy.tree
        self.caps = [goal.node_capacity(occupancy, node, free[node]) for node in range(len(tree.nodes))]
        self.sums = [0] * len(tree.levels[goal.block_level])
        for node, cap in enumerate(self.caps):
            self.sums[tree.nodes[node].domains[goal.block_level]] += cap
        self.units = goal.units(tree, self.caps, goal.level)

    def set(self, node: int, free: int) -> None:
        """Node `node` now has the free mask `free`."""
        goal = self.goal
        new = goal.node_capacity(self.occupancy, node, free)
        old = self.caps[node]
        if new == old:
            return
        self.caps[node] = new
        domains = self.occupancy.tree.nodes[node].domains
        block_domain = domains[goal.block_level]
        before = self.sums[block_domain] // goal.block_slots
        self.sums[block_domain] += new - old
        self.units[domains[goal.level]] += self.sums[block_domain] // goal.block_slots - before

    def met(self) -> bool:
        return max(self.units, default=0) >= self.goal.blocks


def goals(
    allocator: placement_allocator.Allocator, request: placement_request.PlacementRequest
) -> list[Goal]:
    """The goals that would place `request`, best first: every block in its lowest tier with the partition
    in its lowest tier, then one tier wider, ... up to maxTier; then the same without blocks (blocks are
    soft). Empty when the request can never fit."""
    tree = allocator.tree
    shape = placement_request.resolve(request, tree)
    ideal = allocator.ideal_tiers(request)
    if isinstance(shape, str) or ideal is None:
        return []
    profile = tree.profile

    def level_of(tier_name: str) -> int:
        index = profile.tier_index(tier_name)
        assert index is not None
        return max(0, index - tree.node_tier)

    def tier_of(level: int, slots: int) -> int:
        small = slots == 1 and shape.pod_size <= profile.rule.module_size
        if level == 0 and tree.node_tier > 0 and (small or shape.module_only):
            return tree.node_tier - 1
        return tree.node_tier + level

    block_level, level = level_of(ideal[0]), level_of(ideal[1])

    def goal(block_slots: int, block_level: int, level: int) -> Goal:
        return Goal(
            pod_size=shape.pod_size,
            whole_nodes=shape.whole_nodes,
            slots=shape.slots,
            block_slots=block_slots,
            block_level=block_level,
            level=level,
            tier=tier_of(level, shape.slots),
        )

    out = []
    if shape.blocks > 1:
        for current in range(max(level, block_level), shape.max_level + 1):
            out.append(goal(shape.block_slots, block_level, current))
    for current in range(level, shape.max_level + 1):
        out.append(goal(shape.slots, current, current))
    return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """New positions of the slots that move."""

    positions: dict[Slot, Position]


def subset_cost(occupancy: Occupancy, slots: Sequence[Slot]) -> tuple[int, int, int]:
    """(devices moved, running pods disturbed, partitions moved) when exactly `slots` move."""
    owners = {o for o, _ in slots}
    return (
        sum(occupancy.occupants[o].pod_size for o, _ in slots),
        sum(occupancy.occupants[o].running_pods for o in owners),
        len(owners),
    )


def distance(a: Sequence[int], b: Sequence[int]) -> int:
    """The lowest level at which two nodes' paths meet (0: the same node)."""
    return next(level for level in range(len(a)) if a[level:] == b[level:])


def acyclic(waits: Sequence[tuple[int, int]]) -> bool:
    """Whether the 'must go after' pairs between partitions leave an order (no cycle)."""
    after: dict[int, set[int]] = {}
    for first, second in waits:
        after.setdefault(first, set()).add(second)
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(node: int) -> bool:
        state[node] = 1
        for nxt in after.get(node, ()):
            mark = state.get(nxt)
            if mark == 1 or (mark is None and not visit(nxt)):
                return False
        state[node] = 2
        return True

    return all(state.get(node) == 2 or visit(node) for node in list(after))
