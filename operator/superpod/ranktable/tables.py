"""The rank tables themselves: typed values mirroring the `hccl.json` documents of each version.

v1.0 (Atlas 800T A2 / 910A / 910B) and v1.2 (Atlas A3 SuperPoD) list servers, each with its devices and
their rank ids; v1.2 adds `super_device_id` per device and a `super_pod_list` grouping the servers by
(logical) SuperPoD. v2.0 (Atlas 950 and later) lists ranks directly, each with its network levels. All
numbers of v1.x are written as strings, those of v2.0 as numbers; `render` turns these values into the text.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from superpod.ranktable import levels


class Status(StrEnum):
    """`status` of a rank table: HCCL's launch scripts wait for `completed`."""

    INITIALIZING = "initializing"  # some slot's pod has not been allocated yet
    COMPLETED = "completed"  # every slot's pod carries the device plugin's configuration


class Version(StrEnum):
    """`version` of a rank table, chosen by the hardware generation."""

    V1_0 = "1.0"
    V1_2 = "1.2"
    V2_0 = "2.0"


@dataclasses.dataclass(frozen=True)
class DeviceEntry:
    """`server_list[].device[]`: one device and its rank."""

    device_id: str
    device_ip: str
    rank_id: int
    super_device_id: str | None = None  # v1.2 only


@dataclasses.dataclass(frozen=True)
class ServerEntry:
    """`server_list[]`: one pod's devices on one server (a server appears once per pod placed on it)."""

    server_id: str
    host_ip: str
    devices: tuple[DeviceEntry, ...]
    container_ip: str | None = None  # the pod IP; left out while unknown
    hardware_type: str | None = None  # left out when unknown


@dataclasses.dataclass(frozen=True)
class SuperPodEntry:
    """`super_pod_list[]` (v1.2): the servers of one logical SuperPoD."""

    super_pod_id: int
    server_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ServerRankTable:
    """A v1.0 or v1.2 rank table (`super_pods` is None for v1.0)."""

    status: Status
    version: Version
    servers: tuple[ServerEntry, ...]
    super_pods: tuple[SuperPodEntry, ...] | None = None


@dataclasses.dataclass(frozen=True)
class RankEntry:
    """`rank_list[]` (v2.0): one rank, its device and its network levels."""

    rank_id: int
    local_id: int
    device_id: int
    level_list: tuple[levels.LevelElement, ...]


@dataclasses.dataclass(frozen=True)
class RankListTable:
    """A v2.0 rank table."""

    status: Status
    ranks: tuple[RankEntry, ...]
    version: Version = Version.V2_0


RankTable = ServerRankTable | RankListTable
