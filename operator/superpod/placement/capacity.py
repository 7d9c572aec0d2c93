"""The capacity summary of a SuperPod, derived from the allocator's state, for its status and metrics.

Counts partition the devices: `free + allocated + unhealthy + reserved == total`, where `allocated` counts
every device a partition holds (even one that turned unhealthy: it stays with the partition until repair or
release), `unhealthy` counts unhealthy devices no partition holds, `reserved` counts healthy, unheld devices
on reserve nodes, and `free` the rest.
"""

from __future__ import annotations

import dataclasses

from superpod.api import superpod as api_superpod
from superpod.placement import state as placement_state


@dataclasses.dataclass(frozen=True)
class Capacity:
    total: int
    free: int
    allocated: int
    unhealthy: int
    reserved: int
    partitions: int
    largest_free_block: tuple[tuple[str, int], ...]  # (tier, most free devices in one domain), tightest first
    fragmentation: float  # node-level fragmentation (see superpod.placement.state)
    fragmentation_by_tier: tuple[tuple[str, float], ...]  # node tier and wider

    def api_devices(self) -> api_superpod.DeviceCounts:
        return api_superpod.DeviceCounts(
            total=self.total,
            free=self.free,
            allocated=self.allocated,
            unhealthy=self.unhealthy,
            reserved=self.reserved,
        )

    def api_blocks(self) -> list[api_superpod.TierBlock]:
        return [
            api_superpod.TierBlock(tier=tier, devices=devices) for tier, devices in self.largest_free_block
        ]


def summarise(state: placement_state.FreeState, partitions: int) -> Capacity:
    tree = state.tree
    profile = tree.profile
    blocks: list[tuple[str, int]] = []
    if tree.node_tier > 0:
        largest_module = 0
        for node in tree.nodes:
            if node.reserve or not state.free[node.index]:
                continue
            free = state.free[node.index]
            largest_module = max(largest_module, *((free & module).bit_count() for module in node.modules))
        blocks.append((profile.tiers[tree.node_tier - 1].name, largest_module))
    for level, counts in enumerate(state.free_count):
        blocks.append((tree.tier_name(level), max(counts, default=0)))
    return Capacity(
        total=tree.total_devices,
        free=state.total_free,
        allocated=state.total_held,
        unhealthy=state.total_unhealthy,
        reserved=state.total_reserved,
        partitions=partitions,
        largest_free_block=tuple(blocks),
        fragmentation=round(state.fragmentation(0), 6),
        fragmentation_by_tier=tuple(
            (tree.tier_name(level), round(state.fragmentation(level), 6)) for level in range(len(tree.levels))
        ),
    )
