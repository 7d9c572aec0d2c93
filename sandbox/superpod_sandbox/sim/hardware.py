"""What the simulator needs to know about a hardware profile: the node shape and the device plugin's facts.

The node shape (devices per node, resource name, device names, how many nodes make a rack and a SuperPoD) comes
from the hardware profiles in `superpod.topology`, so it is defined once. What only the simulator needs is kept
here: the values the Ascend device plugin (or, for GB200, NVIDIA's GPU feature discovery) publishes for each
family of hardware: the `accelerator` and `accelerator-type` labels, which ConfigMap keys it writes, the pod
annotation its Allocate writes, and the NPU-Exporter `model_name`.

Sources: MindCluster `component/ascend-device-plugin` (`manager.go` labels and annotations, `client_server.go`
ConfigMap keys), `component/ascend-for-volcano/common/util` (accelerator-type values); docs/design.md sections 4 and 5
sum them up.
"""

from __future__ import annotations

import dataclasses
import enum

from superpod.topology import profiles


class Family(enum.StrEnum):
    """A device-plugin product family; it decides labels, ConfigMap keys and annotations."""

    ASCEND_910A = "910A"
    ASCEND_910B = "910B"
    A3 = "A3"  # Atlas 900 A3 SuperPoD (CloudMatrix 384), 910C dies
    A5 = "A5"  # Atlas 950/960 SuperPoD
    GPU = "GPU"  # NVIDIA GB200 NVL72: no Ascend device plugin


@dataclasses.dataclass(frozen=True)
class PluginFacts:
    """What the device plugin of one family publishes, beyond the node shape."""

    accelerator: str  # node label `accelerator`
    accelerator_type: str  # node label `accelerator-type`
    model_name: str  # NPU-Exporter label model_name
    publishes_deviceinfo: bool  # writes kube-system/mindx-dl-deviceinfo-<node>
    publishes_switchinfo: bool  # adds the SwitchInfoCfg key (A3 and A5 only)
    has_superpod: bool  # the driver reports SuperPodID/ServerIndex (else -2: unsupported)
    configuration_annotation: str  # pod annotation written after Allocate ("" for none)


_910_CONFIGURATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"
_NPU_CONFIGURATION = "ascend.kubectl.kubernetes.io/ascend-npu-configuration"

FACTS: dict[Family, PluginFacts] = {
    Family.ASCEND_910A: PluginFacts(
        "huawei-Ascend910", "module", "Ascend910A", True, False, False, _910_CONFIGURATION
    ),
    Family.ASCEND_910B: PluginFacts(
        "huawei-Ascend910", "module-910b-8", "Ascend910B3", True, False, False, _910_CONFIGURATION
    ),
    Family.A3: PluginFacts(
        "huawei-Ascend910", "module-a3-16-super-pod", "Ascend910", True, True, True, _910_CONFIGURATION
    ),
    # accelerator-type: ascend-for-volcano's SuperPodx8 value; the 960 has no published value of its own.
    Family.A5: PluginFacts(
        "huawei-npu", "950-SuperPod-Atlas-8", "Ascend950", True, True, True, _NPU_CONFIGURATION
    ),
    Family.GPU: PluginFacts("nvidia", "", "NVIDIA-GB200", False, False, False, ""),
}

FAMILY_OF_PROFILE: dict[str, Family] = {
    "cloudmatrix-384": Family.A3,
    "atlas-950": Family.A5,
    "atlas-960": Family.A5,
    "atlas-950-supercluster": Family.A5,
    "ascend-910a": Family.ASCEND_910A,
    "ascend-910b": Family.ASCEND_910B,
    "nvidia-gb200-nvl72": Family.GPU,
}
"""Which device-plugin family each built-in profile's hardware belongs to."""


@dataclasses.dataclass(frozen=True)
class Hardware:
    """A profile as the simulator sees it."""

    profile: profiles.HardwareProfile
    family: Family
    facts: PluginFacts

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def resource(self) -> str:
        return self.profile.resource_name

    @property
    def devices_per_node(self) -> int:
        return self.profile.devices_per_node

    @property
    def module_size(self) -> int:
        return self.profile.rule.module_size

    @property
    def nodes_per_superpod(self) -> int:
        """Nodes in one SuperPoD (0 when the hardware has none)."""
        return self._nodes_in("superpod")

    @property
    def nodes_per_rack(self) -> int:
        """Nodes in one rack: the rack tier, else the profile's display racks (0 when neither)."""
        return self._nodes_in("rack") or self.profile.display_rack_nodes

    @property
    def default_nodes(self) -> int:
        """One SuperPoD, else one rack (one NVLink domain), else the profile's default inventory."""
        return self.nodes_per_superpod or self._nodes_in("rack") or self.profile.default_nodes

    def device_names(self) -> tuple[str, ...]:
        return self.profile.device_names()

    def _nodes_in(self, tier_name: str) -> int:
        for tier in self.profile.tiers:
            if tier.name == tier_name:
                return max(1, tier.domain_size // self.devices_per_node)
        return 0


def names() -> tuple[str, ...]:
    """The profiles the simulator can build."""
    return tuple(name for name in profiles.BUILTIN if name in FAMILY_OF_PROFILE)


def describe(profile_name: str) -> Hardware:
    """The simulator's view of a built-in profile; raises KeyError naming the known ones."""
    if profile_name not in FAMILY_OF_PROFILE or profile_name not in profiles.BUILTIN:
        raise KeyError(f"unknown profile {profile_name!r}; known: {', '.join(names())}")
    family = FAMILY_OF_PROFILE[profile_name]
    return Hardware(profiles.BUILTIN[profile_name], family, FACTS[family])
