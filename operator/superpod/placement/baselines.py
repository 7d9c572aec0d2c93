"""Baseline policies, for comparison in `superpod bench` only; the operator never uses them.

All three obey the same hard rules as the project's policy (per-node device rules, maxTier, reserve nodes),
so their placements are valid; they differ in how they choose:

- `FirstFit`: the first domain of the widest allowed tier that has room, then nodes in topology order,
  devices lowest first. What a simple scheduler does.
- `RandomSpread`: a random allowed domain with room, then each slot on a random node with room: a
  topology-unaware scheduler (seeded, so runs repeat).
- `GreedyBestFit`: Kueue's topology-aware scheduling (TAS, BestFit): from the lowest tier that could hold the
  request upwards, take the tightest domain that fits; when none fits, most-free domains first and the
  tightest last; descend level by level the same way. Devices lowest first. Blocks are not considered.
"""

from __future__ import annotations

import random

from superpod.placement import policy as placement_policy
from superpod.placement import request as placement_request
from superpod.placement import state as placement_state
from superpod.topology import noderules


def _blocks(node_slots: placement_policy.NodeSlots, block_slots: int) -> list[placement_policy.NodeSlots]:
    """Cut a rank-ordered list of (node, slots) into consecutive blocks of `block_slots` slots."""
    blocks: list[placement_policy.NodeSlots] = []
    current: placement_policy.NodeSlots = []
    room = block_slots
    for node, count in node_slots:
        while count:
            take = min(count, room)
            current.append((node, take))
            count -= take
            room -= take
            if room == 0:
                blocks.append(current)
                current, room = [], block_slots
    return blocks


class FirstFit:
    name = "first-fit"

    def pick(self, rule: noderules.NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
        return noderules.pick_first(rule, modules, free, size)

    def choose(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: placement_policy.Levels,
    ) -> list[placement_policy.NodeSlots] | None:
        caps = state.shape_caps(shape.key)
        top = shape.max_level
        for domain_index, value in enumerate(caps[top]):
            if value < shape.slots:
                continue
            domain = state.tree.levels[top][domain_index]
            remaining = shape.slots
            chosen: placement_policy.NodeSlots = []
            for node in range(domain.first_node, domain.end_node):
                take = min(caps[0][node], remaining)
                if take:
                    chosen.append((node, take))
                    remaining -= take
                    if remaining == 0:
                        return _blocks(chosen, shape.block_slots)
        return None


class RandomSpread:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def pick(self, rule: noderules.NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
        return noderules.pick_first(rule, modules, free, size)

    def choose(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: placement_policy.Levels,
    ) -> list[placement_policy.NodeSlots] | None:
        caps = state.shape_caps(shape.key)
        top = shape.max_level
        domains = [d for d, value in enumerate(caps[top]) if value >= shape.slots]
        if not domains:
            return None
        domain = state.tree.levels[top][self.rng.choice(domains)]
        population = [
            node for node in range(domain.first_node, domain.end_node) for _ in range(caps[0][node])
        ]
        counts: dict[int, int] = {}
        for node in self.rng.sample(population, shape.slots):
            counts[node] = counts.get(node, 0) + 1
        order = list(counts.items())
        self.rng.shuffle(order)
        return _blocks(order, shape.block_slots)


class GreedyBestFit:
    name = "kueue-greedy"

    def pick(self, rule: noderules.NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
        return noderules.pick_first(rule, modules, free, size)

    def choose(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: placement_policy.Levels,
    ) -> list[placement_policy.NodeSlots] | None:
        caps = state.shape_caps(shape.key)
        for level in range(levels.partition, shape.max_level + 1):
            fitting = [d for d, value in enumerate(caps[level]) if value >= shape.slots]
            if fitting:
                tightest = min(fitting, key=lambda d: (caps[level][d], d))
                return _blocks(self._descend(state, caps, level, tightest, shape.slots), shape.block_slots)
        return None

    def _descend(
        self, state: placement_state.FreeState, caps: list[list[int]], level: int, domain: int, need: int
    ) -> placement_policy.NodeSlots:
        if level == 0:
            return [(domain, need)]
        children = sorted(state.tree.levels[level][domain].children, key=lambda c: (-caps[level - 1][c], c))
        out: placement_policy.NodeSlots = []
        remaining = need
        for position, child in enumerate(children):
            if remaining == 0:
                break
            value = caps[level - 1][child]
            if value == 0:
                break
            if value >= remaining:
                # tightest last: the smallest later child that still holds the rest
                fitting = [c for c in children[position:] if caps[level - 1][c] >= remaining]
                last = min(fitting, key=lambda c: (caps[level - 1][c], c))
                out.extend(self._descend(state, caps, level - 1, last, remaining))
                remaining = 0
                break
            out.extend(self._descend(state, caps, level - 1, child, value))
            remaining -= value
        return out


BASELINES: dict[str, type[FirstFit] | type[RandomSpread] | type[GreedyBestFit]] = {
    FirstFit.name: FirstFit,
    RandomSpread.name: RandomSpread,
    GreedyBestFit.name: GreedyBestFit,
}
