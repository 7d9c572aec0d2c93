"""One node's device-plugin state and the `mindx-dl-deviceinfo-<node>` ConfigMap it publishes: pure.

The ConfigMap follows MindCluster's `WriteDeviceInfoDataIntoCM` (component/ascend-device-plugin/pkg/kubeclient):

- label `mx-consumer-cim: "true"`; keys `DeviceInfoCfg`, `SwitchInfoCfg` (A3 and A5 only), `ManuallySeparateNPU`,
  `UpgradeFaultReason` and `Description`;
- `DeviceInfoCfg` = `{"DeviceInfo": {"DeviceList": {...}, "UpdateTime": <unix s>}, "SuperPodID": n,
  "ServerIndex": n, "CheckCode": sha256(json(DeviceInfo)), "RackID": n}`; in `DeviceList`, the resource key
  lists the *free* healthy devices (healthy minus those pods use, as the Volcano-mode plugin does), then
  `-Unhealthy`, `-NetworkUnhealthy`, `-Recovering` and `-Fault` (a JSON array of `DeviceFault` objects with
  `fault_type, npu_name, large_model_fault_level, fault_level, fault_handling, fault_code,
  fault_time_and_level_map`);
- `SwitchInfoCfg` = `{"FaultCode": [<JSON of SimpleSwitchFaultInfo>...], "FaultLevel": "", "UpdateTime": n,
  "NodeStatus": "Healthy", "FaultTimeAndLevelMap": {"<code>_<chip>_<port>": {fault_time, fault_level}}}`.

The state is read back from the ConfigMap itself (`read`), so a `superpod sim fault` in another process and the
running `superpod sim up` share it through the API server and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from superpod.cluster import deviceinfo

from superpod_sandbox import codec
from superpod_sandbox.sim import layout

JSON = dict[str, Any]

CONSUMER_LABEL = "mx-consumer-cim"
MANUALLY_SEPARATE_KEY = "ManuallySeparateNPU"
UPGRADE_FAULT_REASON_KEY = "UpgradeFaultReason"
DESCRIPTION_KEY = "Description"
FREE_LIST_ANNOTATION = "superpod.dev/simulated-free-list"
"""On ConfigMaps of a fleet run with `free_list_excludes_used` off: `all` (devices pods use stay listed)."""
FREE_LIST_ALL = "all"
DESCRIPTION = (
    "The field[xxx.com/xxx] is sunset. Volcano has the ability to maintain the usage status of chips on its own, "
    "and can temporarily use this field by configuring the Volcano parameter 'self-maintain-available-card'"
)

# switch fault levels (device plugin common/device.go) and the node status each implies
SWITCH_LEVEL_STATUS = {"": "Healthy", "NotHandle": "Healthy", "SubHealthFault": "SubHealthy",
                       "RestartRequest": "UnHealthy", "PreSeparate": "PreSeparate", "Separate": "UnHealthy"}  # fmt: skip
_SWITCH_LEVEL_ORDER = ("", "NotHandle", "SubHealthFault", "RestartRequest", "PreSeparate", "Separate")


@dataclasses.dataclass(frozen=True)
class DeviceFault:
    """One `-Fault` entry: what the device plugin reports about one device's chip or network fault."""

    device: str  # npu_name
    fault_type: str  # CardUnhealthy or CardNetworkUnhealthy
    level: str  # fault_level = fault_handling = large_model_fault_level
    code: str  # upper-case hex, for example 80E18402
    time_ms: int  # when it was raised (fault_time, milliseconds)

    def document(self) -> JSON:
        return {
            "fault_type": self.fault_type,
            "npu_name": self.device,
            "large_model_fault_level": self.level,
            "fault_level": self.level,
            "fault_handling": self.level,
            "fault_code": self.code,
            "fault_time_and_level_map": {self.code: {"fault_time": self.time_ms, "fault_level": self.level}},
        }


