"""The pod a bound slot produces: node affinity, device annotation and request, env, rank table volume."""

from __future__ import annotations

import copy

import pytest
from superpod.controller import podmutation
from superpod_sandbox.apiserver.patches import jsonpatch

from tests.unit.admission import builders

BINDING = podmutation.Binding(
    name=None,
    node="node-3",
    devices=("Ascend910-2", "Ascend910-3"),
    rank=6,
    world_size=16,
    resource="huawei.com/Ascend910",
    rank_table="rings-config-train",
)
RANK_TABLE_MOUNT = {
    "name": "superpod-rank-table",
    "mountPath": "/user/serverid/devindex/config",
    "readOnly": True,
}
PIN = {"key": "metadata.name", "operator": "In", "values": ["node-3"]}


def bound(pod, binding=BINDING):
    podmutation.apply(pod, binding)
    return pod


def test_a_plain_pod_gets_everything_its_slot_needs():
    pod = bound(builders.pod())
    assert pod["metadata"]["annotations"] == {"huawei.com/Ascend910": "Ascend910-2,Ascend910-3"}
    assert pod["spec"]["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [PIN]}]}
        }
    }
    (container,) = pod["spec"]["containers"]
    assert container["resources"] == {
        "limits": {"huawei.com/Ascend910": "2"},
        "requests": {"huawei.com/Ascend910": "2"},
    }
    assert container["env"] == [
        {"name": "RANK", "value": "6"},
        {"name": "WORLD_SIZE", "value": "16"},
        {"name": "RANK_TABLE_FILE", "value": "/user/serverid/devindex/config/hccl.json"},
    ]
    assert container["volumeMounts"] == [RANK_TABLE_MOUNT]
    assert pod["spec"]["volumes"] == [
        {"name": "superpod-rank-table", "configMap": {"name": "rings-config-train"}}
    ]
    assert pod["spec"]["tolerations"] == [
        {"key": "superpod.dev/partitions-only", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_the_pods_own_tolerations_stay_beside_the_isolation_toleration_which_is_added_once():
    own = {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    pod = bound(bound(builders.pod(tolerations=[own])))
    assert pod["spec"]["tolerations"] == [
        own,
        {"key": "superpod.dev/partitions-only", "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_existing_node_selector_terms_each_get_the_node_pin():
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            }
        }
    }
    pod = bound(builders.pod(affinity=affinity))
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert [term["matchFields"] for term in terms["nodeSelectorTerms"]] == [[PIN], [PIN]]
    assert terms["nodeSelectorTerms"][1]["matchExpressions"][0]["values"] == ["b"]


def test_a_request_without_a_limit_gets_the_limit_and_the_users_values_stay():
    containers = [
        {
            "name": "main",
            "resources": {"requests": {"huawei.com/Ascend910": "2", "cpu": "4"}},
            "env": [{"name": "RANK", "value": "99"}, {"name": "KEEP", "value": "1"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }
    ]
    pod = bound(builders.pod(containers=containers, volumes=[{"name": "data", "emptyDir": {}}]))
    (container,) = pod["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"huawei.com/Ascend910": "2", "cpu": "4"},
        "limits": {"huawei.com/Ascend910": "2"},
    }
    # ours first: kubelet expands `$(RANK)` in the container's own variables only from those defined before
    assert [item["name"] for item in container["env"]] == ["RANK", "WORLD_SIZE", "RANK_TABLE_FILE", "KEEP"]
    assert container["env"][0] == {"name": "RANK", "value": "6"}
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}, RANK_TABLE_MOUNT]
    assert [volume["name"] for volume in pod["spec"]["volumes"]] == ["data", "superpod-rank-table"]


def test_a_pod_without_a_name_gets_the_chosen_one_and_a_profile_without_rank_table_no_volume():
    pod = builders.pod()
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "worker-"
    binding = podmutation.Binding("worker-x7k2q", "n", ("gpu-0",), 0, 4, "nvidia.com/gpu", None)
    pod = bound(pod, binding)
    assert pod["metadata"]["name"] == "worker-x7k2q"
    assert "volumes" not in pod["spec"]
    assert [item["name"] for item in pod["spec"]["containers"][0]["env"]] == ["RANK", "WORLD_SIZE"]


def test_applying_twice_changes_nothing_more():
    once = bound(builders.pod())
    twice = bound(bound(builders.pod()))
    assert once == twice


GENERATED = podmutation.Binding("worker-x7k2q", "n", ("gpu-0",), 0, 4, "nvidia.com/gpu", None)
USERS_CONTAINER = {
    "name": "main",
    "resources": {"requests": {"huawei.com/Ascend910": "2", "cpu": "4"}},
    "env": [{"name": "RANK", "value": "99"}, {"name": "KEEP", "value": "1"}],
    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
}
ZONES = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
        }
    }
}


def generated(pod):
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "worker-"
    return pod


@pytest.mark.parametrize(
    ("pod", "binding"),
    [
        pytest.param(builders.pod(), BINDING, id="a plain pod"),
        pytest.param(builders.pod(affinity=ZONES), BINDING, id="a pod with node selector terms"),
        pytest.param(
            builders.pod(containers=[USERS_CONTAINER], volumes=[{"name": "data", "emptyDir": {}}]),
            BINDING,
            id="a pod with its own env, request, mounts and volumes",
        ),
        pytest.param(generated(builders.pod()), GENERATED, id="a pod with generateName only"),
        pytest.param(bound(builders.pod()), BINDING, id="a pod bound already"),
    ],
)
def test_the_json_patch_makes_of_the_pod_what_apply_makes_and_leaves_the_pod_alone(pod, binding):
    original = copy.deepcopy(pod)
    operations = podmutation.json_patch(pod, binding)
    assert pod == original
    assert jsonpatch.json_patch(copy.deepcopy(pod), operations) == bound(copy.deepcopy(pod), binding)


def test_a_pod_that_needs_no_change_gets_an_empty_patch():
    pod = bound(builders.pod())
    assert podmutation.json_patch(pod, BINDING) == []
