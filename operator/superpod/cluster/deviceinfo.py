"""Reading the Ascend device plugin's per-node ConfigMap, `kube-system/mindx-dl-deviceinfo-<node>`.

The device plugin (MindCluster) publishes, under the key `DeviceInfoCfg`, a JSON document:

    {"DeviceInfo": {"DeviceList": {"huawei.com/Ascend910": "Ascend910-0,...",
                                   "huawei.com/Ascend910-Unhealthy": "...",
                                   "huawei.com/Ascend910-NetworkUnhealthy": "...",
                                   "huawei.com/Ascend910-Recovering": "...",
                                   "huawei.com/Ascend910-Fault": "[{...}]"},
                    "UpdateTime": 0},
     "SuperPodID": 0, "ServerIndex": 0, "RackID": 0, "CheckCode": "..."}

and, under `SwitchInfoCfg`, UB switch faults. This module turns that into a typed `DeviceInfo` or raises
`DeviceInfoError` with one line that names the ConfigMap and what is wrong; it does no I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from superpod.cluster import codec

NAMESPACE = "kube-system"
NAME_PREFIX = "mindx-dl-deviceinfo-"
CONSUMER_SELECTOR = "mx-consumer-cim=true"
"""The label the Ascend device plugin (and NodeD, `cluster.nodeinfo`) publish their ConfigMaps with: a watch
filtered by it skips the other ConfigMaps of kube-system."""
DATA_KEY = "DeviceInfoCfg"
SWITCH_KEY = "SwitchInfoCfg"
UNKNOWN = -1
"""SuperPodID, ServerIndex or RackID the device plugin could not determine (it writes -1, or -2 for unsupported)."""


class DeviceInfoError(ValueError):
    """The ConfigMap is malformed; the message names it and says what is wrong."""


@dataclasses.dataclass(frozen=True)
class Fault:
    """One entry of the `-Fault` list."""

    device: str  # npu_name, for example Ascend910-14
    fault_type: str  # CardUnhealthy, CardNetworkUnhealthy, ...
    fault_level: str  # NotHandleFault, RestartRequest, SeparateNPU, PreSeparateNPU, ...
    fault_handling: str  # what the cluster is asked to do; drives whether the device leaves the free pool
    fault_code: str


@dataclasses.dataclass(frozen=True)
class SwitchInfo:
    """The node's UB switch state from `SwitchInfoCfg` (A3 and later)."""

    node_status: str  # Healthy, SubHealthy, PreSeparate or UnHealthy
    fault_level: (
        str  # the worst fault's level: NotHandle, SubHealthFault, RestartRequest, PreSeparate, Separate
    )
    fault_codes: tuple[str, ...]  # AssembledFaultCode of each fault, for example [0x00f103b0,155904,na,na]

    @property
    def out_of_service(self) -> bool:
        """The UB plane of this node cannot be used: MindCluster separates the node (UnHealthy)."""
        return self.node_status == "UnHealthy"


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What one node's device plugin reports."""

    node: str
    resource: str  # e.g. huawei.com/Ascend910
    healthy: tuple[str, ...]  # in the device plugin's order
    unhealthy: frozenset[str]
    network_unhealthy: frozenset[str]
    recovering: frozenset[str]
    faults: tuple[Fault, ...]
    super_pod_id: int  # -1/-2: unknown/unsupported
    server_index: int
    rack_id: int
    update_time: int
    switch: SwitchInfo | None = None  # None: the plugin publishes no SwitchInfoCfg (before A3)

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the plugin knows on the node, healthy or not, sorted by device index."""
        names = set(self.healthy) | self.unhealthy | self.network_unhealthy | self.recovering
        return tuple(sorted(names, key=device_index))


VOLATILE = frozenset({"UpdateTime", "CheckCode"})
"""Keys of the plugin's documents that move at every refresh (the time of the write, a checksum that covers
it), at their top level or one below (`DeviceInfo.UpdateTime`): `compact` drops them, so a refresh that changes
nothing else leaves the kept copy as it was."""


def compact(configmap: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a device-info ConfigMap the operator reads (`parse`): its name, namespace and
    resourceVersion, and the `DeviceInfoCfg` and `SwitchInfoCfg` documents without their `VOLATILE` keys (the
    mirror keeps this, not the ConfigMap: managedFields, labels and the plugin's other keys were three quarters
    of it). A document that is not JSON is kept as published, for `parse` to report."""
    metadata = configmap.get("metadata") or {}
    data = configmap.get("data") or {}
    return {
        "metadata": {
            key: metadata[key] for key in ("name", "namespace", "resourceVersion") if key in metadata
        },
        "data": {key: _steady(data[key]) for key in (DATA_KEY, SWITCH_KEY) if key in data},
    }


