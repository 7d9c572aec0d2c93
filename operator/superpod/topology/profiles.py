"""Hardware profiles: each profile's tiers, per-node rule, resource name and device names.

Bandwidth is per device, one direction, inside one domain of the tier; latency is one way. Figures marked
(public) are the public ones of docs/design.md section 4; the others are this project's assumptions, chosen from public vendor
material and listed in docs/placement.md. They only feed `estimatedBandwidthGBps` and the docs: the allocator
ranks tiers by their order, never by these numbers.
"""

from __future__ import annotations

import dataclasses
import itertools

from superpod.api import superpod as api_superpod
from superpod.topology import noderules, tiers
from superpod.topology.tiers import Tier


@dataclasses.dataclass(frozen=True)
class HardwareProfile:
    """The fixed facts of one hardware family."""

    name: str  # the api Profile value, for example cloudmatrix-384
    tiers: tuple[Tier, ...]  # the allocation tiers, tightest first; exactly one is named node
    rule: noderules.NodeRule  # which devices of a node a pod may take
    resource_name: str  # the extended resource the device plugin advertises
    device_prefix: str  # devices are named <prefix><local index>
    reserve_nodes: int = 0  # nodes kept for repair by default
    display_rack_nodes: int = 0  # nodes per rack in the occupancy map when racks are no tier (0: none)
    default_nodes: int = 16  # nodes of a synthesised inventory (plan without observed nodes, bench)

    @property
    def node_tier(self) -> int:
        """Index of the node tier in `tiers`."""
        return next(i for i, tier in enumerate(self.tiers) if tier.name == tiers.NODE)

    @property
    def devices_per_node(self) -> int:
        return self.rule.devices_per_node

    def tier_index(self, name: str) -> int | None:
        """Index of the tier a `maxTier` name means here.

        An exact name wins. A standard name the profile lacks (rack on cloudmatrix-384) maps to the widest
        tier of this profile that is not wider than it, so a hard limit is never loosened.
        """
        for index, tier in enumerate(self.tiers):
            if tier.name == name:
                return index
        if name not in tiers.CANONICAL_ORDER:
            return None
        rank = tiers.CANONICAL_ORDER.index(name)
        best: int | None = None
        for index, tier in enumerate(self.tiers):
            if tier.name in tiers.CANONICAL_ORDER and tiers.CANONICAL_ORDER.index(tier.name) <= rank:
                best = index
        return best

    def device_names(self, count: int | None = None) -> tuple[str, ...]:
        """The names of a full node's devices, in local index order."""
        return tuple(f"{self.device_prefix}{i}" for i in range(count or self.devices_per_node))

    def device_number(self, name: str) -> int | None:
        """The number in a device name a node of this profile can have (`Ascend910-7` -> 7), else None.

        A node has `devices_per_node` devices, `<prefix>0` to `<prefix><n-1>`, as the device plugin names them
        (decimal, no sign, no leading zero); the number is also the device's place in the node's modules
        (A3 die pairs 0-1, 2-3, ...; 910A rings 0-3 and 4-7).
        """
        digits = name.removeprefix(self.device_prefix)
        if digits == name or not (digits.isascii() and digits.isdigit()) or digits != str(int(digits)):
            return None
        number = int(digits)
        return number if number < self.devices_per_node else None


ROCE_400G = 50.0  # 400 Gb/s per NPU between SuperPoDs (public)
_ASCEND = "huawei.com/Ascend910"
_NPU = "huawei.com/npu"


def _any_rule(devices: int) -> noderules.NodeRule:
    return noderules.NodeRule(devices_per_node=devices, module_size=devices)


_A3_ALLOWED = frozenset({1, *range(2, 17, 2)})

CLOUDMATRIX_384 = HardwareProfile(
    name=api_superpod.Profile.CLOUDMATRIX_384.value,
    tiers=(
        Tier(tiers.MODULE, 2, 540.0, 0.5, "SIO (HiAM die pair)"),
        Tier(tiers.NODE, 16, 392.0, 1.0, "HCCS-L1"),
        Tier(tiers.SUPERPOD, 768, 392.0, 2.0, "UB / HCCS-L2 Clos (public: >392 GB/s per chip)"),
    ),
    rule=noderules.NodeRule(devices_per_node=16, module_size=2, allowed_sizes=_A3_ALLOWED),
    resource_name=_ASCEND,
    device_prefix="Ascend910-",
    reserve_nodes=2,
    display_rack_nodes=4,
    default_nodes=48,
)

_950_TIERS = (
    Tier(tiers.NODE, 8, 2000.0, 1.0, "UB full mesh"),
    Tier(tiers.RACK, 64, 2000.0, 1.5, "UB"),
    Tier(tiers.SUPERPOD, 8192, 2000.0, 2.1, "UB switches"),
)

ATLAS_950 = HardwareProfile(
    name=api_superpod.Profile.ATLAS_950.value,
    tiers=_950_TIERS,
    rule=_any_rule(8),
    resource_name=_NPU,
    device_prefix="npu-",
    default_nodes=1024,
)

ATLAS_960 = HardwareProfile(
    name=api_superpod.Profile.ATLAS_960.value,
    tiers=(
        Tier(tiers.NODE, 8, 2200.0, 1.0, "UB full mesh"),
        Tier(tiers.RACK, 64, 2200.0, 1.5, "UB"),
        Tier(tiers.SUPERPOD, 15_488, 2200.0, 2.1, "UB switches"),
    ),
    rule=_any_rule(8),
    resource_name=_NPU,
    device_prefix="npu-",
    default_nodes=1936,
)

