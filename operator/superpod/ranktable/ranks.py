"""Builder of the rank-list rank table: v2.0 (Atlas 950 / 960 and their SuperClusters).

Follows MindCluster's ascend-operator (pkg/ranktable/v2dot0/ranktable.go): one `rank_list` entry per device,
`local_id` and `device_id` both the device's physical id, and `level_list` assembled from the `levelList` the
device plugin put in the annotation:

- levels 0 and 1 (UB inside the SuperPoD and between racks): the device's element of that level, when it has
  one (the first listed if several; the Go code takes an arbitrary map entry);
- levels 2 and 3 (scale-out): one port type is chosen for the whole table, the first of ROCE, UBOE, UBG that
  any device of the table reports at any level; level 2 is written for UBOE/UBG, level 3 for ROCE, each with
  the device's element of that type or, when the device lacks one, an empty CLOS element of `CLUSTER1`.

A device without `levelList` (a device plugin too old to write one) gets no levels; the ascend-operator then
leaves `level_list` out of the rank, and so does `render`. The ascend-operator's job label that forces a
scale-out type (`scaleout-type`) has no equivalent here yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from superpod.ranktable import configuration, levels, tables
from superpod.ranktable import slots as slots_

SCALE_OUT_PRIORITY = ("ROCE", "UBOE", "UBG")
"""Port types in the order the ascend-operator prefers them for levels 2 and 3."""
DEFAULT_NET_INSTANCE_ID = "CLUSTER1"
"""net_instance_id of the placeholder element written for a scale-out level a device does not report."""


def build_v2_0(slots: Sequence[slots_.RankSlot]) -> tables.RankListTable:
    """The v2.0 table (Atlas 950 family) of a partition's slots."""
    ordered = slots_.ordered(slots)
    devices = [
        ranked for slot in ordered if slot.configuration is not None for ranked in slots_.ranked_devices(slot)
    ]
    port_type = _scale_out_port_type([ranked.device for ranked in devices])
    ranks = tuple(_rank(ranked, port_type) for ranked in devices)
    return tables.RankListTable(status=slots_.table_status(ordered), ranks=ranks)


def _scale_out_port_type(devices: Sequence[configuration.AscendDevice]) -> str | None:
    reported = {net_type for device in devices for level in device.level_list for net_type, _ in level.info}
    return next((port_type for port_type in SCALE_OUT_PRIORITY if port_type in reported), None)


def _rank(ranked: slots_.RankedDevice, port_type: str | None) -> tables.RankEntry:
    device = ranked.device
    physical_id = int(device.device_id)  # a number: ranked_devices matched it to a device name's -<id>
    level_list: list[levels.LevelElement] = []
    for level in (0, 1):
        reported = _level(device, level)
        if reported is not None and reported.info:
            level_list.append(reported.info[0][1])
    for level, wanted in ((2, port_type in ("UBOE", "UBG")), (3, port_type == "ROCE")):
        if not wanted or port_type is None:
            continue
        reported = _level(device, level)
        element = reported.element(port_type) if reported is not None else None
        level_list.append(element or _placeholder(level))
    return tables.RankEntry(
        rank_id=ranked.rank_id, local_id=physical_id, device_id=physical_id, level_list=tuple(level_list)
    )


def _level(device: configuration.AscendDevice, level: int) -> levels.DeviceLevel | None:
    return next((entry for entry in device.level_list if entry.level == level), None)


def _placeholder(level: int) -> levels.LevelElement:
    return levels.LevelElement(
        net_layer=level,
        net_instance_id=DEFAULT_NET_INSTANCE_ID,
        net_type="CLOS",
        net_attr="",
        rank_addr_list=(),
    )
