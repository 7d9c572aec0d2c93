"""What a partition asks for, in the allocator's terms, and its resolved shape on one tree.

`PlacementRequest` mirrors the placement-deciding fields of `PartitionSpec`. `Shape` is the request resolved
against a tree: the pod size, the slots and blocks, the tier limit, or the reason it can never fit.
"""

from __future__ import annotations

import dataclasses

from superpod.api import partition as api_partition
from superpod.topology import tree as topology_tree


@dataclasses.dataclass(frozen=True)
class PlacementRequest:
    """The placement-deciding fields of a partition spec."""

    npus: int
    block_size: int | None = None  # default: npus (the whole partition is one block)
    max_tier: str | None = None  # default: the profile's widest tier
    devices_per_pod: int | None = None  # default: see `Shape`
    whole_nodes: bool = False

    @classmethod
    def from_spec(cls, spec: api_partition.PartitionSpec) -> PlacementRequest:
        return cls(
            npus=spec.npus,
            block_size=spec.block_size,
            max_tier=spec.max_tier,
            devices_per_pod=spec.devices_per_pod,
            whole_nodes=spec.whole_nodes,
        )

    def describe(self) -> str:
        """The request in one phrase, for messages."""
        parts = [f"{self.npus} NPUs"]
        if self.block_size and self.block_size != self.npus:
            parts.append(f"blocks of {self.block_size}")
        if self.devices_per_pod:
            parts.append(f"{self.devices_per_pod} per pod")
        if self.max_tier:
            parts.append(f"within one {self.max_tier}")
        if self.whole_nodes:
            parts.append("whole nodes")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Shape:
    """A request resolved against a tree."""

    npus: int
    pod_size: int  # devices per slot (one pod, one node)
    block_slots: int  # slots per block
    blocks: int  # number of blocks
    max_level: int  # widest tree level the partition may span (0 = node)
    module_only: bool  # maxTier is below the node: the single slot must sit in one module
    whole_nodes: bool

    @property
    def slots(self) -> int:
        return self.blocks * self.block_slots

    @property
    def block_size(self) -> int:
        return self.block_slots * self.pod_size

    @property
    def key(self) -> tuple[int, bool]:
        """Which per-domain slot capacities this shape needs."""
        return (self.pod_size, self.whole_nodes)


def resolve(request: PlacementRequest, tree: topology_tree.TopologyTree) -> Shape | str:
    """The shape of `request` on `tree`, or why no tree of this profile could ever hold it.

    devicesPerPod defaults to the largest size the profile allows on one node that divides the block size
    (16 for a 64-NPU partition on cloudmatrix-384, 8 for 24 NPUs, 1 for 1).
    """
    profile = tree.profile
    rule = profile.rule
    npus = request.npus
    block = request.block_size or npus
    if npus < 1 or block < 1:
        return "npus and blockSize must be positive"
    if npus % block:
        return f"npus {npus} is not a multiple of blockSize {block}"
    if request.devices_per_pod is not None:
        pod = request.devices_per_pod
        if block % pod:
            return f"devicesPerPod {pod} does not divide blockSize {block}"
        if not rule.allows(pod):
            return f"devicesPerPod {pod} is not allowed on {profile.name} ({_allowed(tree)})"
    else:
        candidates = [size for size in range(min(block, rule.devices_per_node), 0, -1) if rule.allows(size)]
        pod = next((size for size in candidates if block % size == 0), 0)
        if not pod:
            return f"no pod size allowed on {profile.name} divides blockSize {block} ({_allowed(tree)})"
    top = len(profile.tiers) - 1
    max_tier = top
    if request.max_tier is not None:
        found = profile.tier_index(request.max_tier)
        if found is None:
            names = ", ".join(tier.name for tier in profile.tiers)
            return f"maxTier {request.max_tier} is not a tier of {profile.name} ({names})"
        max_tier = found
    module_only = max_tier < tree.node_tier
    if module_only and (npus != pod or npus > rule.module_size):
        return (
            f"maxTier {request.max_tier} holds at most {rule.module_size} devices of one pod, "
            f"asked {npus} in pods of {pod}"
        )
    return Shape(
        npus=npus,
        pod_size=pod,
        block_slots=block // pod,
        blocks=npus // block,
        max_level=max(0, max_tier - tree.node_tier),
        module_only=module_only,
        whole_nodes=request.whole_nodes,
    )


def _allowed(tree: topology_tree.TopologyTree) -> str:
    rule = tree.profile.rule
    sizes = [size for size in range(1, rule.devices_per_node + 1) if rule.allows(size)]
    return "allowed per pod: " + ", ".join(map(str, sizes))