@dataclasses.dataclass(frozen=True)
class SwitchFault:
    """One UB (HCCS-L2) switch fault event, as `SimpleSwitchFaultInfo`."""

    code: str  # AssembledFaultCode, for example [0x00f103b0,155904,na,na]
    level: str  # Separate, PreSeparate, RestartRequest, SubHealthFault or NotHandle
    event_type: int
    chip: int  # SwitchChipId
    port: int  # SwitchPortId
    peer_device: int  # PeerPortDevice: 0 CPU, 1 NPU, 2 switch (L2 port)
    peer_port: int
    severity: int  # 0 hint, 1 minor, 2 major, 3 critical
    time_ms: int  # AlarmRaisedTime

    @property
    def key(self) -> str:
        return f"{self.code}_{self.chip}_{self.port}"

    def document(self) -> JSON:
        # field order and names of the device plugin's simpleSwitchFaultInfo (Go field names, no tags)
        return {
            "EventType": self.event_type,
            "AssembledFaultCode": self.code,
            "PeerPortDevice": self.peer_device,
            "PeerPortId": self.peer_port,
            "SwitchChipId": self.chip,
            "SwitchPortId": self.port,
            "Severity": self.severity,
            "Assertion": 1,  # fault occurred
            "AlarmRaisedTime": self.time_ms,
        }


@dataclasses.dataclass(frozen=True)
class PluginState:
    """What one node's device plugin knows about its devices' health."""

    unhealthy: frozenset[str] = frozenset()
    network_unhealthy: frozenset[str] = frozenset()
    recovering: frozenset[str] = frozenset()
    faults: tuple[DeviceFault, ...] = ()
    switch_faults: tuple[SwitchFault, ...] = ()

    def chip_healthy(self, device: str) -> bool:
        """Whether kubelet may hand the device out (the plugin's Health; network faults do not count)."""
        return device not in self.unhealthy and device not in self.recovering


def check_code(device_info: Mapping[str, Any]) -> str:
    """sha256 of the Go JSON of `DeviceInfo` (map keys sorted, no spaces), as `common.MakeDataHash`."""
    return hashlib.sha256(codec.dumps(device_info, sort_keys=True)).hexdigest()


def _names(devices: Iterable[str]) -> str:
    # Go's sets.String.List(): plain string order, so Ascend910-10 comes before Ascend910-2
    return ",".join(sorted(devices))


def device_list(
    resource: str, node: layout.SimNode, state: PluginState, in_use: Iterable[str] = ()
) -> dict[str, str]:
    """The `DeviceList` map: free healthy devices under the resource key, then the fault lists."""
    used = set(in_use)
    free = [name for name in node.devices if state.chip_healthy(name) and name not in used]
    faults = [fault.document() for fault in state.faults]
    return {
        resource: _names(free),
        f"{resource}-Unhealthy": _names(state.unhealthy),
        f"{resource}-NetworkUnhealthy": _names(state.network_unhealthy),
        f"{resource}-Recovering": _names(state.recovering),
        f"{resource}-Fault": codec.text(faults),
    }


def switch_info(state: PluginState, update_time: int) -> JSON:
    level = max((fault.level for fault in state.switch_faults), key=_SWITCH_LEVEL_ORDER.index, default="")
    return {
        "FaultCode": [json.dumps(fault.document(), separators=(",", ":")) for fault in state.switch_faults],
        "FaultLevel": level,
        "UpdateTime": update_time,
        "NodeStatus": SWITCH_LEVEL_STATUS[level],
        "FaultTimeAndLevelMap": {
            fault.key: {"fault_time": fault.time_ms, "fault_level": fault.level}
            for fault in state.switch_faults
        },
    }