def _steady(raw: Any) -> Any:
    """A published document without its `VOLATILE` keys, keys sorted."""
    if not isinstance(raw, str):
        return raw
    try:
        document = codec.loads(raw)
    except ValueError:
        return raw
    if isinstance(document, dict):
        document = {key: _without_volatile(value) for key, value in document.items() if key not in VOLATILE}
    return codec.dumps(document, sort_keys=True).decode()


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict) and not VOLATILE.isdisjoint(value):
        return {key: item for key, item in value.items() if key not in VOLATILE}
    return value


def configmap_name(node: str) -> str:
    return f"{NAME_PREFIX}{node}"


def node_of(configmap_name: str) -> str | None:
    """The node a device-info ConfigMap describes, or None if the name is not one."""
    return configmap_name[len(NAME_PREFIX) :] if configmap_name.startswith(NAME_PREFIX) else None


def device_index(name: str) -> int:
    """`Ascend910-12` -> 12; names without a numeric suffix sort last."""
    _, _, suffix = name.rpartition("-")
    return int(suffix) if suffix.isdigit() else 1 << 30


def _names(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise DeviceInfoError(f"{where}: expected a comma-separated string of device names, got {value!r}")
    return [name.strip() for name in value.split(",") if name.strip()]


def _int(document: Mapping[str, Any], key: str, where: str) -> int:
    value = document.get(key, UNKNOWN)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise DeviceInfoError(f"{where}: {key} must be an integer, got {value!r}")
    return value


def _faults(value: Any, where: str) -> tuple[Fault, ...]:
    if value is None or value == "":
        return ()
    try:
        entries = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise DeviceInfoError(f"{where}: the -Fault list is not JSON ({exc.msg})") from exc
    if not isinstance(entries, list):
        raise DeviceInfoError(f"{where}: the -Fault list must be a JSON array")
    faults = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("npu_name"), str):
            raise DeviceInfoError(f"{where}: a -Fault entry has no npu_name: {entry!r}")
        faults.append(
            Fault(
                device=entry["npu_name"],
                fault_type=str(entry.get("fault_type", "")),
                fault_level=str(entry.get("fault_level", "")),
                fault_handling=str(entry.get("fault_handling", entry.get("fault_level", ""))),
                fault_code=str(entry.get("fault_code", "")),
            )
        )
    return tuple(faults)


def _switch(raw: str | None, where: str) -> SwitchInfo | None:
    if not raw:
        return None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeviceInfoError(f"{where}: {SWITCH_KEY} is not JSON ({exc.msg})") from exc
    if not isinstance(document, dict):
        raise DeviceInfoError(f"{where}: {SWITCH_KEY} must be a JSON object")
    codes = []
    for entry in document.get("FaultCode") or []:
        try:
            fault = json.loads(entry) if isinstance(entry, str) else entry
        except json.JSONDecodeError:
            fault = {}
        codes.append(str(fault.get("AssembledFaultCode", entry)) if isinstance(fault, dict) else str(entry))
    return SwitchInfo(
        node_status=str(document.get("NodeStatus") or "Healthy"),
        fault_level=str(document.get("FaultLevel") or ""),
        fault_codes=tuple(codes),
    )


def parse(configmap: Mapping[str, Any], resource: str) -> DeviceInfo:
    """Read a `mindx-dl-deviceinfo-<node>` ConfigMap for the extended resource `resource`."""
    metadata = configmap.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    where = f"ConfigMap {metadata.get('namespace', NAMESPACE)}/{name}"
    node = node_of(name)
    if node is None:
        raise DeviceInfoError(f"{where}: the name does not start with {NAME_PREFIX}")
    raw = (configmap.get("data") or {}).get(DATA_KEY)
    if raw is None:
        raise DeviceInfoError(f"{where}: key {DATA_KEY} is missing")
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DeviceInfoError(f"{where}: {DATA_KEY} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("DeviceInfo"), dict):
        raise DeviceInfoError(f"{where}: {DATA_KEY} has no DeviceInfo object")
    device_list = document["DeviceInfo"].get("DeviceList")
    if not isinstance(device_list, dict):
        raise DeviceInfoError(f"{where}: DeviceInfo has no DeviceList object")
    if resource not in device_list:
        raise DeviceInfoError(f"{where}: DeviceList has no {resource} entry")
    healthy = _names(device_list.get(resource), where)
    update_time = document["DeviceInfo"].get("UpdateTime", 0)
    return DeviceInfo(
        node=node,
        resource=resource,
        healthy=tuple(healthy),
        unhealthy=frozenset(_names(device_list.get(f"{resource}-Unhealthy"), where)),
        network_unhealthy=frozenset(_names(device_list.get(f"{resource}-NetworkUnhealthy"), where)),
        recovering=frozenset(_names(device_list.get(f"{resource}-Recovering"), where)),
        faults=_faults(device_list.get(f"{resource}-Fault"), where),
        super_pod_id=_int(document, "SuperPodID", where),
        server_index=_int(document, "ServerIndex", where),
        rack_id=_int(document, "RackID", where),
        update_time=update_time if isinstance(update_time, int) else 0,
        switch=_switch((configmap.get("data") or {}).get(SWITCH_KEY), where),
    )
