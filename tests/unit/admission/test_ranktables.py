"""The rank table ConfigMap's text and object, from a partition's slots and its pods."""

from __future__ import annotations

import json

from superpod.controller import ranktables

from tests.unit.admission import builders
from tests.unit.ranktable import builders as table_builders

PARTITION = {
    "apiVersion": "superpod.dev/v1alpha1",
    "kind": "SuperPodPartition",
    "metadata": {"name": "train", "namespace": "team-a", "uid": "u-1"},
    "spec": {"superPod": "cm384-a", "npus": 4},
    "status": {"phase": "Bound", "allocation": builders.slots(2, size=2, bound={0: "w0", 1: "w1"})},
}


def allocated_pod(name: str, host_ip: str, device_ids: list[int]) -> dict:
    value = table_builders.annotation(
        host_ip, [table_builders.device(i, f"29.0.0.{i}", str(1000 + i)) for i in device_ids], pod_name=name
    )
    return {
        "metadata": {
            "name": name,
            "annotations": {"ascend.kubectl.kubernetes.io/ascend-910-configuration": value},
        },
        "status": {"podIP": f"192.168.0.{device_ids[0]}"},
    }


def test_the_table_is_initializing_until_every_slots_pod_is_allocated():
    text = ranktables.hccl_json(PARTITION, "cloudmatrix-384", {"w0": allocated_pod("w0", "10.0.0.1", [0, 1])})
    document = json.loads(text)
    assert (document["status"], document["version"], document["server_count"]) == ("initializing", "1.2", "1")
    assert ranktables.table_status(text).value == "initializing"


def test_the_table_completes_with_every_pods_devices_in_rank_order():
    pods = {"w0": allocated_pod("w0", "10.0.0.1", [0, 1]), "w1": allocated_pod("w1", "10.0.0.1", [2, 3])}
    document = json.loads(ranktables.hccl_json(PARTITION, "cloudmatrix-384", pods))
    assert document["status"] == "completed"
    assert [[d["rank_id"] for d in s["device"]] for s in document["server_list"]] == [["0", "1"], ["2", "3"]]
    assert document["server_list"][1]["container_ip"] == "192.168.0.2"


def test_a_pod_given_other_devices_than_its_slot_keeps_the_table_initializing():
    pods = {"w0": allocated_pod("w0", "10.0.0.1", [0, 1]), "w1": allocated_pod("w1", "10.0.0.1", [6, 7])}
    assert json.loads(ranktables.hccl_json(PARTITION, "cloudmatrix-384", pods))["status"] == "initializing"


def test_profiles_without_a_rank_table_and_unplaced_partitions_get_none():
    assert ranktables.hccl_json(PARTITION, "nvidia-gb200-nvl72", {}) is None
    assert ranktables.hccl_json({**PARTITION, "status": {"phase": "Pending"}}, "cloudmatrix-384", {}) is None


def test_the_configmap_is_owned_by_the_partition_and_named_as_mindcluster_names_it():
    assert ranktables.configmap_name(PARTITION) == "rings-config-train"
    configmap = ranktables.configmap(PARTITION, "rings-config-train", "{}")
    assert configmap["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPodPartition",
            "name": "train",
            "uid": "u-1",
            "controller": True,
        }
    ]
    assert configmap["data"] == {"hccl.json": "{}"}


def test_an_annotation_on_the_partition_renames_the_configmap():
    renamed = {
        **PARTITION,
        "metadata": {**PARTITION["metadata"], "annotations": {"superpod.dev/rank-table-name": "hccl-train"}},
    }
    assert ranktables.configmap_name(renamed) == "hccl-train"
