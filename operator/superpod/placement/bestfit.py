"""The project's placement policy: hierarchical best-fit, blocks first.

For a request of S slots in B blocks of k slots, with its widest allowed level L:

1. *Blocks in their lowest tier.* Let lb be the lowest level whose empty domain holds a block. Count, for each
   domain, how many whole blocks its level-lb sub-domains can host now (`units`); q* is the most any
   level-L domain can host (at most B).
2. *The partition in its lowest tier.* The partition domain D is a domain of the lowest level l >= the
   partition's static level such that D hosts S slots and q* blocks at level lb.
3. *Least fragmentation: best fit.* Among those, D has the fewest free slots. Ties go to the domain shared
   by the most partitions, then to the fullest enclosing domains (fewest free devices: the parent, then its
   parent, ...), then to topology order. A
   node's own free device count is deliberately not a tie-break: on cloudmatrix-384 churn traces it made
   consecutive small partitions hop between nodes and raised the mean fragmentation from 0.27 to 0.30
   (docs/placement.md); topology order fills one region. A partition that fits one node goes to the rack
   shared by the most partitions that has room (then the fullest), and there to the node already shared by
   the most partitions (`tightest_node`).
4. *Fewest nodes, ranks along the topology.* Inside D, blocks are placed at level lb as far as they fit, then
   one level up, and so on; inside a domain, children are taken largest-first until the rest fits in one
   child, which is then chosen best-fit. That uses the fewest children (hence nodes) and leaves the tightest
   remainder. Everything is ordered by topology index, so results are deterministic.

A decision reads the incrementally kept per-domain slot capacities; placing slots only records them in an
overlay (`used`), so the state is never touched here.
"""

from __future__ import annotations

from collections.abc import Sequence

from superpod.placement import policy as placement_policy
from superpod.placement import request as placement_request
from superpod.placement import state as placement_state
from superpod.topology import noderules


