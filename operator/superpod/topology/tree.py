"""The topology tree: a profile plus the observed nodes, built once per change of the node set, immutable.

Levels run from the node tier (level 0, one domain per node) to the profile's widest tier (one domain, the
root). Tiers below the node (modules) live inside each node as device bit masks. Nodes are sorted along the
topology (SuperPodID, RackID or rack name, ServerIndex, then name; unknown coordinates last), and every
domain covers a contiguous range of them, so "consecutive ranks are topological neighbours" is just node
order.

A tier above the node groups nodes by the device plugin's coordinates when every node of the parent domain
has them (superpod by SuperPodID, rack by RackID, or by the rack's name where it has no number: GB200's
`nvidia.com/gpu.clique`), otherwise into consecutive chunks of the tier's nominal size. The live state
(free devices, allocations) lives in `superpod.placement`, not here, as Kueue keeps its topology tree apart
from its live free counts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from superpod.topology import inventory, profiles, tiers

_INF = 1 << 62
_DEVICE_NUMBER = re.compile(r"(\d+)$")


@dataclasses.dataclass(frozen=True)
class TreeNode:
    """One node: its devices (local index i is bit i of every mask) and its place in the tree."""

    index: int  # position in topology order
    name: str
    devices: tuple[str, ...]  # device names by local index
    modules: tuple[int, ...]  # device masks of the node's modules (HiAM pairs, HCCS rings, or the node)
    domains: tuple[int, ...]  # the domain index of this node at every level, level 0 (the node) first
    reserve: bool  # kept for repair
    superpod_index: int
    rack: int
    server_index: int
    initially_unhealthy: int  # device mask unhealthy at observation (all devices when not ready)

    @property
    def full_mask(self) -> int:
        return (1 << len(self.devices)) - 1


@dataclasses.dataclass(frozen=True)
class Domain:
    """One domain of one level: a contiguous range of nodes."""

    level: int  # 0 = node tier
    index: int  # position within its level
    id: str  # stable identifier, for example rack-3 or superpod-0/rack-3, or the node name
    parent: int  # index in level + 1; -1 for the root
    children: tuple[int, ...]  # indices in level - 1 (empty at level 0)
    first_node: int
    end_node: int  # one past the last node
    devices: int  # devices on its nodes (healthy or not)


class TopologyTree:
    """The fixed structure the allocator works on."""

    def __init__(
        self,
        profile: profiles.HardwareProfile,
        nodes: tuple[TreeNode, ...],
        levels: tuple[tuple[Domain, ...], ...],
    ) -> None:
        self.profile = profile
        self.nodes = nodes
        self.levels = levels
        self.node_tier = profile.node_tier
        self.by_name = {node.name: node for node in nodes}
        self.total_devices = sum(len(node.devices) for node in nodes)
        self._node_domains: dict[int, tuple[tuple[str, str], ...]] = {}
        self.parents: tuple[tuple[int, ...], ...] = tuple(
            tuple(domain.parent for domain in level) for level in levels
        )  # parents[level][domain]: the index of its parent in level + 1 (-1 for the root)
        self.device_index = {
            node.name: {device: i for i, device in enumerate(node.devices)} for node in nodes
        }

    def level_tier(self, level: int) -> tiers.Tier:
        return self.profile.tiers[self.node_tier + level]

    def tier_name(self, level: int) -> str:
        return self.level_tier(level).name

    def node_domains(self, node: TreeNode) -> dict[str, str]:
        """Tier name -> domain id of a node, node tier and up (a fresh dict: callers may keep it)."""
        cached = self._node_domains.get(node.index)
        if cached is None:
            cached = tuple(
                (self.tier_name(level), self.levels[level][d].id) for level, d in enumerate(node.domains)
            )
            self._node_domains[node.index] = cached
        return dict(cached)

    def ancestors(self, level: int, index: int) -> Iterable[tuple[int, int]]:
        """(level, index) of a domain's ancestors, nearest first."""
        while level + 1 < len(self.levels):
            index = self.levels[level][index].parent
            level += 1
            yield level, index


def _sort_key(node: inventory.ObservedNode) -> tuple[int, int, str, int, str]:
    def known(value: int) -> int:
        return value if value >= 0 else _INF

    return (
        known(node.superpod_index),
        known(node.rack),
        node.rack_label,
        known(node.server_index),
        node.name,
    )


def _local_order(profile: profiles.HardwareProfile, devices: Sequence[str]) -> tuple[str, ...]:
    """Devices by number (Ascend910-3 before Ascend910-12), names without a number after them by name."""

    def key(name: str) -> tuple[int, int, str]:
        match = _DEVICE_NUMBER.search(name)
        return (0, int(match.group(1)), name) if match else (1, 0, name)

    return tuple(sorted(dict.fromkeys(devices), key=key))


