"""The simulated fleet's layout: node names, coordinates and addresses, all derived deterministically.

A fleet is the nodes of one SuperPoD (`superpod_id`, default 0) of one profile, or, on hardware without
SuperPoDs, a group of servers numbered like one. Everything here is a pure function of (profile, superpod id,
node index, device index), so another process (`superpod sim fault`) computes the same names and addresses.

Formulas (documented in docs/simulator.md):

- node name: `<profile>-<superpod>-<index>`, index zero-padded to the width of the last index;
- ServerIndex = index; RackID = index // nodes per rack (-1 where the hardware has no racks);
- SuperPodID = superpod id on SuperPoD hardware, -2 ("unsupported", as the device plugin writes) elsewhere;
- block b = superpod * 8 + index // 256 (up to 2,048 nodes per fleet); a block's addresses take its low
  byte, w = b // 256 (the wrap: 0 for the first 32 SuperPoDs, 1 for the next 32) goes into the last byte, so
  every node of a 64-SuperPoD SuperCluster (65,536 nodes, 524,288 devices) has its own host and device IPs;
- host IP 10.<b % 256>.<index % 256>.<1 + w>;
- pod CIDR: a /26 of the cluster's pod network 100.64.0.0/10 per node, the o-th where o (the node's ordinal) =
  superpod * nodes per SuperPoD + index, so the 65,536 nodes of a 64-SuperPoD SuperCluster have 65,536 distinct
  ranges (the /10 holds exactly that many; beyond, o wraps); pod IPs the range's .2 to .62 (.1 is the node's
  gateway): 61 pods per node, the node's `pods` capacity. A /24 per node, as kube-controller-manager gives by
  default, would need a /8 for 65,536 nodes, and 10.0.0.0/8 holds the host IPs;
- device IP 29.<b % 256>.<index % 256>.<w * devices per node + device + 1> (the reference sample's
  29.<server>.0.<device+1> style);
- super_device_id = index * devices per node + device (unique inside one SuperPoD, where HCCL uses it).
"""

from __future__ import annotations

import dataclasses

from superpod_sandbox.sim import hardware

UNSUPPORTED = -2
"""SuperPodID/ServerIndex the device plugin reports on hardware that has no SuperPoD."""
NO_RACK = -1
POD_NETWORK = (100 << 24) | (
    64 << 16
)  # 100.64.0.0/10 (RFC 6598 shared address space): the cluster's pod CIDR
POD_NETWORK_PREFIX = 10
NODE_POD_PREFIX = 26  # each node's pod range
NODE_POD_ADDRESSES = 1 << (32 - NODE_POD_PREFIX)
NODE_POD_RANGES = 1 << (NODE_POD_PREFIX - POD_NETWORK_PREFIX)  # 65,536
MAX_POD_SLOTS = NODE_POD_ADDRESSES - 3
"""Pods per node that get distinct pod IPs: the range less its network address, the gateway (.1) and broadcast."""


@dataclasses.dataclass(frozen=True)
class SimNode:
    """One simulated server."""

    name: str
    index: int  # position in the fleet (ServerIndex on SuperPoD hardware)
    superpod_id: int  # the fleet's SuperPoD id (also on hardware without SuperPoDs, for addressing)
    ordinal: int  # superpod_id * nodes per SuperPoD + index: which of the cluster's pod ranges is its own
    rack_id: int  # NO_RACK when the hardware has no racks
    devices: tuple[str, ...]  # device names in local index order

    @property
    def block(self) -> int:
        return self.superpod_id * 8 + self.index // 256

    @property
    def host_ip(self) -> str:
        return f"10.{self.block % 256}.{self.index % 256}.{1 + self.block // 256}"

    def device_ip(self, device_index: int) -> str:
        last = (self.block // 256) * len(self.devices) + device_index + 1
        return f"29.{self.block % 256}.{self.index % 256}.{last}"

    def super_device_id(self, device_index: int) -> int:
        return self.index * len(self.devices) + device_index

    def pod_ip(self, slot: int) -> str:
        """The IP of the pod in `slot` (0-based) of this node."""
        if not 0 <= slot < MAX_POD_SLOTS:
            raise ValueError(f"pod slot {slot} out of range 0..{MAX_POD_SLOTS - 1}")
        return _dotted(self._pod_range + 2 + slot)

    @property
    def pod_cidr(self) -> str:
        """The node's pod range (`spec.podCIDR`), a /26 of 100.64.0.0/10 of its own."""
        return f"{_dotted(self._pod_range)}/{NODE_POD_PREFIX}"

    @property
    def _pod_range(self) -> int:
        return POD_NETWORK + (self.ordinal % NODE_POD_RANGES) * NODE_POD_ADDRESSES


def _dotted(address: int) -> str:
    return ".".join(str(address >> shift & 255) for shift in (24, 16, 8, 0))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The nodes of one simulated fleet."""

    hardware: hardware.Hardware
    superpod_id: int
    nodes: tuple[SimNode, ...]

    @property
    def fleet(self) -> str:
        """The fleet's identity, stored in a label on everything the simulator creates."""
        return f"{self.hardware.name}-{self.superpod_id}"

    def node(self, name: str) -> SimNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"node {name!r} is not part of fleet {self.fleet}")

    @property
    def reported_superpod_id(self) -> int:
        return self.superpod_id if self.hardware.facts.has_superpod else UNSUPPORTED

    def reported_server_index(self, node: SimNode) -> int:
        return node.index if self.hardware.facts.has_superpod else UNSUPPORTED


