"""Small builders for allocator tests: trees from profile names, requests in one call."""

from __future__ import annotations

from superpod import placement
from superpod.topology import inventory, profiles, tree


def make_tree(profile_name: str, nodes: int | None = None, reserve: int | None = None) -> tree.TopologyTree:
    profile = profiles.BUILTIN[profile_name]
    return tree.build(profile, inventory.synthesize(profile, nodes), reserve_nodes=reserve)


def make_allocator(
    profile_name: str, nodes: int | None = None, reserve: int | None = None
) -> placement.Allocator:
    return placement.Allocator(make_tree(profile_name, nodes, reserve))


def place(allocator: placement.Allocator, pid: str, npus: int, **fields: object) -> placement.Placement:
    decision = allocator.plan_partition(placement.PlacementRequest(npus, **fields))  # type: ignore[arg-type]
    assert isinstance(decision, placement.Placement), decision
    allocator.commit(pid, decision)
    return decision
