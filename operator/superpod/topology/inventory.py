"""What the cluster reports about each node, as the allocator needs it, and synthetic inventories.

The coordinates are the device plugin's (`SuperPodID`, `RackID`, `ServerIndex` in the DeviceInfoCfg
ConfigMap); -1 means unknown. A node with unknown coordinates still works: it is ordered by name. Where
racks have no number but a name (GB200's NVLink domains, `nvidia.com/gpu.clique`), `rack_label` holds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from superpod.topology import profiles

UNKNOWN = -1


@dataclasses.dataclass(frozen=True)
class ObservedNode:
    """One member node as observed: its coordinates, its devices and their health."""

    name: str
    superpod_index: int = UNKNOWN  # SuperPodID
    rack: int = UNKNOWN  # RackID
    server_index: int = UNKNOWN  # ServerIndex
    devices: tuple[str, ...] = ()  # device names as the device plugin lists them
    unhealthy: frozenset[str] = frozenset()  # unhealthy, network-unhealthy or faulty devices
    ready: bool = True  # the Node is Ready and its device information is valid
    # the rack (NVLink domain) by name where no RackID is known: GB200's `nvidia.com/gpu.clique`
    rack_label: str = ""


def foreign_devices(profile: profiles.HardwareProfile, names: Iterable[str]) -> tuple[str, ...]:
    """The names among `names` that no node of `profile` has (a number past the node's devices, another
    prefix, no number), in the order given, each once."""
    return tuple(name for name in dict.fromkeys(names) if profile.device_number(name) is None)


def synthesize(profile: profiles.HardwareProfile, node_count: int | None = None) -> tuple[ObservedNode, ...]:
    """A healthy inventory of `node_count` nodes (default: the profile's `default_nodes`).

    Node names are `node-<superpod>-<index>`; racks follow the rack tier, or the profile's display racks.
    """
    count = node_count if node_count is not None else profile.default_nodes
    per_superpod = _nodes_per(profile, "superpod") or count
    per_rack = _nodes_per(profile, "rack") or profile.display_rack_nodes or per_superpod
    devices = profile.device_names()
    width = len(str(max(count - 1, 1)))
    return tuple(
        ObservedNode(
            name=f"node-{i // per_superpod}-{i % per_superpod:0{width}d}",
            superpod_index=i // per_superpod,
            rack=(i % per_superpod) // per_rack,
            server_index=i % per_superpod,
            devices=devices,
        )
        for i in range(count)
    )


def _nodes_per(profile: profiles.HardwareProfile, tier_name: str) -> int:
    for tier in profile.tiers:
        if tier.name == tier_name:
            return max(1, tier.domain_size // profile.devices_per_node)
    return 0
