"""Small builders for allocator tests: trees from profile names, observed nodes, requests in one call."""

from __future__ import annotations

from superpod import placement
from superpod.api import superpod as api_superpod
from superpod.placement import policy as placement_policy
from superpod.topology import inventory, profiles, tree

SMALL_NODES = {
    # node counts that keep every tier of the profile but make property tests quick
    "cloudmatrix-384": 48,
    "atlas-950": 32,
    "atlas-960": 24,
    "ascend-910a": 6,
    "ascend-910b": 6,
    "nvidia-gb200-nvl72": 36,
}


CUSTOM_TIERS = [
    api_superpod.TierSpec(name="pair", domain_size=2, bandwidth_g_bps=400.0),
    api_superpod.TierSpec(name="node", domain_size=8, bandwidth_g_bps=200.0),
    api_superpod.TierSpec(name="rack", domain_size=32, bandwidth_g_bps=100.0),
    api_superpod.TierSpec(name="pod", domain_size=128, bandwidth_g_bps=50.0),
]


def make_tree(profile_name: str, nodes: int | None = None, reserve: int | None = None) -> tree.TopologyTree:
    """A tree of a built-in profile, or of "custom" (pairs of 2, nodes of 8, racks of 32, a pod of 128)."""
    if profile_name == "custom":
        profile = profiles.custom(CUSTOM_TIERS)
        return tree.build(profile, inventory.synthesize(profile, nodes), reserve_nodes=reserve)
    profile = profiles.BUILTIN[profile_name]
    if profile_name == "atlas-950-supercluster":
        return tree.build(profile, small_supercluster(), reserve_nodes=reserve)
    return tree.build(profile, inventory.synthesize(profile, nodes), reserve_nodes=reserve)


def small_supercluster(
    superpods: int = 2, racks: int = 2, nodes_per_rack: int = 4
) -> list[inventory.ObservedNode]:
    """A supercluster in miniature: coordinates as the device plugin gives them, so the tree keeps all four
    tiers (node, rack, superpod, cluster) with few nodes."""
    profile = profiles.ATLAS_950_SUPERCLUSTER
    return [
        inventory.ObservedNode(
            name=f"sp{pod}-r{rack}-n{node}",
            superpod_index=pod,
            rack=rack,
            server_index=rack * nodes_per_rack + node,
            devices=profile.device_names(),
        )
        for pod in range(superpods)
        for rack in range(racks)
        for node in range(nodes_per_rack)
    ]


def make_allocator(
    profile_name: str,
    nodes: int | None = None,
    reserve: int | None = None,
    policy: placement_policy.Policy | None = None,
) -> placement.Allocator:
    return placement.Allocator(make_tree(profile_name, nodes, reserve), policy)


def place(allocator: placement.Allocator, pid: str, npus: int, **fields: object) -> placement.Placement:
    decision = allocator.plan_partition(placement.PlacementRequest(npus, **fields))  # type: ignore[arg-type]
    assert isinstance(decision, placement.Placement), decision
    allocator.commit(pid, decision)
    return decision
