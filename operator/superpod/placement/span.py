"""The tier span of a set of slots: the lowest domain holding them all (a module, a node, a rack, ...)."""

from __future__ import annotations

from collections.abc import Iterable

from superpod.topology import tree as topology_tree


def span(tree: topology_tree.TopologyTree, parts: Iterable[tuple[int, int]]) -> tuple[int, int, int]:
    """(profile tier index, tree level, domain index) of the lowest domain holding every (node index,
    device mask) part. Parts on one node whose devices fit one module span the module tier (level 0)."""
    masks: dict[int, int] = {}
    for node_index, mask in parts:
        masks[node_index] = masks.get(node_index, 0) | mask
    node_tier = tree.node_tier
    if len(masks) == 1:
        ((node_index, mask),) = masks.items()
        node = tree.nodes[node_index]
        if node_tier > 0 and any(mask & ~module == 0 for module in node.modules):
            return node_tier - 1, 0, node_index
        return node_tier, 0, node_index
    if not masks:
        raise ValueError("the span of no slot")
    paths = [tree.nodes[node].domains for node in masks]
    for level in range(1, len(tree.levels)):
        first = paths[0][level]
        if all(path[level] == first for path in paths):
            return node_tier + level, level, first
    raise AssertionError("the root holds every node")
