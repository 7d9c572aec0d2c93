"""The rank table ConfigMap's text and object, from a partition's slots and its pods."""

from __future__ import annotations

import json

import pytest
from superpod.controller import hcclconfigmap

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
    text = hcclconfigmap.hccl_json(
        PARTITION, "cloudmatrix-384", {"w0": allocated_pod("w0", "10.0.0.1", [0, 1])}
    )
    document = json.loads(text)
    assert (document["status"], document["version"], document["server_count"]) == ("initializing", "1.2", "1")
    assert hcclconfigmap.table_status(text).value == "initializing"


def test_the_table_completes_with_every_pods_devices_in_rank_order():
    pods = {"w0": allocated_pod("w0", "10.0.0.1", [0, 1]), "w1": allocated_pod("w1", "10.0.0.1", [2, 3])}
    document = json.loads(hcclconfigmap.hccl_json(PARTITION, "cloudmatrix-384", pods))
    assert document["status"] == "completed"
    assert [[d["rank_id"] for d in s["device"]] for s in document["server_list"]] == [["0", "1"], ["2", "3"]]
    assert document["server_list"][1]["container_ip"] == "192.168.0.2"


def test_a_pod_given_other_devices_than_its_slot_keeps_the_table_initializing():
    pods = {"w0": allocated_pod("w0", "10.0.0.1", [0, 1]), "w1": allocated_pod("w1", "10.0.0.1", [6, 7])}
    assert json.loads(hcclconfigmap.hccl_json(PARTITION, "cloudmatrix-384", pods))["status"] == "initializing"


def test_profiles_without_a_rank_table_and_unplaced_partitions_get_none():
    assert hcclconfigmap.hccl_json(PARTITION, "nvidia-gb200-nvl72", {}) is None
    assert (
        hcclconfigmap.hccl_json({**PARTITION, "status": {"phase": "Pending"}}, "cloudmatrix-384", {}) is None
    )


def test_the_configmap_is_owned_by_the_partition_and_named_as_mindcluster_names_it():
    assert hcclconfigmap.configmap_name(PARTITION) == "rings-config-train"
    configmap = hcclconfigmap.configmap(PARTITION, "rings-config-train", "{}")
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
    assert hcclconfigmap.configmap_name(renamed) == "hccl-train"


def _configmap(labels: dict | None = None, owners: list | None = None) -> dict:
    metadata: dict = {"name": "rings-config-train", "namespace": "team-a", "labels": labels or {}}
    if owners is not None:
        metadata["ownerReferences"] = owners
    return {"metadata": metadata, "data": {}}


def _owner(
    name: str, uid: str = "u-0", kind: str = "SuperPodPartition", api_version: str = "superpod.dev/v1alpha1"
):
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True}


MARK = {"superpod.dev/partition": "train"}


@pytest.mark.parametrize(
    ("configmap", "refused"),
    [
        pytest.param(_configmap(MARK, [_owner("train", "u-1")]), None, id="the table this partition made"),
        pytest.param(
            _configmap(MARK, [_owner("train", "u-0")]), None, id="one an earlier partition of the name made"
        ),
        pytest.param(_configmap(MARK), None, id="a placeholder a user labelled for the partition"),
        pytest.param(
            _configmap(), "no label superpod.dev/partition=train", id="a ConfigMap without the label"
        ),
        pytest.param(
            _configmap({"superpod.dev/partition": "other"}),
            "no label superpod.dev/partition=train",
            id="one labelled for another partition",
        ),
        pytest.param(
            _configmap(MARK, [_owner("other")]),
            "belongs to SuperPodPartition other",
            id="another partition's table",
        ),
        pytest.param(
            _configmap(MARK, [_owner("web", kind="Deployment", api_version="apps/v1")]),
            "belongs to Deployment web",
            id="one another controller owns",
        ),
        pytest.param(
            _configmap(MARK, [_owner("train", api_version="example.com/v1")]),
            "belongs to SuperPodPartition train",
            id="a partition of another API group",
        ),
    ],
)
def test_only_a_configmap_carrying_the_operators_mark_is_the_partitions_to_write(configmap, refused):
    problem = hcclconfigmap.foreign(configmap, PARTITION)
    if refused is None:
        assert problem is None
    else:
        assert problem is not None and refused in problem and "left untouched" in problem


@pytest.mark.parametrize(
    ("value", "name"),
    [
        pytest.param("hccl-train", "hccl-train", id="a valid name is used"),
        pytest.param("hccl.train-1", "hccl.train-1", id="dots are allowed"),
        pytest.param("", "rings-config-train", id="an empty value means the default"),
        pytest.param("Hccl", "rings-config-train", id="capitals fall back to the default"),
        pytest.param("hccl/train", "rings-config-train", id="a slash falls back to the default"),
        pytest.param("h" * 254, "rings-config-train", id="254 characters fall back to the default"),
    ],
)
def test_the_rank_table_name_annotation_is_used_only_when_it_is_a_configmap_name(value, name):
    annotated = {
        **PARTITION,
        "metadata": {**PARTITION["metadata"], "annotations": {hcclconfigmap.NAME_ANNOTATION: value}},
    }
    assert hcclconfigmap.configmap_name(annotated) == name
    assert (hcclconfigmap.name_problem(annotated) is None) is (name == value or value == "")