def configmap_data(
    fleet: layout.Layout,
    node: layout.SimNode,
    state: PluginState,
    update_time: int,
    in_use: Iterable[str] = (),
) -> dict[str, str]:
    """The ConfigMap's `data`, as the device plugin writes it at `update_time` (unix seconds)."""
    hw = fleet.hardware
    info: JSON = {"DeviceList": device_list(hw.resource, node, state, in_use), "UpdateTime": update_time}
    document: JSON = {
        "DeviceInfo": info,
        "SuperPodID": fleet.reported_superpod_id,
        "ServerIndex": fleet.reported_server_index(node),
        "CheckCode": check_code(info),
    }
    if hw.facts.has_superpod and node.rack_id != layout.NO_RACK:
        document["RackID"] = node.rack_id
    data = {deviceinfo.DATA_KEY: codec.text(document)}
    if hw.facts.publishes_switchinfo:
        data[deviceinfo.SWITCH_KEY] = codec.text(switch_info(state, update_time))
    data[MANUALLY_SEPARATE_KEY] = ""
    data[UPGRADE_FAULT_REASON_KEY] = "{}"
    data[DESCRIPTION_KEY] = DESCRIPTION
    return data


def configmap(
    fleet: layout.Layout,
    node: layout.SimNode,
    state: PluginState,
    update_time: int,
    in_use: Iterable[str] = (),
    *,
    fleet_label: str,
) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": deviceinfo.configmap_name(node.name),
            "namespace": deviceinfo.NAMESPACE,
            "labels": {CONSUMER_LABEL: "true", fleet_label: fleet.fleet},
        },
        "data": configmap_data(fleet, node, state, update_time, in_use),
    }


def _fault(entry: Mapping[str, Any]) -> DeviceFault:
    code = str(entry.get("fault_code", ""))
    level = str(entry.get("fault_handling") or entry.get("fault_level") or "")
    timing = (entry.get("fault_time_and_level_map") or {}).get(code) or {}
    return DeviceFault(
        device=str(entry.get("npu_name", "")),
        fault_type=str(entry.get("fault_type", "")),
        level=level,
        code=code,
        time_ms=int(timing.get("fault_time", 0) or 0),
    )


def _switch_fault(raw: str, levels: Mapping[str, Any]) -> SwitchFault:
    entry = json.loads(raw)
    fault = SwitchFault(
        code=str(entry.get("AssembledFaultCode", "")),
        level="",
        event_type=int(entry.get("EventType", 0)),
        chip=int(entry.get("SwitchChipId", 0)),
        port=int(entry.get("SwitchPortId", 0)),
        peer_device=int(entry.get("PeerPortDevice", 0)),
        peer_port=int(entry.get("PeerPortId", 0)),
        severity=int(entry.get("Severity", 0)),
        time_ms=int(entry.get("AlarmRaisedTime", 0)),
    )
    level = str((levels.get(fault.key) or {}).get("fault_level", ""))
    return dataclasses.replace(fault, level=level)


def read(configmap: Mapping[str, Any], resource: str) -> PluginState:
    """The plugin state a ConfigMap carries (the inverse of `configmap`); raises DeviceInfoError if malformed."""
    info = deviceinfo.parse(configmap, resource)
    document = json.loads((configmap.get("data") or {})[deviceinfo.DATA_KEY])
    raw_faults = document["DeviceInfo"]["DeviceList"].get(f"{resource}-Fault") or "[]"
    faults = tuple(_fault(entry) for entry in json.loads(raw_faults))
    switch_faults: tuple[SwitchFault, ...] = ()
    raw_switch = (configmap.get("data") or {}).get(deviceinfo.SWITCH_KEY)
    if raw_switch:
        switch = json.loads(raw_switch)
        levels = switch.get("FaultTimeAndLevelMap") or {}
        switch_faults = tuple(_switch_fault(raw, levels) for raw in switch.get("FaultCode") or [])
    return PluginState(
        unhealthy=info.unhealthy,
        network_unhealthy=info.network_unhealthy,
        recovering=info.recovering,
        faults=faults,
        switch_faults=switch_faults,
    )


def update_time(configmap: Mapping[str, Any]) -> int:
    """The `UpdateTime` of a device-info ConfigMap (0 when absent)."""
    raw = (configmap.get("data") or {}).get(deviceinfo.DATA_KEY) or "{}"
    return int((json.loads(raw).get("DeviceInfo") or {}).get("UpdateTime", 0) or 0)