class BestFit:
    """Hierarchical best-fit with blocks first (see the module docstring)."""

    name = "superpod"

    def pick(self, rule: noderules.NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
        return noderules.pick(rule, modules, free, size)

    def choose(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: placement_policy.Levels,
    ) -> list[placement_policy.NodeSlots] | None:
        return _Search(state, shape, levels).run()


class _Search:
    def __init__(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: placement_policy.Levels,
    ) -> None:
        self.state = state
        self.tree = state.tree
        self.caps = state.shape_caps(shape.key)
        self.shape = shape
        self.levels = levels
        self.used: dict[tuple[int, int], int] = {}

    def cap(self, level: int, domain: int) -> int:
        return self.caps[level][domain] - self.used.get((level, domain), 0)

    def run(self) -> list[placement_policy.NodeSlots] | None:
        shape = self.shape
        top = shape.max_level
        slots = shape.slots
        if shape.blocks == 1:
            for level in range(self.levels.partition, top + 1):
                domain = self.best_domain(level, slots, range(len(self.caps[level])))
                if domain is not None:
                    return [self.fill_slots(level, domain, slots)]
            return None
        block_level = min(self.levels.block, top)
        units = self.unit_table(block_level, top)
        wanted = min(shape.blocks, max(units[top], default=0))
        for level in range(max(self.levels.partition, block_level), top + 1):
            caps = self.caps[level]
            level_units = units[level]
            candidates = [
                d
                for d in range(len(caps))
                if caps[d] >= slots and min(shape.blocks, level_units[d]) >= wanted
            ]
            domain = self.best_domain(level, slots, candidates)
            if domain is not None:
                return self.place_blocks(level, domain, block_level)
        return None

    # ---- choosing domains ----------------------------------------------------------------------------

    def best_domain(self, level: int, need: int, candidates: Sequence[int] | range) -> int | None:
        """The best-fit domain of `level` among `candidates` hosting `need` slots (None if none does).

        Fewest free slots first; ties as `fullest` says. Each tie-break filters the remaining candidates
        once, so a decision costs a few linear passes over plain lists; the node level, the largest, is
        searched from the root down instead (`tightest_node`).
        """
        caps = self.caps[level]
        used = self.used
        if level == 0 and not used and isinstance(candidates, range) and len(self.tree.levels) > 1:
            return self.tightest_node(need)
        if used:
            values = {d: caps[d] - used.get((level, d), 0) for d in candidates}
        else:
            values = {d: caps[d] for d in candidates}
        fitting = [value for value in values.values() if value >= need]
        if not fitting:
            return None
        tightest = min(fitting)
        tied = [d for d, value in values.items() if value == tightest]
        if level >= 1 and len(tied) > 1:
            # equally tight domains: the one shared by the most partitions (see `tightest_node`)
            sharing = self.state.partitions_in[level]
            most = max(sharing[d] for d in tied)
            tied = [d for d in tied if sharing[d] == most]
        return self.fullest(level, tied)

    def tightest_node(self, need: int) -> int | None:
        """The node for a partition that fits one node, found from the root down.

        At every level above the nodes, the child holding a node with room (read from the node histograms)
        that the most partitions share, then the fullest (fewest free devices); inside that rack (or flat
        SuperPoD), the node hosting the most partitions, then the tightest fit, then topology order. Costs
        the children of one path, not the nodes of the tree. Why the most partitions: departures are
        independent, so a node (or rack) running k partitions stays in use for longest anyway (its expected
        time to empty grows like 1 + 1/2 + ... + 1/k lifetimes); one more partition there costs about
        1/(k+1) of a lifetime of whole-node (whole-rack) availability, on an untouched one a whole lifetime,
        and on a rack held by one big job half of one. On cloudmatrix-384 churn traces the node rule lowered
        the mean node fragmentation from 0.275 to 0.244; on atlas-950 the rack rule lowered the mean rack
        fragmentation from 0.118 to 0.102 (docs/placement.md)."""
        tree = self.tree
        hist = self.state.node_hist[self.shape.key]
        top = len(tree.levels) - 1
        root = hist[top][0]
        if not any(root[need:]):
            return None
        # look for room on nodes already in use first (fewer slots than an empty node): only when there is
        # none may the walk lead to a rack whose only room is an untouched node
        end = len(root) - 1 if any(root[need:-1]) else len(root)
        free_count = self.state.free_count
        domain = 0
        for level in range(top, 1, -1):
            below = hist[level - 1]
            counts = free_count[level - 1]
            sharing_domains = self.state.partitions_in[level - 1]
            domain = min(
                (c for c in tree.levels[level][domain].children if any(below[c][need:end])),
                key=lambda c: (-sharing_domains[c], counts[c], c),
            )
        caps = self.caps[0]
        sharing = self.state.partitions_in[0]
        return min(
            (n for n in tree.levels[1][domain].children if caps[n] >= need),
            key=lambda n: (-sharing[n], caps[n], n),
        )

    def fullest(self, level: int, tied: list[int]) -> int:
        """Among equally tight domains of `level`: the fewest free devices (for nodes: skipped, see the
        module docstring), then the fullest parent, its parent, ...; then topology order."""
        free_count = self.state.free_count
        current = {d: d for d in tied}  # candidate -> its ancestor at `at_level`
        at_level = level
        if level == 0 and len(free_count) > 1:
            # equally tight nodes: compare their racks, not the nodes (a node's own free count would make
            # consecutive small partitions hop between nodes instead of filling one region)
            parents = self.tree.parents[0]
            current = {d: parents[d] for d in tied}
            at_level = 1
        while len(tied) > 1:
            counts = free_count[at_level]
            least = min(counts[current[d]] for d in tied)
            tied = [d for d in tied if counts[current[d]] == least]
            if at_level + 1 >= len(free_count):
                break
            parents = self.tree.parents[at_level]
            current = {d: parents[current[d]] for d in tied}
            at_level += 1
        return min(tied)

    def split(self, level: int, domain: int, need: int, capacity: dict[int, int]) -> list[tuple[int, int]]:
        """(child, amount) covering `need`: largest children first until the rest fits, then best fit.

        One pass over the children sorted by capacity, largest first: while the largest left cannot hold
        the rest, take it whole; then the ones that can hold the rest are a prefix of what is left, and the
        tightest of them are at its end."""
        children = sorted((c for c, value in capacity.items() if value > 0), key=lambda c: (-capacity[c], c))
        chosen: list[tuple[int, int]] = []
        remaining = need
        position = 0
        while remaining > 0 and position < len(children):
            largest = children[position]
            if capacity[largest] >= remaining:
                end = position
                while end < len(children) and capacity[children[end]] >= remaining:
                    end += 1
                tightest = capacity[children[end - 1]]
                tied = [c for c in children[position:end] if capacity[c] == tightest]
                chosen.append((self.fullest(level - 1, tied), remaining))
                return chosen
            chosen.append((largest, capacity[largest]))
            remaining -= capacity[largest]
            position += 1
        return chosen if remaining == 0 else []

    # ---- placing slots -------------------------------------------------------------------------------

    def fill_slots(self, level: int, domain: int, need: int) -> placement_policy.NodeSlots:
        """Put `need` slots into `domain` (which hosts them), fewest nodes first; record them as used."""
        if level == 0:
            self.take(domain, need)
            return [(domain, need)]
        children = self.tree.levels[level][domain].children
        capacity = {c: self.cap(level - 1, c) for c in children}
        out: placement_policy.NodeSlots = []
        for child, amount in self.split(level, domain, need, capacity):
            out.extend(self.fill_slots(level - 1, child, amount))
        return out

    def take(self, node: int, slots: int) -> None:
        for level, domain in enumerate(self.tree.nodes[node].domains):
            self.used[(level, domain)] = self.used.get((level, domain), 0) + slots

    # ---- blocks --------------------------------------------------------------------------------------

    def unit_table(self, block_level: int, top: int) -> dict[int, list[int]]:
        """Per level from `block_level` to `top`, per domain: blocks its level-`block_level` domains host."""
        k = self.shape.block_slots
        table = {block_level: [c // k for c in self.caps[block_level]]}
        for level in range(block_level + 1, top + 1):
            below = table[level - 1]
            table[level] = [sum(below[c] for c in domain.children) for domain in self.tree.levels[level]]
        return table

    def units(self, level: int, domain: int, block_level: int) -> int:
        if level == block_level:
            return self.cap(level, domain) // self.shape.block_slots
        return sum(self.units(level - 1, c, block_level) for c in self.tree.levels[level][domain].children)

    def place_blocks(self, level: int, domain: int, block_level: int) -> list[placement_policy.NodeSlots]:
        """All blocks inside `domain`: as many as fit at `block_level`, the rest one level up, and so on."""
        blocks: list[placement_policy.NodeSlots] = []
        remaining = self.shape.blocks
        for current in range(block_level, level + 1):
            if remaining == 0:
                break
            count = min(remaining, self.units(level, domain, current))
            if count:
                blocks.extend(self.fill_units(level, domain, count, current))
                remaining -= count
        return blocks

    def fill_units(
        self, level: int, domain: int, count: int, block_level: int
    ) -> list[placement_policy.NodeSlots]:
        if level == block_level:
            return [self.fill_slots(level, domain, self.shape.block_slots) for _ in range(count)]
        children = self.tree.levels[level][domain].children
        capacity = {c: self.units(level - 1, c, block_level) for c in children}
        out: list[placement_policy.NodeSlots] = []
        for child, amount in self.split(level, domain, count, capacity):
            out.extend(self.fill_units(level - 1, child, amount, block_level))
        return out
