"""Network levels of an Atlas 950 (A5) device: the `level_list` entries of a v2.0 rank table.

The A5 device plugin describes, per device, how it is reached at each network level (0: UB inside the
SuperPoD, 1: UB between racks, 2: UBG/UBoE scale-out, 3: RoCE) and puts that description in the pod's
configuration annotation (`devices[].levelList`, each level an object `{level, info: {<net type>: element}}`).
The ascend-operator copies one element per level into the rank table's `level_list`. The element shape is
MindCluster's `api.LevelElement` (component/ascend-common/api/superpoddevice_v2.go); the same type is used here
for what is read and what is written, so an element passes through unchanged.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RankAddress:
    """One address by which a rank is reached at a level (`rank_addr_list[]`)."""

    addr_type: str  # "EID" (UB entity id) or "IP"
    addr: str
    ports: tuple[str, ...]  # NPU ports, "<die>/<port>"
    plane_id: str


@dataclasses.dataclass(frozen=True)
class LevelElement:
    """How one rank is connected at one network level (`level_list[]` of a v2.0 rank)."""

    net_layer: int  # the level, 0 = tightest
    net_instance_id: str  # the network instance (for example the SuperPoD) the rank belongs to at this level
    net_type: str  # "TOPO_FILE_DESC" (read the topology file) or "CLOS"
    net_attr: str
    rank_addr_list: tuple[RankAddress, ...]


@dataclasses.dataclass(frozen=True)
class DeviceLevel:
    """What the device plugin reports for one level of one device: an element per network type."""

    level: int
    # (net type, element) pairs in the annotation's order; net types are "UB", "UBG", "UBOE" and "ROCE"
    info: tuple[tuple[str, LevelElement], ...]

    def element(self, net_type: str) -> LevelElement | None:
        """The element for one network type, if the device has one."""
        for name, element in self.info:
            if name == net_type:
                return element
        return None
