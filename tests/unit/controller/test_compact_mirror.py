"""The mirror keeps only what the operator reads of Nodes and ConfigMaps: every reader sees what it saw before.

Each case builds a SuperPod's model from whole objects (as the API serves them: managedFields, heartbeat
times, images, annotations the operator never reads) and from what the mirror keeps of them, and compares what
the allocator is given, what is reported, and what admission and the isolation taint read.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from superpod.cluster import deviceinfo, inventory, nodeinfo, podplacement
from superpod.controller import clustermirror, nodetaints, superpodmodel

from tests.builders import objects
from tests.conftest import ROOT
from tests.unit.controller import fakeapi

JSON = dict[str, Any]
SPEC = {"profile": "cloudmatrix-384", "reserveNodes": 0, "superPodID": 0}
NOISE_TIME = "2026-12-07T03:05:03Z"


def as_served(obj: JSON) -> JSON:
    """`obj` with what an API server and a kubelet add: managedFields, uid, heartbeat times, images, more."""
    served = copy.deepcopy(obj)
    metadata = served.setdefault("metadata", {})
    metadata.setdefault("resourceVersion", "41")
    metadata["uid"] = "0b1c"
    metadata["creationTimestamp"] = NOISE_TIME
    metadata["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:images": {}}}}]
    if served.get("kind") == "Node":
        metadata.setdefault("annotations", {})["node.alpha.kubernetes.io/ttl"] = "0"
        metadata["annotations"]["baseDeviceInfos"] = json.dumps({"Ascend910-0": {"IP": "10.0.0.1"}})
        status = served.setdefault("status", {})
        status["images"] = [{"names": [f"registry/image-{i}:v1"], "sizeBytes": 1 << 30} for i in range(20)]
        status["nodeInfo"] = {"kubeletVersion": "v1.35.2", "machineID": "m"}
        status["capacity"] = {**status.get("capacity", {}), "cpu": "192", "memory": "1536Gi"}
        status["allocatable"] = {**status.get("allocatable", {}), "cpu": "190", "pods": "110"}
        for condition in status.get("conditions") or []:
            condition.update(lastHeartbeatTime=NOISE_TIME, lastTransitionTime=NOISE_TIME, message="...")
        status.setdefault("conditions", []).insert(0, {"type": "MemoryPressure", "status": "False"})
    else:
        served.setdefault("data", {})["Description"] = "The field[xxx.com/xxx] is sunset." * 4
        served["data"]["ManuallySeparateNPU"] = ""
    return served


def fault(device: int, handling: str) -> JSON:
    return {
        "fault_type": "CardUnhealthy",
        "npu_name": f"Ascend910-{device}",
        "fault_level": handling,
        "fault_handling": handling,
        "fault_code": "80E18005",
    }


class Listener:
    """A mirror listener that keeps the Nodes it is told of."""

    def __init__(self) -> None:
        self.nodes: list[JSON | None] = []

    def superpod_changed(self, *_: Any) -> None: ...

    def partition_changed(self, *_: Any) -> None: ...

    def node_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        self.nodes.append(new)

    def inventory_changed(self) -> None: ...


def cases() -> dict[str, tuple[dict[str, JSON], dict[str, JSON], dict[str, JSON]]]:
    """name -> (Nodes, device-info ConfigMaps, NodeD ConfigMaps), all by node name."""
    healthy = {
        f"n{i}": objects.node(f"n{i}").superpod(0, rack=i // 2, server=i).devices(16).ready().obj()
        for i in range(4)
    }
    plugin = {
        f"n{i}": objects.deviceinfo_configmap(f"n{i}", server_index=i, rack_id=i // 2) for i in range(4)
    }
    faulty = dict(plugin)
    faulty["n1"] = objects.deviceinfo_configmap(
        "n1", server_index=1, unhealthy=(3,), network_unhealthy=(4,), faults=[fault(5, "SeparateNPU")]
    )
    reference = json.loads((ROOT / "tests/fixtures/reference/deviceinfo-a3.json").read_text())
    faulty["a3-node-07"] = reference
    nodes_with_reference = {
        **healthy,
        "a3-node-07": objects.node("a3-node-07").superpod(0, rack=1, server=7).devices(16).ready().obj(),
    }
    switched = dict(plugin)
    switched["n2"] = copy.deepcopy(plugin["n2"])
    switched["n2"]["data"]["SwitchInfoCfg"] = json.dumps(
        {"FaultCode": ['{"AssembledFaultCode": "[0x00f103b0,155904,na,na]"}'], "NodeStatus": "UnHealthy"}
    )
    not_ready = copy.deepcopy(healthy)
    not_ready["n3"]["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    broken = dict(plugin)
    broken["n0"] = copy.deepcopy(plugin["n0"])
    broken["n0"]["data"]["DeviceInfoCfg"] = "{not json"
    labels_only = {  # no ConfigMaps: coordinates from labels and annotations, devices from allocatable
        name: copy.deepcopy(node) for name, node in healthy.items() if name != "n1"
    }
    labels_only["n2"]["status"]["capacity"][objects.RESOURCE] = (
        "32"  # more than allocatable, more than it has
    )
    other_superpod = dict(healthy)
    other_superpod["x0"] = objects.node("x0").superpod(1, rack=0, server=0).devices(16).ready().obj()
    noded = {
        "n0": {
            "metadata": {"name": "mindx-dl-nodeinfo-n0", "namespace": "mindx-dl"},
            "data": {"NodeInfo": json.dumps({"NodeInfo": {"NodeStatus": "UnHealthy", "FaultDevList": []}})},
        }
    }
    return {
        "healthy": (healthy, plugin, {}),
        "device faults and the reference ConfigMap": (nodes_with_reference, faulty, {}),
        "a UB switch fault": (healthy, switched, {}),
        "a node not Ready": (not_ready, plugin, {}),
        "a malformed ConfigMap": (healthy, broken, {}),
        "no ConfigMaps": (labels_only, {}, {}),
        "a node of another SuperPod": (other_superpod, plugin, {}),
        "NodeD separates a node": (healthy, plugin, noded),
    }


def model_of(
    nodes: dict[str, JSON], configmaps: dict[str, JSON], health: dict[str, Any]
) -> superpodmodel.Model:
    return superpodmodel.build(superpodmodel.configure(SPEC), nodes, configmaps, health)


@pytest.mark.parametrize("case", list(cases()))
def test_the_allocator_sees_the_same_inventory_from_what_the_mirror_keeps(case: str) -> None:
    nodes, configmaps, noded = cases()[case]
    served_nodes = {name: as_served(node) for name, node in nodes.items()}
    served_maps = {name: as_served(cm) for name, cm in configmaps.items()}
    health = {name: nodeinfo.parse(as_served(cm)) for name, cm in noded.items()}
    kept_health = {name: nodeinfo.parse(nodeinfo.compact(as_served(cm))) for name, cm in noded.items()}

    whole = model_of(served_nodes, served_maps, health)
    kept = model_of(
        {name: inventory.compact_node(node) for name, node in served_nodes.items()},
        {name: deviceinfo.compact(cm) for name, cm in served_maps.items()},
        kept_health,
    )

    assert kept.observed == whole.observed and kept.observed  # the same nodes, devices, health, coordinates
    assert kept.problems == whole.problems
    assert kept.shape == whole.shape
    assert whole.allocator is not None and kept.allocator is not None
    assert kept.allocator.capacity() == whole.allocator.capacity()


def test_admission_and_the_taint_loop_read_the_same_of_a_kept_node() -> None:
    node = as_served(objects.node("n0").superpod(0).label("pool", "train").devices(16).ready().obj())
    node["spec"] = {
        "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": NOISE_TIME}]
    }
    kept = inventory.compact_node(node)
    pods = [
        {"spec": {"nodeSelector": {"pool": "train"}}},
        {"spec": {"nodeSelector": {"pool": "serve"}}},
        {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n0"]}]}]
        }}}}},
        {"spec": {"nodeName": "n1"}},
    ]  # fmt: skip
    assert (
        [podplacement.may_run_on(pod, kept) for pod in pods]
        == [podplacement.may_run_on(pod, node) for pod in pods]
        == [True, False, True, False]
    )
    # the taint loop writes the whole list back: nothing of another controller's taint may be lost
    assert nodetaints.wanted_taints(kept, "sp", True) == nodetaints.wanted_taints(node, "sp", True)
    assert kept["metadata"]["resourceVersion"] == node["metadata"]["resourceVersion"]


async def test_the_mirror_keeps_the_reduced_objects_listed_and_watched() -> None:
    api = fakeapi.FakeApi()
    api.listed(fakeapi.SUPERPODS, {"metadata": {"name": "sp", "generation": 1}, "spec": SPEC})
    node = as_served(objects.node("n0").superpod(0).devices(16).ready().obj())
    api.listed(fakeapi.NODES, node)
    api.listed(fakeapi.DEVICEINFO, as_served(objects.deviceinfo_configmap("n0")))
    listener = Listener()
    told = listener.nodes
    mirror = clustermirror.ClusterMirror(api, listener, debounce=0.0)  # type: ignore[arg-type]
    await mirror.list_all()
    assert mirror.nodes["n0"] == inventory.compact_node(node)
    assert "managedFields" not in mirror.deviceinfo["n0"]["metadata"]
    assert set(mirror.deviceinfo["n0"]["data"]) == {deviceinfo.DATA_KEY}

    mirror.watch()
    try:
        beat = copy.deepcopy(node)
        beat["metadata"]["resourceVersion"] = "42"
        api.send(fakeapi.NODES, "MODIFIED", beat)
        await fakeapi.until(lambda: mirror.nodes["n0"]["metadata"]["resourceVersion"] == "42")
        assert mirror.nodes["n0"] == inventory.compact_node(beat)
        assert told[-1] == inventory.compact_node(beat)  # the membership view gets the reduced Node too
    finally:
        await mirror.stop()


async def test_partitions_are_kept_whole_but_for_their_managed_fields_whichever_way_they_come() -> None:
    def served(version: str, phase: str) -> JSON:
        return {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPodPartition",
            "metadata": {
                "name": "job",
                "namespace": "team",
                "uid": "u1",
                "resourceVersion": version,
                "finalizers": ["superpod.dev/in-use"],
                "managedFields": [{"manager": "superpod-operator", "fieldsV1": {"f:status": {}}}],
            },
            "spec": {"superPod": "sp", "npus": 8},
            "status": {"phase": phase},
        }

    def without_managed_fields(obj: JSON) -> JSON:
        kept = copy.deepcopy(obj)
        del kept["metadata"]["managedFields"]
        return kept

    api = fakeapi.FakeApi()
    api.listed(fakeapi.PARTITIONS, served("1", "Pending"))
    mirror = clustermirror.ClusterMirror(api, Listener(), debounce=0.0)  # type: ignore[arg-type]
    await mirror.list_all()
    assert mirror.partitions["team/job"] == without_managed_fields(served("1", "Pending"))
    mirror.remember(served("2", "Allocated"))  # the answer to the operator's own status write
    assert mirror.partitions["team/job"] == without_managed_fields(served("2", "Allocated"))
    mirror.watch()
    try:
        api.send(fakeapi.PARTITIONS, "MODIFIED", served("3", "Bound"))
        await fakeapi.until(lambda: mirror.partitions["team/job"]["metadata"]["resourceVersion"] == "3")
        assert mirror.partitions["team/job"] == without_managed_fields(served("3", "Bound"))
    finally:
        await mirror.stop()