def build(hw: hardware.Hardware, superpod_id: int = 0, node_count: int | None = None) -> Layout:
    """The layout of `node_count` nodes (default: the hardware's default) of SuperPoD `superpod_id`."""
    count = hw.default_nodes if node_count is None else node_count
    if count < 1:
        raise ValueError("a fleet needs at least one node")
    if superpod_id < 0:
        raise ValueError("the SuperPoD id must be 0 or more")
    per_rack = hw.nodes_per_rack
    width = len(str(count - 1))
    devices = hw.device_names()
    nodes = tuple(
        SimNode(
            name=f"{hw.name}-{superpod_id}-{index:0{width}d}",
            index=index,
            superpod_id=superpod_id,
            ordinal=ordinal(hw, superpod_id, index),
            rack_id=index // per_rack if per_rack else NO_RACK,
            devices=devices,
        )
        for index in range(count)
    )
    return Layout(hw, superpod_id, nodes)


def ordinal(hw: hardware.Hardware, superpod_id: int, index: int) -> int:
    """The node's place among the nodes of every SuperPoD of its profile (its pod range's number). A fleet grown
    past one SuperPoD's nodes (`superpod sim up --nodes`) takes the next SuperPoD's first ordinals."""
    return superpod_id * hw.default_nodes + index


def device_index(name: str) -> int:
    """`Ascend910-12` -> 12."""
    _, _, suffix = name.rpartition("-")
    if not suffix.isdigit():
        raise ValueError(f"{name!r} is not a device name with a numeric index")
    return int(suffix)


def parse_fleet(fleet_id: str) -> tuple[str, int]:
    """`cloudmatrix-384-0` -> ("cloudmatrix-384", 0): the inverse of `Layout.fleet`."""
    profile, _, superpod = fleet_id.rpartition("-")
    if not profile or not superpod.isdigit():
        raise ValueError(f"{fleet_id!r} is not a simulated fleet id (<profile>-<superpod id>)")
    return profile, int(superpod)


def node_named(hw: hardware.Hardware, superpod_id: int, name: str) -> SimNode:
    """The SimNode of a node name built by `build` (its index is the name's numeric suffix)."""
    prefix = f"{hw.name}-{superpod_id}-"
    suffix = name[len(prefix) :] if name.startswith(prefix) else ""
    if not suffix.isdigit():
        raise ValueError(f"{name!r} is not a node of fleet {hw.name}-{superpod_id}")
    index = int(suffix)
    per_rack = hw.nodes_per_rack
    return SimNode(
        name=name,
        index=index,
        superpod_id=superpod_id,
        ordinal=ordinal(hw, superpod_id, index),
        rack_id=index // per_rack if per_rack else NO_RACK,
        devices=hw.device_names(),
    )


def single(hw: hardware.Hardware, superpod_id: int, node: SimNode) -> Layout:
    """A layout holding just `node`, enough to render its objects from another process."""
    return Layout(hw, superpod_id, (node,))