def build(
    profile: profiles.HardwareProfile,
    observed: Iterable[inventory.ObservedNode],
    reserve_nodes: int | None = None,
) -> TopologyTree:
    """The tree of `observed` nodes under `profile`; the last `reserve_nodes` nodes (in topology order) are
    reserve nodes (default: the profile's)."""
    ordered = sorted(observed, key=_sort_key)
    if len({node.name for node in ordered}) != len(ordered):
        raise ValueError("node names must be unique")
    node_tier = profile.node_tier
    level_count = len(profile.tiers) - node_tier
    # groups[level] = list of (id, first, end), built from the root down
    groups: list[list[tuple[str, int, int, int]]] = [[] for _ in range(level_count)]  # id, first, end, parent
    top = profile.tiers[-1]
    groups[-1] = [(_root_id(top.name, ordered), 0, len(ordered), -1)]
    for level in range(level_count - 2, 0, -1):
        tier = profile.tiers[node_tier + level]
        per = max(1, tier.domain_size // profile.devices_per_node)
        for parent_index, (parent_id, first, end, _) in enumerate(groups[level + 1]):
            prefix = "" if level + 1 == level_count - 1 else f"{parent_id}/"
            members = ordered[first:end]
            for key, start, stop in _split(tier.name, members, per):
                groups[level].append(
                    (f"{prefix}{tier.name}-{key}", first + start, first + stop, parent_index)
                )
    if level_count > 1:
        groups[0] = []
        for parent_index, (_, first, end, _) in enumerate(groups[1]):
            groups[0].extend((ordered[i].name, i, i + 1, parent_index) for i in range(first, end))
    else:
        groups[0] = [(node.name, i, i + 1, -1) for i, node in enumerate(ordered)]
        if len(ordered) != 1:
            raise ValueError("a profile whose widest tier is the node holds exactly one node")
    reserve = profile.reserve_nodes if reserve_nodes is None else reserve_nodes
    reserve = min(reserve, len(ordered))
    levels = _levels(profile, ordered, groups)
    nodes = []
    modules: dict[tuple[str, ...], tuple[int, ...]] = {}  # by device list: most nodes share one
    for i, observed_node in enumerate(ordered):
        devices = _local_order(profile, observed_node.devices or profile.device_names())
        if devices not in modules:
            modules[devices] = _modules(profile, devices)
        unhealthy = 0
        for bit, device in enumerate(devices):
            if not observed_node.ready or device in observed_node.unhealthy:
                unhealthy |= 1 << bit
        domain_path = [i]
        for level in range(1, level_count):
            domain_path.append(levels[level - 1][domain_path[-1]].parent)
        nodes.append(
            TreeNode(
                index=i,
                name=observed_node.name,
                devices=devices,
                modules=modules[devices],
                domains=tuple(domain_path),
                reserve=i >= len(ordered) - reserve,
                superpod_index=observed_node.superpod_index,
                rack=observed_node.rack,
                server_index=observed_node.server_index,
                initially_unhealthy=unhealthy,
            )
        )
    return TopologyTree(profile, tuple(nodes), levels)


def _modules(profile: profiles.HardwareProfile, devices: Sequence[str]) -> tuple[int, ...]:
    """The node's modules by device number where every name is one of the profile's, else by position."""
    numbers = [profile.device_number(device) for device in devices]
    if any(number is None for number in numbers):
        return profile.rule.modules(len(devices))
    return profile.rule.modules_of([number for number in numbers if number is not None])


def _root_id(tier_name: str, ordered: Sequence[inventory.ObservedNode]) -> str:
    if tier_name == tiers.SUPERPOD:
        ids = {node.superpod_index for node in ordered}
        if len(ids) == 1 and min(ids) >= 0:
            return f"superpod-{min(ids)}"
    return tier_name


def _split(tier_name: str, members: Sequence[inventory.ObservedNode], per: int) -> list[tuple[str, int, int]]:
    """(key, start, stop) runs of `members`: by coordinate when every member has it (for racks: the RackID,
    else the rack's name, such as a GB200 clique), else chunks of `per`."""
    keys: list[str] = []
    if tier_name == tiers.SUPERPOD and all(node.superpod_index >= 0 for node in members):
        keys = [str(node.superpod_index) for node in members]
    elif tier_name == tiers.RACK and all(node.rack >= 0 for node in members):
        keys = [str(node.rack) for node in members]
    elif tier_name == tiers.RACK and all(node.rack_label for node in members):
        keys = [node.rack_label for node in members]
    if members and keys:
        runs: list[tuple[str, int, int]] = []
        for position, value in enumerate(keys):
            if runs and runs[-1][0] == value:
                runs[-1] = (value, runs[-1][1], position + 1)
            else:
                runs.append((value, position, position + 1))
        return runs
    return [
        (str(n), start, min(start + per, len(members))) for n, start in enumerate(range(0, len(members), per))
    ]


def _levels(
    profile: profiles.HardwareProfile,
    ordered: Sequence[inventory.ObservedNode],
    groups: list[list[tuple[str, int, int, int]]],
) -> tuple[tuple[Domain, ...], ...]:
    device_counts = [len(set(node.devices)) or profile.devices_per_node for node in ordered]
    prefix = [0]
    for count in device_counts:
        prefix.append(prefix[-1] + count)
    children: list[list[list[int]]] = [[[] for _ in level] for level in groups]
    for level in range(len(groups) - 1):
        for index, (_, _, _, parent) in enumerate(groups[level]):
            children[level + 1][parent].append(index)
    return tuple(
        tuple(
            Domain(
                level=level,
                index=index,
                id=domain_id,
                parent=parent,
                children=tuple(children[level][index]),
                first_node=first,
                end_node=end,
                devices=prefix[end] - prefix[first],
            )
            for index, (domain_id, first, end, parent) in enumerate(groups[level])
        )
        for level in range(len(groups))
    )
