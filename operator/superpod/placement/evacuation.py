"""The fast search for moves, for SuperPods too large to search exhaustively.

1. Per node, for each number c of the request's slots it could host, the cheapest set of its movable slots
   to send away (all subsets when a node holds few movable slots, else the small ones and the cheapest
   prefixes).
2. Per domain of the goal's level, the cheapest mix of nodes that hosts the request: free room first (it
   costs nothing), then the cheapest extra slots, a knapsack over the nodes solved by dynamic programming on
   the missing slots only; with blocks, the same per block-level domain, then over them.
3. The cheapest domains are tried in turn: the request's slots are set aside, then every slot sent away
   finds a new place nearest its old one (its own node, its rack, ...), best fit, never on the request's
   devices, never widening its partition's span or a block's tier; a partition sent away whole that cannot
   go slot by slot moves whole into the tightest domain of its span's tier that holds it. The first domain
   where every slot finds a place, in an order with no cycle, gives the plan. When every try fails, the
   nodes they would have emptied are left out and the domains ranked again (a few rounds).

Costs are (devices moved, running pods disturbed, partitions moved), added per node, so a partition with
slots on two nodes counts twice here; the plan's real cost is computed once it is known.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

from superpod.placement import occupancy as placement_occupancy
from superpod.topology import noderules

Cost = tuple[int, int, int]
ZERO: Cost = (0, 0, 0)
NEVER: Cost = (1 << 60, 0, 0)
Slot = placement_occupancy.Slot
Position = placement_occupancy.Position
Option = tuple[Cost, tuple[Slot, ...]]  # what it costs, which slots leave
Link = tuple[int, int, "Link"] | None  # (node, extra slots, previous) of a knapsack solution

ALL_SUBSETS_UP_TO = 6  # movable slots on one node for which every subset is tried
DOMAINS_TRIED = 16
ROUNDS = 8  # rounds of tries, each without the nodes the failed tries of the round before used


def _add(a: Cost, b: Cost) -> Cost:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def search(
    occupancy: placement_occupancy.Occupancy, goal: placement_occupancy.Goal
) -> placement_occupancy.Plan | None:
    """A cheap plan meeting `goal`, or None when this search finds none."""
    if goal.met(occupancy, occupancy.free):
        return placement_occupancy.Plan({})
    finder = _Finder(occupancy, goal)
    for _ in range(ROUNDS):
        ranked = finder.ranked_domains()[:DOMAINS_TRIED]
        if not ranked:
            return None
        for _, domain, extra in ranked:
            plan = _realise(finder, domain, extra)
            if plan is not None:
                return plan
        # the nodes these tries would have emptied sent slots nowhere: the next round does without them
        finder.ban(node for _, _, extra in ranked for node in extra)
    return None


class _Finder:
    def __init__(self, occupancy: placement_occupancy.Occupancy, goal: placement_occupancy.Goal) -> None:
        self.occupancy = occupancy
        self.goal = goal
        self.tree = occupancy.tree
        self._options: dict[int, list[Option]] = {}
        self._banned: set[int] = set()
        self._stuck: dict[int, bool] = {}
        self._room: dict[tuple[int, int, int], int] = {}

    def stuck(self, o: int) -> bool:
        """Whether occupant o has nowhere to go: no slot has room in the domain it must stay in (its block's,
        else its span's, while other slots stay), and no domain of its span's tier but its own holds it all.
        Such slots are not offered (moving one could only help by a chain of moves, which this search does
        not make)."""
        found = self._stuck.get(o)
        if found is not None:
            return found
        occupant = self.occupancy.occupants[o]
        tree = self.tree
        node_tier = tree.node_tier
        top = len(tree.levels) - 1
        size = occupant.pod_size
        span_level = max(0, occupant.span_tier - node_tier)
        stuck = True
        for i, (node, _) in enumerate(occupant.slots):
            if len(occupant.slots) == 1:
                level = top
            elif occupant.block_slots > 1:
                level = max(0, occupant.block_tiers[occupant.block_of(i)] - node_tier)
            else:
                level = span_level
            if self.room(level, tree.nodes[node].domains[level], size) > 0:
                stuck = False
                break
        if stuck:
            home = tree.nodes[occupant.slots[0][0]].domains[span_level]
            stuck = not any(
                self.room(span_level, domain, size) >= len(occupant.slots)
                for domain in range(len(tree.levels[span_level]))
                if domain != home
            )
        self._stuck[o] = stuck
        return stuck

    def room(self, level: int, domain: int, size: int) -> int:
        """Pods of `size` the free devices of a domain host now."""
        key = (level, domain, size)
        found = self._room.get(key)
        if found is None:
            occupancy = self.occupancy
            found = sum(
                occupancy.slot_capacity(node, occupancy.free[node], size)
                for node in self.nodes_of(level, domain)
            )
            self._room[key] = found
        return found

    def ban(self, nodes: Iterable[int]) -> None:
        """Offer nothing to send away from these nodes any more (their free room still counts)."""
        for node in nodes:
            self._banned.add(node)
            self._options.pop(node, None)

    def options(self, node: int) -> list[Option]:
        """Index c: the cheapest way for `node` to host c request slots (index 0..the most it could)."""
        cached = self._options.get(node)
        if cached is not None:
            return cached
        occupancy, goal = self.occupancy, self.goal
        base = occupancy.free[node]
        best: list[Option] = [(ZERO, ())] * (goal.node_capacity(occupancy, node, base) + 1)
        if node in self._banned:
            self._options[node] = best
            return best
        items = [
            (o, i)
            for o, i in occupancy.on_node.get(node, ())
            if occupancy.occupants[o].movable and not self.stuck(o)
        ]
        if occupancy.usable[node] and items:
            for subset in _subsets(occupancy, items):
                freed = base
                for o, i in subset:
                    freed |= occupancy.occupants[o].slots[i][1]
                capacity = goal.node_capacity(occupancy, node, freed)
                if capacity < len(best) and best[capacity][0] <= ZERO:
                    continue  # gains nothing over the free room
                cost = placement_occupancy.subset_cost(occupancy, subset)
                best.extend([(NEVER, ())] * (capacity + 1 - len(best)))
                for c in range(capacity + 1):
                    if cost < best[c][0]:
                        best[c] = (cost, tuple(subset))
        self._options[node] = best
        return best

    def nodes_of(self, level: int, domain: int) -> range:
        found = self.tree.levels[level][domain]
        return range(found.first_node, found.end_node)

    def slot_curve(self, nodes: Iterable[int], most: int) -> tuple[int, list[tuple[Cost, Link]]]:
        """(free slots, curve): curve[x] is the cheapest way to host x slots beyond the free ones (x up to
        `most`), with its choice of extra slots per node."""
        free = 0
        curve: list[tuple[Cost, Link]] = [(NEVER, None)] * (most + 1)
        curve[0] = (ZERO, None)
        for node in nodes:
            options = self.options(node)
            base = self.goal.node_capacity(self.occupancy, node, self.occupancy.free[node])
            free += base
            extra = len(options) - 1 - base
            if extra <= 0 or most == 0:
                continue
            new = list(curve)
            for x, (cost, link) in enumerate(curve):
                if cost >= NEVER:
                    continue
                for c in range(1, extra + 1):
                    y = min(most, x + c)
                    total = _add(cost, options[base + c][0])
                    if total < new[y][0]:
                        new[y] = (total, (node, c, link))
            curve = new
        return free, curve

    def ranked_domains(self) -> list[tuple[Cost, int, dict[int, int]]]:
        """Domains of the goal's level that can host the request, cheapest first, each with its extra
        slots per node."""
        goal, tree = self.goal, self.tree
        ranked = []
        for domain in range(len(tree.levels[goal.level])):
            if goal.block_level == goal.level:
                free, curve = self.slot_curve(self.nodes_of(goal.level, domain), goal.slots)
                missing = max(0, goal.slots - free)
                cost, link = curve[missing]
                if cost < NEVER:
                    ranked.append((cost, domain, _extras(link)))
                continue
            found = self._blocks(domain)
            if found is not None:
                ranked.append((found[0], domain, found[1]))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return ranked

    def _blocks(self, domain: int) -> tuple[Cost, dict[int, int]] | None:
        """The cheapest way for `domain` to host every block, each in one block-level domain."""
        goal, tree = self.goal, self.tree
        k, wanted = goal.block_slots, goal.blocks
        first = tree.levels[goal.level][domain].first_node
        end = tree.levels[goal.level][domain].end_node
        inner = [
            d for d, found in enumerate(tree.levels[goal.block_level]) if first <= found.first_node < end
        ]
        free_units = 0
        Chosen = list[tuple[int, int, dict[int, int]]]
        never: Chosen = []
        curve: list[tuple[Cost, Chosen]] = [(NEVER, never)] * (wanted + 1)
        curve[0] = (ZERO, [])
        for block_domain in inner:
            free, slots = self.slot_curve(self.nodes_of(goal.block_level, block_domain), wanted * k)
            base = free // k
            free_units += base
            gains = []  # (extra blocks, cost, extra slots per node)
            for units in range(base + 1, wanted + 1):
                missing = units * k - free
                if missing >= len(slots) or slots[missing][0] >= NEVER:
                    break
                gains.append((units - base, slots[missing][0], _extras(slots[missing][1])))
            if not gains:
                continue
            new = list(curve)
            for x, (cost, chosen) in enumerate(curve):
                if cost >= NEVER:
                    continue
                for units, extra_cost, extras in gains:
                    y = min(wanted, x + units)
                    total = _add(cost, extra_cost)
                    if total < new[y][0]:
                        new[y] = (total, [*chosen, (block_domain, units, extras)])
            curve = new
        missing = max(0, wanted - free_units)
        cost, chosen = curve[missing]
        if cost >= NEVER:
            return None
        merged: dict[int, int] = {}
        for _, _, per_node in chosen:
            merged.update(per_node)
        return cost, merged


def _extras(link: Link) -> dict[int, int]:
    out: dict[int, int] = {}
    while link is not None:
        node, extra, link = link
        out[node] = extra
    return out


def _subsets(occupancy: placement_occupancy.Occupancy, items: Sequence[Slot]) -> Iterable[tuple[Slot, ...]]:
    if len(items) <= ALL_SUBSETS_UP_TO:
        for size in range(1, len(items) + 1):
            yield from itertools.combinations(items, size)
        return
    yield from itertools.combinations(items, 1)
    yield from itertools.combinations(items, 2)
    ordered = sorted(items, key=lambda item: (placement_occupancy.subset_cost(occupancy, [item]), item))
    for size in range(3, len(ordered) + 1):
        yield tuple(ordered[:size])


def _realise(finder: _Finder, domain: int, extra: dict[int, int]) -> placement_occupancy.Plan | None:
    """One domain's plan made concrete: what leaves leaves, the request's room is set aside (the extra slots
    the plan freed, then the domain's free room, best fit), then what left finds new places."""
    occupancy, goal, tree = finder.occupancy, finder.goal, finder.tree
    leaving: list[Slot] = []
    for node, count in extra.items():
        base = goal.node_capacity(occupancy, node, occupancy.free[node])
        leaving.extend(finder.options(node)[base + count][1])
    evacuation = Evacuation(occupancy, leaving)
    wanted = goal.slots
    found = tree.levels[goal.level][domain]
    nodes = sorted(
        range(found.first_node, found.end_node),
        key=lambda n: (-extra.get(n, 0), goal.node_capacity(occupancy, n, occupancy.free[n]), n),
    )
    for node in nodes:
        if wanted <= 0:
            break
        take = min(goal.node_capacity(occupancy, node, evacuation.free[node]), wanted)
        mask = 0
        for _ in range(take):
            mask |= evacuation.pick(node, evacuation.free[node] & ~mask, goal.pod_size, goal.whole_nodes)
        if mask:
            evacuation.set_aside(node, mask)
            wanted -= take
    if not goal.met(occupancy, evacuation.free_with_room()):
        return None
    plan = evacuation.run()
    if plan is None or not goal.met(occupancy, evacuation.free_with_room()):
        return None
    return plan


class Evacuation:
    """New places for slots that must leave, shared by defragmentation and compaction.

    The leaving slots' devices become free (labelled with who freed them, for the order of the moves); room
    set aside (`set_aside`: the request's, or the domain being emptied) is taken by no one; `allowed` says
    which nodes may receive slots. `run` then sends each partition's leaving slots away: a block that leaves
    whole into one domain of its tier, other slots one by one nearest their old node (its node, its rack,
    ...) and best fit, never widening the partition's span or a block; failing that the whole partition
    into the tightest domain of its span's tier. The answer is None when some slot finds no place or the
    moves cannot be ordered.
    """

    def __init__(
        self,
        occupancy: placement_occupancy.Occupancy,
        leaving: Iterable[Slot],
        allowed: Callable[[int], bool] | None = None,
    ) -> None:
        self.occupancy = occupancy
        self.tree = occupancy.tree
        self.allowed = allowed or (lambda node: True)
        self.free = list(occupancy.free)
        self.vacated: list[dict[int, int]] = [{} for _ in occupancy.free]  # node -> occupant -> mask
        self.positions: dict[Slot, Position] = {}
        self.room: dict[int, int] = {}  # node -> mask set aside
        self.leaving = set(leaving)
        for o, i in self.leaving:
            node, mask = occupancy.occupants[o].slots[i]
            self.free[node] |= mask
            self.vacated[node][o] = self.vacated[node].get(o, 0) | mask

    def set_aside(self, node: int, mask: int) -> None:
        self.room[node] = self.room.get(node, 0) | mask
        self.free[node] &= ~mask

    def free_with_room(self) -> list[int]:
        free = list(self.free)
        for node, mask in self.room.items():
            free[node] |= mask
        return free

    def run(self) -> placement_occupancy.Plan | None:
        occupancy = self.occupancy
        by_occupant: dict[int, list[int]] = {}
        for o, i in sorted(self.leaving):
            by_occupant.setdefault(o, []).append(i)
        order = sorted(by_occupant, key=lambda o: (-len(by_occupant[o]) * occupancy.occupants[o].pod_size, o))
        for o in order:
            if not self._send(o, by_occupant[o]):
                return None
        if not placement_occupancy.acyclic(self._waits()):
            return None
        return placement_occupancy.Plan(self.positions)

    def pick(self, node: int, free: int, size: int, whole: bool) -> int:
        tree_node = self.tree.nodes[node]
        if whole:
            return tree_node.full_mask if free == tree_node.full_mask else 0
        return noderules.pick(self.occupancy.rule, tree_node.modules, free, size)

    def capacity(self, node: int, size: int) -> int:
        """Pods of `size` node `node` can receive now (0 where not allowed)."""
        if not self.allowed(node):
            return 0
        return self.occupancy.slot_capacity(node, self.free[node], size)

    def _send(self, o: int, slots: Sequence[int]) -> bool:
        """New places for slots `slots` of occupant `o`: a block that leaves whole goes into one domain of
        its tier, the other slots one by one nearest first; failing that, a partition that leaves whole
        moves into the tightest domain of its span's tier that holds it."""
        occupant = self.occupancy.occupants[o]
        leaving: dict[int, list[int]] = {}
        for i in slots:
            leaving.setdefault(occupant.block_of(i), []).append(i)
        placed = True
        for block, ids in sorted(leaving.items()):
            if len(ids) == occupant.block_slots and len(ids) > 1:
                placed = self._block(o, block, ids)
            else:
                placed = self._slot_by_slot(o, ids)
            if not placed:
                break
        if placed and occupant.fits(self.tree, self._slots_of(o)):
            return True
        self._undo(o, slots)
        # the whole partition then, its other slots leaving too
        others = [i for i in range(len(occupant.slots)) if i not in slots]
        self._vacate(o, others, +1)
        if self._whole(o):
            self.leaving.update((o, i) for i in others)
            return True
        self._vacate(o, others, -1)
        return False

    def _vacate(self, o: int, slots: Sequence[int], sign: int) -> None:
        """Free (sign 1) or take back (-1) the devices of these slots of occupant o."""
        for i in slots:
            node, mask = self.occupancy.occupants[o].slots[i]
            vacated = self.vacated[node]
            if sign > 0:
                self.free[node] |= mask
                vacated[o] = vacated.get(o, 0) | mask
            else:
                self.free[node] &= ~mask
                vacated[o] &= ~mask

    def _block(self, o: int, block: int, ids: Sequence[int]) -> bool:
        """A whole block into the tightest domain of its tier with room, nearest its old place first."""
        occupant = self.occupancy.occupants[o]
        tree = self.tree
        level = max(0, occupant.block_tiers[block] - tree.node_tier)
        limit = self._limit(o, ids[0])
        old = tree.nodes[occupant.slots[ids[0]][0]].domains
        size = occupant.pod_size
        ranked = []
        for domain, found in enumerate(tree.levels[level]):
            path = tree.nodes[found.first_node].domains
            distance = placement_occupancy.distance(old, path)
            if distance > limit:
                continue
            capacity = sum(self.capacity(node, size) for node in range(found.first_node, found.end_node))
            if capacity >= len(ids):
                ranked.append((distance, capacity, domain))
        ranked.sort()
        for _, _, domain in ranked[:DOMAINS_TRIED]:
            found = tree.levels[level][domain]
            placed = self._fill(range(found.first_node, found.end_node), len(ids), size)
            if placed is not None:
                for i, position in zip(ids, placed, strict=True):
                    self.positions[(o, i)] = position
                return True
        return False

    def _fill(self, nodes: range, count: int, size: int) -> list[Position] | None:
        """`count` pods of `size` on `nodes`, the roomiest nodes first (fewest nodes); None when they do not
        fit (and nothing is taken)."""
        ordered = sorted(nodes, key=lambda n: (-self.capacity(n, size), n))
        placed: list[Position] = []
        for node in ordered:
            if not self.allowed(node):
                continue
            while len(placed) < count:
                chosen = self.pick(node, self.free[node], size, False)
                if not chosen:
                    break
                self.free[node] &= ~chosen
                placed.append((node, chosen))
        if len(placed) == count:
            return placed
        for node, mask in placed:
            self.free[node] |= mask
        return None

    def _slots_of(self, o: int) -> list[Position]:
        occupant = self.occupancy.occupants[o]
        return [self.positions.get((o, i), position) for i, position in enumerate(occupant.slots)]

    def _undo(self, o: int, slots: Sequence[int]) -> None:
        for i in slots:
            position = self.positions.pop((o, i), None)
            if position is not None:
                node, mask = position
                self.free[node] |= mask

    def _slot_by_slot(self, o: int, slots: Sequence[int]) -> bool:
        occupant = self.occupancy.occupants[o]
        tree = self.tree
        for i in slots:
            old_node, old_mask = occupant.slots[i]
            placed = False
            for node in self._nearest(old_node, self._limit(o, i), occupant.pod_size):
                room = self.free[node]
                if node == old_node:  # elsewhere on its node: not in a module it holds (that is staying)
                    for module in tree.nodes[node].modules:
                        if module & old_mask:
                            room &= ~module
                chosen = self.pick(node, room, occupant.pod_size, False)
                if not chosen:
                    continue
                self.free[node] &= ~chosen
                self.positions[(o, i)] = (node, chosen)
                placed = True
                break
            if not placed:
                return False
        return True

    def _limit(self, o: int, i: int) -> int:
        """The widest tree level slot i of occupant o may travel to: its block's tier while another slot of
        the block stays, its span's tier while another slot of the partition stays, else anywhere."""
        occupant = self.occupancy.occupants[o]
        node_tier = self.tree.node_tier
        block = occupant.block_of(i)
        others = [s for s in range(len(occupant.slots)) if s != i and (o, s) not in self.leaving]
        if any(occupant.block_of(s) == block for s in others):
            return max(0, occupant.block_tiers[block] - node_tier)
        if others:
            return max(0, occupant.span_tier - node_tier)
        return len(self.tree.levels) - 1

    def _nearest(self, old_node: int, limit: int, size: int) -> Iterable[int]:
        """Usable nodes with room for a pod of `size`, nearest first (its node, then each wider domain up
        to level `limit`), best fit (least room) within one distance."""
        tree = self.tree
        path = tree.nodes[old_node].domains
        if self.allowed(old_node):
            yield old_node
        seen = {old_node}
        for level in range(1, limit + 1):
            found = tree.levels[level][path[level]]
            ranked = []
            for node in range(found.first_node, found.end_node):
                if node in seen:
                    continue
                seen.add(node)
                capacity = self.capacity(node, size)
                if capacity:
                    ranked.append((capacity, node))
            ranked.sort()
            yield from (node for _, node in ranked)

    def _whole(self, o: int) -> bool:
        """The whole partition into the tightest domain of its span's level that holds all its slots."""
        occupant = self.occupancy.occupants[o]
        tree = self.tree
        level = max(0, occupant.span_tier - tree.node_tier)
        size = occupant.pod_size
        ranked = []
        for domain, found in enumerate(tree.levels[level]):
            capacity = sum(self.capacity(node, size) for node in range(found.first_node, found.end_node))
            if capacity >= len(occupant.slots):
                ranked.append((capacity, domain))
        ranked.sort()
        for _, domain in ranked[:DOMAINS_TRIED]:
            found = tree.levels[level][domain]
            placed = self._fill(range(found.first_node, found.end_node), len(occupant.slots), size)
            if placed is None:
                continue
            if occupant.fits(tree, placed):
                for i, position in enumerate(placed):
                    self.positions[(o, i)] = position
                return True
            for node, mask in placed:
                self.free[node] |= mask
        return False

    def _waits(self) -> list[tuple[int, int]]:
        """(vacating occupant, occupant taking some of its old devices) for every such pair."""
        waits = []
        for (o, _), (node, mask) in self.positions.items():
            for other, vacated in self.vacated[node].items():
                if other != o and vacated & mask:
                    waits.append((other, o))
        return waits
