"""Per-attempt free counts over a fixed tree, maintained incrementally.

Each node has three device masks: `held` (by some partition), `unhealthy`, and `free` = healthy and not held.
Every change goes through `set_node`, which updates, along the node's path to the root only:

- `free_count[level][domain]`: free devices on non-reserve nodes;
- `held_count[level][domain]`: held devices (a domain with none is *untouched*);
- `untouched_free[level]`: free devices inside untouched domains of the level (for fragmentation);
- for each pod shape in use, `caps[shape][level][domain]`: how many slots of that shape the domain's
  non-reserve nodes can host now, and `node_hist[shape][level][domain][c]`: how many of its nodes host
  exactly c slots (so the tightest node can be found from the root down, without a scan of all nodes).

So a decision reads counts and never rescans devices; a change costs O(tree depth x shapes in use).

Fragmentation of a level is `1 - untouched_free / free`: the share of free devices that sit in domains some
partition already uses. A level-0 (node) fragmentation of 0 means every free device is on an untouched node,
so a whole-node pod can use it; 1 means no node is untouched. Unhealthy devices do not make a node touched.
"""

from __future__ import annotations

from collections.abc import Iterable

from superpod.topology import noderules
from superpod.topology import tree as topology_tree

ShapeKey = tuple[int, bool]  # (pod size, whole nodes)
# what a copy shares with its original: the tree, the rule and the cache of pure facts (slot capacity by
# free mask, one table per module layout, referenced from every node: copying it would copy it per node)
_SHARED = frozenset({"tree", "rule", "_slot_tables"})


