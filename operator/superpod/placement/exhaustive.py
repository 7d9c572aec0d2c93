"""The exact search for the cheapest moves, for small SuperPods (and as the tests' yardstick).

Which slots move decides the cost (devices moved, running pods of the partitions they belong to,
partitions), so subsets of the movable slots are tried cheapest first, and the first subset whose slots can
all be placed elsewhere so that the goal is met is the answer: no cheaper plan exists. For one subset: its
slots leave (their devices become free, labelled with the partition that frees them), then each slot tries
every position, one by one; a position is a node and a choice of devices up to symmetry (devices of one
module that are free for the same reason are interchangeable, so are nodes of one rack in the same state).
A branch is cut as soon as the goal is no longer met (placing more only takes devices) or a partition whose
slots are all placed spans a wider tier or block tier than before; a leaf counts when its moves have a safe
order (no partition takes devices of one that takes its own).

A slot never "moves" inside its own module (that is keeping it, which is cheaper). The search gives up,
raising `TooLarge`, when there are more than `max_slots` movable slots or it tries more than `budget`
positions; the caller then uses the fast heuristic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from superpod.placement import occupancy as placement_occupancy
from superpod.topology import noderules

START = -1  # the label of devices free before any move

Slot = placement_occupancy.Slot
Position = placement_occupancy.Position
Plan = placement_occupancy.Plan


class TooLarge(Exception):
    """The instance is beyond what the exact search does in its budget."""


def search(
    occupancy: placement_occupancy.Occupancy,
    goal: placement_occupancy.Goal,
    *,
    max_slots: int = 10,
    budget: int = 20_000,
) -> Plan | None:
    """The cheapest plan meeting `goal`, or None when no plan does (an empty plan when nothing must move)."""
    if goal.met(occupancy, occupancy.free):
        return Plan({})
    movable = [
        (o, i)
        for o, i in occupancy.movable_slots()
        if occupancy.usable[occupancy.occupants[o].slots[i][0]]  # vacating a reserve node never helps
    ]
    if len(movable) > max_slots:
        raise TooLarge(f"{len(movable)} movable slots")
    everything = _vacated(occupancy, movable)
    if not goal.met(occupancy, everything[0]):
        return None
    subsets = sorted(
        (subset for size in range(1, len(movable) + 1) for subset in itertools.combinations(movable, size)),
        key=lambda subset: (placement_occupancy.subset_cost(occupancy, subset), subset),
    )
    search = _Search(occupancy, goal, budget)
    for subset in subsets:
        plan = search.place(subset)
        if plan is not None:
            return plan
    return None


def _vacated(
    occupancy: placement_occupancy.Occupancy, slots: Sequence[Slot]
) -> tuple[list[int], list[dict[int, int]]]:
    """Free masks once `slots` have left, and per node the free devices by label (START or occupant)."""
    free = list(occupancy.free)
    labels: list[dict[int, int]] = [{START: mask} if mask else {} for mask in free]
    for o, i in slots:
        node, mask = occupancy.occupants[o].slots[i]
        free[node] |= mask
        labels[node][o] = labels[node].get(o, 0) | mask
    return free, labels


class _Search:
    def __init__(
        self, occupancy: placement_occupancy.Occupancy, goal: placement_occupancy.Goal, budget: int
    ) -> None:
        self.occupancy = occupancy
        self.goal = goal
        self.budget = budget
        self.tree = occupancy.tree

    def place(self, subset: Sequence[Slot]) -> Plan | None:
        occupancy = self.occupancy
        self.free, self.labels = _vacated(occupancy, subset)
        self.count = placement_occupancy.GoalCount(self.goal, occupancy, self.free)
        if not self.count.met():
            return None
        self.subset = list(subset)
        self.owners = {o for o, _ in subset}
        self.last_of = {o: max(i for p, i in subset if p == o) for o in self.owners}
        self.current: dict[Slot, Position] = {}
        self.waits: list[tuple[int, int]] = []  # (vacating occupant, occupant taking its devices)
        if self._next(0):
            return Plan(dict(self.current))
        return None

    def _next(self, depth: int) -> bool:
        if depth == len(self.subset):
            return placement_occupancy.acyclic(self.waits)
        o, i = slot = self.subset[depth]
        occupant = self.occupancy.occupants[o]
        for node, mask, takes in self._positions(slot):
            self.budget -= 1
            if self.budget < 0:
                raise TooLarge("search budget spent")
            taken = self._take(node, mask)
            self.current[slot] = (node, mask)
            waits = [(label, o) for label in takes if label not in (START, o)]
            self.waits.extend(waits)
            ok = self.count.met()
            if ok and i == self.last_of[o]:
                slots = [self.current.get((o, s), position) for s, position in enumerate(occupant.slots)]
                ok = occupant.fits(self.tree, slots)
            if ok and self._next(depth + 1):
                return True
            del self.waits[len(self.waits) - len(waits) :]
            del self.current[slot]
            self._give_back(node, taken)
        return False

    def _take(self, node: int, mask: int) -> dict[int, int]:
        taken = {label: part & mask for label, part in self.labels[node].items() if part & mask}
        for label, part in taken.items():
            self.labels[node][label] &= ~part
        self.free[node] &= ~mask
        self.count.set(node, self.free[node])
        return taken

    def _give_back(self, node: int, taken: dict[int, int]) -> None:
        for label, part in taken.items():
            self.labels[node][label] |= part
            self.free[node] |= part
        self.count.set(node, self.free[node])

    def _positions(self, slot: Slot) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """(node, mask, labels it takes) of every position up to symmetry, nearest to the slot first."""
        o, i = slot
        occupancy = self.occupancy
        occupant = occupancy.occupants[o]
        old_node, old_mask = occupant.slots[i]
        size = occupant.pod_size
        rule = occupancy.rule
        seen_nodes: set[tuple[object, ...]] = set()
        old_path = self.tree.nodes[old_node].domains
        order = sorted(
            (n for n in range(len(self.tree.nodes)) if occupancy.usable[n] and self.free[n]),
            key=lambda n: (placement_occupancy.distance(old_path, self.tree.nodes[n].domains), n),
        )
        for node in order:
            signature = self._node_signature(node, old_node)
            if signature in seen_nodes:
                continue
            seen_nodes.add(signature)
            modules = self.tree.nodes[node].modules
            labels = self.labels[node]
            if size < rule.module_size:
                seen_modules: set[tuple[tuple[int, int], ...]] = set()
                for module in modules:
                    if node == old_node and old_mask & module:
                        continue  # inside its own module: that is staying
                    counts = tuple(
                        sorted(
                            (label, (part & module).bit_count())
                            for label, part in labels.items()
                            if part & module
                        )
                    )
                    if sum(count for _, count in counts) < size or counts in seen_modules:
                        continue
                    seen_modules.add(counts)
                    for split in _splits(size, counts):
                        mask = 0
                        for (label, _), take in zip(counts, split, strict=True):
                            mask |= noderules.lowest_bits(labels[label] & module, take)
                        yield (
                            node,
                            mask,
                            tuple(label for (label, _), take in zip(counts, split, strict=True) if take),
                        )
            else:
                per_slot = size // rule.module_size
                whole = [
                    module
                    for module in modules
                    if self.free[node] & module == module and module.bit_count() == rule.module_size
                ]
                seen_combos: set[tuple[tuple[tuple[int, int], ...], ...]] = set()
                for combo in itertools.combinations(whole, per_slot):
                    mask = 0
                    for module in combo:
                        mask |= module
                    if node == old_node and mask == old_mask:
                        continue
                    key = tuple(sorted(self._module_signature(node, module) for module in combo))
                    if key in seen_combos:
                        continue
                    seen_combos.add(key)
                    takes = tuple(label for label, part in labels.items() if part & mask)
                    yield node, mask, takes

    def _module_signature(self, node: int, module: int) -> tuple[tuple[int, int], ...]:
        return tuple(
            sorted(
                (label, (part & module).bit_count())
                for label, part in self.labels[node].items()
                if part & module
            )
        )

    def _node_signature(self, node: int, old_node: int) -> tuple[object, ...]:
        """Nodes with equal signatures are interchangeable for the rest of the search."""
        tree_node = self.tree.nodes[node]
        mine = tuple(
            (o, s, self.current.get((o, s), self.occupancy.occupants[o].slots[s]))
            for o, s in self.occupancy.on_node.get(node, ())
            if o in self.owners
        ) + tuple((o, s, position) for (o, s), position in self.current.items() if position[0] == node)
        if len(self.tree.levels) == 1 or node == old_node:
            return ("node", node)
        return (
            tree_node.domains[1:],
            tuple(sorted(self.labels[node].items())),
            tuple(sorted(mine)),
        )


def _splits(size: int, counts: Sequence[tuple[int, int]]) -> Iterator[tuple[int, ...]]:
    """Ways to take `size` devices from labelled groups of the given counts, each as a count per group."""
    if not counts:
        if size == 0:
            yield ()
        return
    (_, first), rest = counts[0], counts[1:]
    for take in range(min(size, first), -1, -1):
        for tail in _splits(size - take, rest):
            yield (take, *tail)
