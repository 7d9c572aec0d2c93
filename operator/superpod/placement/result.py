"""What the allocator answers: a `Placement`, a `Rejection` (failure is data), or a `Conflict` on restore."""

from __future__ import annotations

import dataclasses

from superpod.api import partition as api_partition


@dataclasses.dataclass(frozen=True)
class PlacedSlot:
    """The devices of one pod, on one node."""

    rank: int  # first HCCL rank of the slot; ranks are contiguous along the topology
    node: str
    devices: tuple[str, ...]
    domains: dict[str, str]  # tier name -> domain id, node tier and wider

    def to_api(self) -> api_partition.Slot:
        return api_partition.Slot(
            rank=self.rank, node=self.node, devices=list(self.devices), domains=dict(self.domains)
        )


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a partition goes."""

    slots: tuple[PlacedSlot, ...]  # in rank order
    tier_span: str  # the lowest tier one of whose domains holds every slot
    node_count: int
    bandwidth_gbps: float  # per device, of the tier span
    block_tiers: tuple[str, ...]  # per block (blocks are consecutive runs of slots), its tier span
    held: tuple[tuple[str, tuple[str, ...]], ...]  # node -> every device held (whole nodes hold all)
    pod_size: int  # devices per slot
    whole_nodes: bool  # the partition holds its nodes entirely

    def api_slots(self) -> list[api_partition.Slot]:
        return [slot.to_api() for slot in self.slots]

    def device_ids(self) -> list[str]:
        """`node/device` of every slot device, in rank order."""
        return [f"{slot.node}/{device}" for slot in self.slots for device in slot.devices]


@dataclasses.dataclass(frozen=True)
class Rejection:
    """Why a request cannot be placed now (or ever, for Unsatisfiable)."""

    reason: api_partition.PendingReason  # InsufficientCapacity, Fragmented or Unsatisfiable
    message: str  # one line: what was asked, what is free, the largest block available


@dataclasses.dataclass(frozen=True)
class Conflict:
    """`restore` refused: the slots name unknown devices or devices another partition holds."""

    partition_id: str
    message: str
    devices: tuple[str, ...]  # node/device names in conflict
    held_by: tuple[str, ...]  # partitions holding them (empty for unknown devices)
