"""What the device plugin and the kubelet write on a pod once it got its devices: pure builders.

Annotations (device plugin `AddPodAnnotation`): `huawei.com/AscendReal` (the devices it really got, sorted),
`huawei.com/kltDev` (the ids kubelet handed out; the same devices here) and the configuration annotation
(`ascend.kubectl.kubernetes.io/ascend-910-configuration`, `ascend-npu-configuration` for `huawei.com/npu`),
the JSON of MindCluster's `Instance`: `{pod_name, server_id, host_ip, super_pod_id, devices: [{device_id,
device_ip, super_device_id}], rack_id, server_index, server_ip}` with ids as strings where the Go struct has
strings. `server_id` is the host IP, as in the reference sample (recent plugin versions write the pod UID);
`super_device_id` is written on SuperPoD hardware only. On Atlas 950/960 (`huawei.com/npu`) each device also
carries `levelList`, the network levels the v2.0 rank table copies (device plugin `getLevelList`, pod scene):
level 0 UB inside the server (`<superpod>_<server>`, TOPO_FILE_DESC), level 1 UB across the SuperPoD
(`<superpod>`, CLOS), level 3 RoCE (`CLUSTER1`, CLOS, the device IP); the EIDs are synthetic:
32 hex digits `0...0 <superpod:4> <server:4> <device:4> <die:2> <port:2>`. The status is the kubelet's for a
started pod.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from superpod_sandbox.sim import hardware, layout

JSON = dict[str, Any]

REAL_ANNOTATION = "huawei.com/AscendReal"
KUBELET_DEVICES_ANNOTATION = "huawei.com/kltDev"
SIMULATED_DEVICES_ANNOTATION = "superpod.dev/simulated-devices"
"""Where the simulator records the GPUs a GB200 pod got: NVIDIA's plugin writes no pod annotation, and the
kubelet's own record (its device-manager checkpoint) lives on the node, not in the API."""


def configuration(fleet: layout.Layout, node: layout.SimNode, pod_name: str, devices: Sequence[str]) -> str:
    """The configuration annotation's value for `pod_name` holding `devices` on `node`."""
    has_superpod = fleet.hardware.facts.has_superpod
    entries = []
    for name in sorted(devices, key=layout.device_index):
        index = node.devices.index(name)
        entry: JSON = {"device_id": str(layout.device_index(name)), "device_ip": node.device_ip(index)}
        if has_superpod:
            entry["super_device_id"] = str(node.super_device_id(index))
        if fleet.hardware.family is hardware.Family.A5:
            entry["levelList"] = level_list(node, index)
        entries.append(entry)
    instance = {
        "pod_name": pod_name,
        "server_id": node.host_ip,
        "host_ip": node.host_ip,
        "super_pod_id": fleet.reported_superpod_id,
        "devices": entries,
        "rack_id": node.rack_id if has_superpod else layout.NO_RACK,
        "server_index": str(fleet.reported_server_index(node)),
        "server_ip": node.host_ip,
    }
    return json.dumps(instance, separators=(",", ":"))


def _eid(node: layout.SimNode, device_index: int, die: int, port: int) -> str:
    return f"{0:016x}{node.superpod_id:04x}{node.index:04x}{device_index:04x}{die:02x}{port:02x}"


def level_list(node: layout.SimNode, device_index: int) -> list[JSON]:
    """The A5 device plugin's `levelList` for one device (pod scene: levels 0, 1 and 3)."""
    die = 0 if device_index % len(node.devices) < len(node.devices) // 2 else 1

    def level(number: int, net_type: str, instance: str, kind: str, addresses: list[JSON]) -> JSON:
        element = {
            "net_layer": number,
            "net_instance_id": instance,
            "net_type": kind,
            "net_attr": "",
            "rank_addr_list": addresses,
        }
        return {"level": number, "info": {net_type: element}}

    return [
        level(
            0,
            "UB",
            f"{node.superpod_id}_{node.index}",
            "TOPO_FILE_DESC",
            [
                {
                    "addr_type": "EID",
                    "addr": _eid(node, device_index, die, 1),
                    "ports": [f"{die}/1"],
                    "plane_id": str(die),
                }
            ],
        ),
        level(
            1,
            "UB",
            str(node.superpod_id),
            "CLOS",
            [
                {
                    "addr_type": "EID",
                    "addr": _eid(node, device_index, die, 4),
                    "ports": [f"{die}/4", f"{die}/5"],
                    "plane_id": "0",
                }
            ],
        ),
        level(
            3,
            "ROCE",
            "CLUSTER1",
            "CLOS",
            [
                {
                    "addr_type": "IPV4",
                    "addr": node.device_ip(device_index),
                    "ports": ["d2h"],
                    "plane_id": "CLUSTER",
                }
            ],
        ),
    ]


def allocation_annotations(
    fleet: layout.Layout, node: layout.SimNode, pod_name: str, devices: Sequence[str]
) -> dict[str, str]:
    """The annotations the device plugin writes after Allocate (none for pods without devices)."""
    if not devices:
        return {}
    ordered = ",".join(sorted(devices))  # Go sort.Strings
    if not fleet.hardware.facts.configuration_annotation:
        return {SIMULATED_DEVICES_ANNOTATION: ordered}
    return {
        KUBELET_DEVICES_ANNOTATION: ordered,
        REAL_ANNOTATION: ordered,
        fleet.hardware.facts.configuration_annotation: configuration(fleet, node, pod_name, devices),
    }


def running_status(pod: Mapping[str, Any], host_ip: str, pod_ip: str, now: str) -> JSON:
    """The kubelet's status for a pod whose containers all started at `now`."""
    containers = (pod.get("spec") or {}).get("containers") or []
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "qosClass": "BestEffort",
        "containerStatuses": [
            {
                "name": container.get("name", f"c{index}"),
                "image": container.get("image", ""),
                "imageID": "",
                "containerID": f"sim://{(pod.get('metadata') or {}).get('uid', '')}-{index}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
                "lastState": {},
            }
            for index, container in enumerate(containers)
        ],
    }


def used_devices(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The devices a pod holds: its `huawei.com/AscendReal` annotation (GB200: the simulator's own record)."""
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(REAL_ANNOTATION) or annotations.get(SIMULATED_DEVICES_ANNOTATION, "")
    return tuple(name for name in value.split(",") if name)