ATLAS_950_SUPERCLUSTER = HardwareProfile(
    name=api_superpod.Profile.ATLAS_950_SUPERCLUSTER.value,
    tiers=(*_950_TIERS, Tier(tiers.CLUSTER, 524_288, ROCE_400G, 10.0, "RoCE / UBoE 400 Gb/s")),
    rule=_any_rule(8),
    resource_name=_NPU,
    device_prefix="npu-",
    default_nodes=65536,
)

ASCEND_910A = HardwareProfile(
    name=api_superpod.Profile.ASCEND_910A.value,
    tiers=(
        Tier(tiers.MODULE, 4, 30.0, 1.0, "HCCS ring"),
        Tier(tiers.NODE, 8, 16.0, 2.0, "PCIe between rings"),
        Tier(tiers.CLUSTER, 1 << 20, 12.5, 10.0, "RoCE 100 Gb/s"),
    ),
    rule=noderules.NodeRule(
        devices_per_node=8,
        module_size=4,
        allowed_sizes=frozenset({1, 2, 4, 8}),
        small_preference=((1, 3, 2, 4), (2, 3, 4)),
    ),
    resource_name=_ASCEND,
    device_prefix="Ascend910-",
)

ASCEND_910B = HardwareProfile(
    name=api_superpod.Profile.ASCEND_910B.value,
    tiers=(
        Tier(tiers.NODE, 8, 196.0, 1.0, "HCCS"),
        Tier(tiers.CLUSTER, 1 << 20, 25.0, 10.0, "RoCE 200 Gb/s"),
    ),
    rule=_any_rule(8),
    resource_name=_ASCEND,
    device_prefix="Ascend910-",
)

NVIDIA_GB200_NVL72 = HardwareProfile(
    name=api_superpod.Profile.NVIDIA_GB200_NVL72.value,
    tiers=(
        Tier(tiers.NODE, 4, 900.0, 0.5, "NVLink 5 (NVSwitch tray)"),
        Tier(tiers.RACK, 72, 900.0, 1.0, "NVLink domain (NVL72)"),
        Tier(tiers.CLUSTER, 1 << 20, ROCE_400G, 5.0, "InfiniBand / RoCE 400 Gb/s"),
    ),
    rule=_any_rule(4),
    resource_name="nvidia.com/gpu",
    device_prefix="nvidia-",
    default_nodes=72,
)

BUILTIN: dict[str, HardwareProfile] = {
    profile.name: profile
    for profile in (
        CLOUDMATRIX_384,
        ATLAS_950,
        ATLAS_960,
        ATLAS_950_SUPERCLUSTER,
        ASCEND_910A,
        ASCEND_910B,
        NVIDIA_GB200_NVL72,
    )
}


class ProfileError(ValueError):
    """The SuperPod spec does not describe a usable profile."""


def custom(tier_specs: list[api_superpod.TierSpec], devices_per_node: int | None = None) -> HardwareProfile:
    """A profile from a SuperPod's `spec.tiers` (tightest first).

    The tier named node is the node tier; without one, the first tier at least `devices_per_node` large (or
    the first tier) is the node tier and is renamed node, so `maxTier: node` works on every profile. The
    tier just below the node defines modules of consecutive devices; tiers above group consecutive nodes.
    """
    if not tier_specs:
        raise ProfileError("profile custom needs spec.tiers")
    sizes = [spec.domain_size for spec in tier_specs]
    if any(b % a for a, b in itertools.pairwise(sizes)) or sizes != sorted(sizes):
        raise ProfileError(
            "custom tiers must grow and each domainSize must be a multiple of the previous one"
        )
    names = [spec.name for spec in tier_specs]
    if tiers.NODE in names:
        node_index = names.index(tiers.NODE)
    else:
        wanted = devices_per_node or sizes[0]
        node_index = next((i for i, size in enumerate(sizes) if size >= wanted), len(sizes) - 1)
    built = tuple(
        Tier(
            tiers.NODE if i == node_index else spec.name,
            spec.domain_size,
            spec.bandwidth_g_bps,
            spec.latency_microseconds if spec.latency_microseconds is not None else 0.0,
        )
        for i, spec in enumerate(tier_specs)
    )
    node_size = sizes[node_index]
    module_size = sizes[node_index - 1] if node_index > 0 else node_size
    return HardwareProfile(
        name=api_superpod.Profile.CUSTOM.value,
        tiers=built,
        rule=noderules.NodeRule(devices_per_node=node_size, module_size=module_size),
        resource_name=_ASCEND,
        device_prefix="Ascend910-",
        default_nodes=max(1, min(sizes[-1], 4096) // node_size),
    )


def for_spec(spec: api_superpod.SuperPodSpec, devices_per_node: int | None = None) -> HardwareProfile:
    """The profile a SuperPod spec names, with its resource name override applied."""
    if spec.profile == api_superpod.Profile.CUSTOM:
        profile = custom(spec.tiers or [], devices_per_node)
    else:
        profile = BUILTIN[spec.profile.value]
    if spec.resource_name and spec.resource_name != profile.resource_name:
        prefix = profile.device_prefix
        if prefix == plugin_prefix(profile.resource_name):
            # the Ascend device plugin names devices after the resource: huawei.com/Ascend310P -> Ascend310P-0
            prefix = plugin_prefix(spec.resource_name)
        profile = dataclasses.replace(profile, resource_name=spec.resource_name, device_prefix=prefix)
    return profile


def plugin_prefix(resource_name: str) -> str:
    """The device name prefix the Ascend device plugin uses for an extended resource (`Ascend910-`)."""
    return resource_name.rpartition("/")[2] + "-"