class FreeState:
    """Device masks per node and the counts derived from them."""

    def __init__(self, tree: topology_tree.TopologyTree) -> None:
        self.tree = tree
        nodes = tree.nodes
        self.rule = tree.profile.rule
        self.held = [0] * len(nodes)
        self.unhealthy = [node.initially_unhealthy for node in nodes]
        self.free = [node.full_mask & ~node.initially_unhealthy for node in nodes]
        self.free_count = [[0] * len(level) for level in tree.levels]
        self.held_count = [[0] * len(level) for level in tree.levels]
        self.untouched_free = [0] * len(tree.levels)
        # partitions holding devices in each domain, per level (level 0: per node), kept by the allocator
        # through `count_partition`
        self.partitions_in = [[0] * len(level) for level in tree.levels]
        self.caps: dict[ShapeKey, list[list[int]]] = {}
        # per shape, per level >= 1, per domain: how many of its nodes host exactly c slots (index c)
        self.node_hist: dict[ShapeKey, list[list[list[int]]]] = {}
        # totals over the whole tree
        self.total_free = 0  # free on non-reserve nodes
        self.total_reserved = 0  # free on reserve nodes
        self.total_held = 0
        self.total_unhealthy = 0  # unhealthy and not held
        # slot capacity by pod size and free mask, one table per distinct module layout: a dictionary
        # lookup instead of hashing the rule in `noderules.slot_capacity`'s cache (set_node reads it for
        # every shape in use, on every change)
        layouts: dict[tuple[int, ...], dict[int, dict[int, int]]] = {}
        sizes = range(self.rule.devices_per_node + 1)
        self._slot_tables = [layouts.setdefault(node.modules, {size: {} for size in sizes}) for node in nodes]
        for node in nodes:
            self._add(node.index, +1)

    def copy(self) -> FreeState:
        """An independent copy (the tree is shared)."""
        other = FreeState.__new__(FreeState)
        for name, value in vars(self).items():
            setattr(other, name, value if name in _SHARED else _copied(value))
        return other

    # ---- reading -------------------------------------------------------------------------------------

    def node_cap(self, index: int, key: ShapeKey, *, include_reserve: bool = False, free: int = -1) -> int:
        """Slots of shape `key` node `index` can host (with `free` as its free mask when given)."""
        node = self.tree.nodes[index]
        if node.reserve and not include_reserve:
            return 0
        mask = self.free[index] if free < 0 else free
        size, whole = key
        if whole and mask != node.full_mask:
            return 0
        return self._slots(index, size, mask)

    def shape_caps(self, key: ShapeKey) -> list[list[int]]:
        """Per level, per domain, the slots of shape `key` it can host now (computed once, then kept)."""
        caps = self.caps.get(key)
        if caps is None:
            levels = self.tree.levels
            caps = [[0] * len(level) for level in levels]
            values = [self.node_cap(node.index, key) for node in self.tree.nodes]
            most = max(
                (
                    self.node_cap(node.index, key, include_reserve=True, free=node.full_mask)
                    for node in self.tree.nodes
                ),
                default=0,
            )
            hist = [
                [] if level == 0 else [[0] * (most + 1) for _ in levels[level]]
                for level in range(len(levels))
            ]
            for node, value in zip(self.tree.nodes, values, strict=True):
                for level, domain in enumerate(node.domains):
                    caps[level][domain] += value
                    if level:
                        hist[level][domain][value] += 1
            self.caps[key] = caps
            self.node_hist[key] = hist
        return caps

    def fragmentation(self, level: int = 0) -> float:
        """Share of free devices inside domains of `level` that a partition already uses."""
        if self.total_free == 0:
            return 0.0
        return 1.0 - self.untouched_free[level] / self.total_free

    # ---- writing -------------------------------------------------------------------------------------

    def count_partition(self, nodes: Iterable[int], sign: int) -> None:
        """Add (`sign` 1) or remove (-1) one partition holding devices on `nodes` in every domain it touches."""
        touched = {
            (level, domain) for index in nodes for level, domain in enumerate(self.tree.nodes[index].domains)
        }
        for level, domain in touched:
            self.partitions_in[level][domain] += sign

    def set_node(self, index: int, *, held: int | None = None, unhealthy: int | None = None) -> None:
        """Change a node's held and/or unhealthy masks; every derived count follows."""
        node = self.tree.nodes[index]
        new_held = self.held[index] if held is None else held
        new_unhealthy = self.unhealthy[index] if unhealthy is None else unhealthy
        if new_held == self.held[index] and new_unhealthy == self.unhealthy[index]:
            return
        old_free = self.free[index]
        self._add(index, -1)
        self.held[index] = new_held
        self.unhealthy[index] = new_unhealthy
        new_free = self.free[index] = node.full_mask & ~new_held & ~new_unhealthy
        self._add(index, +1)
        if node.reserve:
            return  # reserve nodes host no slots, before or after
        full = node.full_mask
        domains = tuple(enumerate(node.domains))
        for key, caps in self.caps.items():
            size, whole = key
            # node_cap of the old and the new free mask, inlined: this runs for every shape on every change
            old = 0 if whole and old_free != full else self._slots(index, size, old_free)
            new = 0 if whole and new_free != full else self._slots(index, size, new_free)
            if new != old:
                hist = self.node_hist[key]
                delta = new - old
                for level, domain in domains:
                    caps[level][domain] += delta
                    if level:
                        counts = hist[level][domain]
                        counts[old] -= 1
                        counts[new] += 1

    def _slots(self, index: int, size: int, mask: int) -> int:
        tables = self._slot_tables[index]
        table = tables.get(size)
        if table is None:
            table = tables[size] = {}
        found = table.get(mask)
        if found is None:
            found = table[mask] = noderules.slot_capacity(
                self.rule, self.tree.nodes[index].modules, mask, size
            )
        return found

    def _add(self, index: int, sign: int) -> None:
        node = self.tree.nodes[index]
        free = self.free[index].bit_count()
        held = self.held[index].bit_count()
        self.total_held += sign * held
        self.total_unhealthy += sign * (self.unhealthy[index] & ~self.held[index]).bit_count()
        if node.reserve:
            self.total_reserved += sign * free
            free = 0  # reserve devices are not free for placement
        self.total_free += sign * free
        for level, domain in enumerate(node.domains):
            free_counts = self.free_count[level]
            held_counts = self.held_count[level]
            if held_counts[domain] == 0:
                self.untouched_free[level] -= free_counts[domain]
            free_counts[domain] += sign * free
            held_counts[domain] += sign * held
            if held_counts[domain] == 0:
                self.untouched_free[level] += free_counts[domain]


def _copied(value: object) -> object:
    """Lists, dicts and sets copied down to their plain values (ints, tuples), which are immutable."""
    if isinstance(value, list):
        if value and isinstance(value[0], list | dict | set):
            return [_copied(item) for item in value]
        return list(value)  # the common case, kept fast: a list of ints
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, set):
        return set(value)
    return value
