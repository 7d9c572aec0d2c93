"""Which rank table a hardware profile gets, and building it.

910A and 910B servers (Atlas 800T A2) read v1.0; the A3 SuperPoD (CloudMatrix 384) reads v1.2 with
`super_device_id` and `super_pod_list`; the Atlas 950 generation (950, 960 and the 950 SuperCluster) reads
v2.0. NVIDIA GB200 NVL72 racks run NCCL, which discovers its topology itself and reads no rank table, so that
profile has none (None); neither has `custom`, whose hardware the operator cannot know.
"""

from __future__ import annotations

from collections.abc import Sequence

from superpod.api import superpod
from superpod.ranktable import ranks, servers, slots, tables

_VERSIONS: dict[superpod.Profile, tables.Version | None] = {
    superpod.Profile.ASCEND_910A: tables.Version.V1_0,
    superpod.Profile.ASCEND_910B: tables.Version.V1_0,
    superpod.Profile.CLOUDMATRIX_384: tables.Version.V1_2,
    superpod.Profile.ATLAS_950: tables.Version.V2_0,
    superpod.Profile.ATLAS_960: tables.Version.V2_0,
    superpod.Profile.ATLAS_950_SUPERCLUSTER: tables.Version.V2_0,
    superpod.Profile.NVIDIA_GB200_NVL72: None,
    superpod.Profile.CUSTOM: None,
}


def version_for_profile(profile: superpod.Profile | str) -> tables.Version | None:
    """The rank table version of a hardware profile, or None when its pods get no HCCL rank table."""
    return _VERSIONS[superpod.Profile(profile)]


def build(
    version: tables.Version, slots_: Sequence[slots.RankSlot], *, block_size: int | None = None
) -> tables.RankTable:
    """The table of one version for a partition's slots (`block_size` matters to v1.2 only)."""
    if version is tables.Version.V1_0:
        return servers.build_v1_0(slots_)
    if version is tables.Version.V1_2:
        return servers.build_v1_2(slots_, block_size=block_size)
    return ranks.build_v2_0(slots_)
