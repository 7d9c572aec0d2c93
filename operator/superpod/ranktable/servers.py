"""Builders of the server-list rank tables: v1.0 (910A/910B) and v1.2 (A3 SuperPoD).

As MindCluster's ascend-operator does (pkg/ranktable/common/common.go), each pod becomes one `server_list`
entry carrying the pod's devices, `server_id` and `host_ip` come from the device plugin's annotation,
`container_ip` is the pod IP, and servers are ordered by their first rank. Unlike the ascend-operator, which
numbers ranks `pod index * devices per pod + i` and so needs equal pods, the rank of a device here is its
slot's first rank plus its index in the slot, so ranks follow the placement along the topology.

`super_pod_list` (v1.2) follows the ascend-operator's default ("hard") strategy: logical SuperPoD ids
numbered from 0, all servers in SuperPoD 0 unless the partition asks for blocks, in which case block k
(ranks k*B .. k*B+B-1, B the block size) is logical SuperPoD k, like MindCluster's `sp-block`. The physical
`super_pod_id` of the annotation is not used: a partition never leaves its SuperPoD.

While some slot is not allocated, the table is `initializing` and lists only the allocated slots (see the
package docstring for why).
"""

from __future__ import annotations

from collections.abc import Sequence

from superpod.ranktable import configuration, tables
from superpod.ranktable import slots as slots_


def build_v1_0(slots: Sequence[slots_.RankSlot]) -> tables.ServerRankTable:
    """The v1.0 table (Atlas 800T A2, 910A, 910B) of a partition's slots."""
    ordered = slots_.ordered(slots)
    return tables.ServerRankTable(
        status=slots_.table_status(ordered),
        version=tables.Version.V1_0,
        servers=tuple(_server(slot, config, super_device_ids=False) for slot, config in _allocated(ordered)),
    )


def build_v1_2(slots: Sequence[slots_.RankSlot], *, block_size: int | None = None) -> tables.ServerRankTable:
    """The v1.2 table (Atlas A3 SuperPoD) of a partition's slots; `block_size` is the partition's blockSize."""
    if block_size is not None and block_size < 1:
        raise slots_.SlotError(f"block size must be positive, got {block_size}")
    ordered = slots_.ordered(slots)
    allocated = _allocated(ordered)
    groups: dict[int, list[str]] = {}
    for slot, config in allocated:
        # a slot belongs to the block of its first rank (slots never straddle blocks in a valid placement)
        logical_id = 0 if block_size is None else slot.rank // block_size
        groups.setdefault(logical_id, []).append(config.server_id)
    return tables.ServerRankTable(
        status=slots_.table_status(ordered),
        version=tables.Version.V1_2,
        servers=tuple(_server(slot, config, super_device_ids=True) for slot, config in allocated),
        super_pods=tuple(
            tables.SuperPodEntry(super_pod_id=logical_id, server_ids=tuple(server_ids))
            for logical_id, server_ids in sorted(groups.items())
        ),
    )


def _allocated(
    ordered: Sequence[slots_.RankSlot],
) -> list[tuple[slots_.RankSlot, configuration.AscendPodConfiguration]]:
    return [(slot, slot.configuration) for slot in ordered if slot.configuration is not None]


def _server(
    slot: slots_.RankSlot, config: configuration.AscendPodConfiguration, *, super_device_ids: bool
) -> tables.ServerEntry:
    devices = []
    for ranked in slots_.ranked_devices(slot):
        super_device_id = None
        if super_device_ids:
            super_device_id = ranked.device.super_device_id
            if super_device_id is None:
                raise slots_.SlotError(
                    f"pod {config.pod_name} (slot at rank {slot.rank} on node {slot.node_name}): device "
                    f"{ranked.device.device_id} has no super_device_id, which a v1.2 rank table needs"
                )
        devices.append(
            tables.DeviceEntry(
                device_id=ranked.device.device_id,
                device_ip=ranked.device.device_ip,
                rank_id=ranked.rank_id,
                super_device_id=super_device_id,
            )
        )
    return tables.ServerEntry(
        server_id=config.server_id,
        host_ip=config.host_ip,
        devices=tuple(devices),
        container_ip=slot.pod_ip,
        hardware_type=slot.hardware_type,
    )
