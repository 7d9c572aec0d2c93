"""Node objects as the kubelet and the Ascend device plugin leave them on a real server: pure builders.

Labels (device plugin `manager.go` and the cluster installer): `accelerator`, `accelerator-type`,
`huawei.com/topotree.superpodid|rackid|serverid` (on SuperPoD hardware; the real A3 plugin sets only the
superpodid one, the A5 plugin all three: the simulator sets all three on both, see docs/simulator.md),
`kubernetes.io/hostname|os|arch`; for GB200 GPU feature discovery's `nvidia.com/gpu.clique`, `.product`, `.count` and
`nvidia.com/gpu.present`. Annotations: `superPodID`, `serverIndex` (-2 where unsupported) and
`baseDeviceInfos` (device IPs and super device ids, as the device plugin publishes them).
Status: capacity/allocatable of the profile's resource, addresses, nodeInfo and the four kubelet conditions.
"""

from __future__ import annotations

from typing import Any

from superpod_sandbox import codec
from superpod_sandbox.sim import hardware, layout

JSON = dict[str, Any]

FLEET_LABEL = "superpod.dev/simulated-fleet"
"""Marks every object the simulator creates with its fleet (for `superpod sim down` and the watches)."""
SUPERPOD_LABEL = "huawei.com/topotree.superpodid"
RACK_LABEL = "huawei.com/topotree.rackid"
SERVER_LABEL = "huawei.com/topotree.serverid"
CLIQUE_LABEL = "nvidia.com/gpu.clique"
KUBELET_VERSION = "v1.35.2"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
SIM_CLUSTER_UUID = "5f3c0e2a-0000-4000-8000-000000000000"
"""The NVLink fabric cluster UUID GB200 clique labels carry (made up, fixed)."""


def node_labels(fleet: layout.Layout, node: layout.SimNode) -> dict[str, str]:
    facts = fleet.hardware.facts
    result = {
        FLEET_LABEL: fleet.fleet,
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64" if fleet.hardware.family is hardware.Family.GPU else "arm64",
        "node.kubernetes.io/instance-type": fleet.hardware.name,
    }
    if fleet.hardware.family is hardware.Family.GPU:
        result["nvidia.com/gpu.present"] = "true"
        result["nvidia.com/gpu.product"] = facts.model_name
        result["nvidia.com/gpu.count"] = str(len(node.devices))
        result[CLIQUE_LABEL] = f"{SIM_CLUSTER_UUID}.{max(node.rack_id, 0) + fleet.superpod_id * 1000}"
        return result
    result["accelerator"] = facts.accelerator
    result["accelerator-type"] = facts.accelerator_type
    if facts.has_superpod:
        result[SUPERPOD_LABEL] = str(fleet.superpod_id)
        result[SERVER_LABEL] = str(node.index)
        if node.rack_id != layout.NO_RACK:
            result[RACK_LABEL] = str(node.rack_id)
    return result


def base_device_infos(fleet: layout.Layout, node: layout.SimNode) -> str:
    """The `baseDeviceInfos` annotation: `{device: {"IP": ..., "SuperDeviceID": ...}}` in device order."""
    infos = {
        name: {
            "IP": node.device_ip(index),
            "SuperDeviceID": node.super_device_id(index) if fleet.hardware.facts.has_superpod else 0,
        }
        for index, name in enumerate(node.devices)
    }
    return codec.text(infos)


def node_annotations(fleet: layout.Layout, node: layout.SimNode) -> dict[str, str]:
    if fleet.hardware.family is hardware.Family.GPU:
        return {}
    result = {
        "superPodID": str(fleet.reported_superpod_id),
        "serverIndex": str(fleet.reported_server_index(node)),
        "baseDeviceInfos": base_device_infos(fleet, node),
    }
    if fleet.hardware.family is hardware.Family.A5 and node.rack_id != layout.NO_RACK:
        result["rackID"] = str(node.rack_id)  # the A5 plugin's annotation on 1D/2D SuperPoDs
    return result


def ready_conditions(now: str, *, ready: bool = True) -> list[JSON]:
    """The kubelet's conditions; `ready=False` is what the node controller writes for a silent kubelet."""
    if ready:
        ready_condition = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
        pressure = [
            {"type": kind, "status": "False", "reason": f"KubeletHas{reason}", "message": message}
            for kind, reason, message in (
                ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
            )
        ]
    else:
        ready_condition = {
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
        }
        pressure = [
            {
                "type": kind,
                "status": "Unknown",
                "reason": "NodeStatusUnknown",
                "message": "Kubelet stopped posting node status.",
            }
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
    return [
        {**condition, "lastHeartbeatTime": now, "lastTransitionTime": now}
        for condition in (*pressure, ready_condition)
    ]


def status(fleet: layout.Layout, node: layout.SimNode, now: str) -> JSON:
    resources = {
        fleet.hardware.resource: str(len(node.devices)),
        "cpu": "192",
        "memory": "1572864Mi",
        "pods": str(layout.MAX_POD_SLOTS),  # what the node's pod range holds (layout.pod_cidr)
        "ephemeral-storage": "3840Gi",
    }
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "addresses": [
            {"type": "InternalIP", "address": node.host_ip},
            {"type": "Hostname", "address": node.name},
        ],
        "conditions": ready_conditions(now),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "architecture": "amd64" if fleet.hardware.family is hardware.Family.GPU else "arm64",
            "operatingSystem": "linux",
            "osImage": "superpod simulated node",
            "kernelVersion": "5.10.0-sim",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "containerRuntimeVersion": "sim://0.1.0",
            "machineID": f"sim-{fleet.fleet}-{node.index}",
            "systemUUID": f"sim-{fleet.fleet}-{node.index}",
            "bootID": f"sim-{fleet.fleet}-{node.index}",
        },
    }


def node_object(fleet: layout.Layout, node: layout.SimNode, now: str, taints: tuple[JSON, ...] = ()) -> JSON:
    """The whole Node as the kubelet registers it (status included, as kubelet does on create).

    `taints`: the kubelet's `--register-with-taints`, on the Node from its first write.
    """
    spec: JSON = {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]}
    if taints:
        spec["taints"] = [dict(taint) for taint in taints]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": node_labels(fleet, node),
            "annotations": node_annotations(fleet, node),
        },
        "spec": spec,
        "status": status(fleet, node, now),
    }


def unreachable_taints(now: str) -> list[JSON]:
    """The taints the node lifecycle controller puts on a node whose kubelet went silent."""
    return [
        {"key": UNREACHABLE_TAINT, "effect": "NoSchedule", "timeAdded": now},
        {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": now},
    ]


def is_ready(node: JSON) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def is_down(node: JSON) -> bool:
    """Whether the node was taken down by `superpod sim fault --kind node-down` (Ready Unknown)."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "Unknown")
    return False
