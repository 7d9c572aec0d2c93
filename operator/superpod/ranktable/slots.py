"""What the operator knows about each rank slot of a partition: the input of every rank table builder.

A slot is one pod's share of a placement: its node, its devices in rank order, and its first rank. Before the
pod is scheduled and allocated, that is all; after Allocate, the device plugin's configuration annotation
(parsed by `configuration`) adds the addresses HCCL needs, and the pod's IP adds `container_ip`.

`ranked_devices` checks the slots and pairs every device the operator pinned with the device plugin's entry for
it, in the slot's order, so that rank ids follow the placement (contiguous along the topology) and not the
order in which the device plugin happened to list devices. Inconsistent input is a `SlotError` (a
`ValueError`): overlapping or gapped ranks, unparseable device names, or an annotation whose devices are not
the ones the slot pinned (the pod was not bound as placed; writing a table would give HCCL wrong addresses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from superpod.ranktable import configuration, tables


class SlotError(ValueError):
    """The slots cannot form a rank table; the message names the slot and what is inconsistent."""


@dataclasses.dataclass(frozen=True)
class RankSlot:
    """One pod's share of a partition, as far as the operator knows it."""

    rank: int  # global rank of the slot's first device; the slot's devices take rank .. rank + len - 1
    node_name: str
    device_names: tuple[str, ...]  # device-plugin names in rank order, e.g. ("Ascend910-0", "Ascend910-1")
    configuration: configuration.AscendPodConfiguration | None = None  # once the device plugin allocated
    pod_ip: str | None = None  # the pod's IP (rank table `container_ip`), once it has one
    hardware_type: str | None = None  # product model for `hardware_type`, e.g. "800I-A3-64G", if known

    @property
    def allocated(self) -> bool:
        """True once the pod carries the device plugin's configuration annotation."""
        return self.configuration is not None


@dataclasses.dataclass(frozen=True)
class RankedDevice:
    """One device of an allocated slot with its global rank."""

    rank_id: int
    device: configuration.AscendDevice


def device_index(device_name: str) -> str:
    """The device id in a device-plugin name ("Ascend910-7" -> "7"), as the annotation's `device_id` spells it."""
    _, _, index = device_name.rpartition("-")
    if not index.isdecimal():
        raise SlotError(f"device name {device_name!r} does not end in -<id>")
    return str(int(index))


def ordered(slots: Sequence[RankSlot]) -> list[RankSlot]:
    """The slots by first rank, checked to cover ranks 0 .. N-1 exactly once and to share no device."""
    by_rank = sorted(slots, key=lambda slot: slot.rank)
    next_rank = 0
    pinned: set[tuple[str, str]] = set()
    for slot in by_rank:
        if not slot.device_names:
            raise SlotError(f"slot at rank {slot.rank} on node {slot.node_name} has no devices")
        if slot.rank < next_rank:
            raise SlotError(
                f"slot at rank {slot.rank} on node {slot.node_name} overlaps ranks up to {next_rank - 1}"
            )
        if slot.rank > next_rank:
            raise SlotError(
                f"no slot holds ranks {next_rank}..{slot.rank - 1} (next slot: rank {slot.rank} on node "
                f"{slot.node_name})"
            )
        for name in slot.device_names:
            device = (slot.node_name, device_index(name))
            if device in pinned:
                raise SlotError(f"device {name} on node {slot.node_name} is in more than one slot")
            pinned.add(device)
        next_rank = slot.rank + len(slot.device_names)
    return by_rank


def table_status(slots: Sequence[RankSlot]) -> tables.Status:
    """`completed` once every slot's pod carries the configuration annotation, else `initializing`.

    A partition without slots has no rank to describe and stays `initializing`.
    """
    if slots and all(slot.allocated for slot in slots):
        return tables.Status.COMPLETED
    return tables.Status.INITIALIZING


def ranked_devices(slot: RankSlot) -> list[RankedDevice]:
    """The allocated slot's devices in the slot's order, each with its rank id (slot.rank + index)."""
    config = slot.configuration
    if config is None:
        raise SlotError(f"slot at rank {slot.rank} on node {slot.node_name} is not allocated yet")
    reported = {_canonical(device.device_id): device for device in config.devices}
    wanted = [device_index(name) for name in slot.device_names]
    if len(set(wanted)) != len(wanted):
        raise SlotError(f"slot at rank {slot.rank} on node {slot.node_name} names a device twice")
    if len(reported) != len(config.devices) or set(reported) != set(wanted):
        raise SlotError(
            f"pod {config.pod_name} (slot at rank {slot.rank} on node {slot.node_name}) was allocated devices "
            f"{[device.device_id for device in config.devices]}, the slot pinned {list(slot.device_names)}"
        )
    return [RankedDevice(slot.rank + index, reported[device_id]) for index, device_id in enumerate(wanted)]


def _canonical(device_id: str) -> str:
    """Device ids compare as numbers where they are numbers ("07" is "7")."""
    stripped = device_id.strip()
    return str(int(stripped)) if stripped.isdecimal() else stripped
