"""managedFields bookkeeping and server-side apply."""

from __future__ import annotations

import pytest
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import managed


def deployment(replicas=1, image="i:1", labels=None):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": labels or {"app": "d"}},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


def owners(obj):
    return {entry["manager"]: managed.decode(entry["fieldsV1"]) for entry in obj["metadata"]["managedFields"]}


def test_fields_use_kube_s_path_elements():
    paths = set(managed.fields(deployment()))
    assert ("f:spec", "f:replicas") in paths
    assert ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:image") in paths
    assert ("f:metadata", "f:name") not in paths


def test_an_update_gives_the_manager_only_what_it_changed():
    created = deployment()
    managed.record_update(None, created, "creator", "apps/v1", "", True)
    scaled = deployment(replicas=3)
    scaled["metadata"]["managedFields"] = created["metadata"]["managedFields"]
    managed.record_update(created, scaled, "scaler", "apps/v1", "", True)
    assert owners(scaled)["scaler"] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in owners(scaled)["creator"]


def test_apply_conflicts_with_another_manager_unless_forced():
    current = managed.apply(None, deployment(), "first", "apps/v1", False, "", True)
    with pytest.raises(errors.ApiError) as caught:
        managed.apply(current, deployment(replicas=2), "second", "apps/v1", False, "", True)
    assert caught.value.code == 409
    assert (
        caught.value.status["message"]
        == 'Apply failed with 1 conflict: conflict with "first" using apps/v1: .spec.replicas'
    )
    forced = managed.apply(current, deployment(replicas=2), "second", "apps/v1", True, "", True)
    assert forced["spec"]["replicas"] == 2
    assert ("f:spec", "f:replicas") not in owners(forced)["first"]


def test_applying_the_same_value_shares_ownership_without_conflict():
    current = managed.apply(None, deployment(), "first", "apps/v1", False, "", True)
    shared = managed.apply(current, deployment(), "second", "apps/v1", False, "", True)
    assert ("f:spec", "f:replicas") in owners(shared)["first"] & owners(shared)["second"]


def test_a_field_dropped_from_the_applied_configuration_is_removed():
    current = managed.apply(
        None, deployment(labels={"app": "d", "extra": "x"}), "first", "apps/v1", False, "", True
    )
    reapplied = managed.apply(current, deployment(), "first", "apps/v1", False, "", True)
    assert reapplied["metadata"]["labels"] == {"app": "d"}


def test_apply_merges_keyed_lists_item_by_item():
    current = managed.apply(None, deployment(), "first", "apps/v1", False, "", True)
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": [{"name": "s", "image": "s:1"}]}}}}  # fmt: skip
    both = managed.apply(current, sidecar, "second", "apps/v1", False, "", True)
    assert [c["name"] for c in both["spec"]["template"]["spec"]["containers"]] == ["c", "s"]


def _pod() -> dict:
    container = {
        "name": "c",
        "image": "i",
        "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
        "env": [{"name": "A", "value": "ü"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
        "resources": {},
        "args": ["a", "b"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "default",
            "uid": "u",
            "resourceVersion": "7",
            "labels": {"app": "x"},
            "finalizers": ["a/b", "c"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "o1"}],
        },
        "spec": {"containers": [container], "nodeName": None, "volumes": [], "tolerations": [{"key": "k"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "podIPs": [{"ip": "1.2.3.4"}]},
    }


def _sim_objects() -> list[dict]:
    from superpod_sandbox.sim import hardware, layout, nodes, plugin_state

    fleet = layout.build(hardware.describe("cloudmatrix-384"), 3)
    node = fleet.nodes[7]
    taint = ({"key": "k", "value": "v", "effect": "NoSchedule"},)
    return [
        nodes.node_object(fleet, node, "2026-12-07T00:00:00Z", taint),
        plugin_state.configmap(fleet, node, plugin_state.PluginState(), 1, fleet_label=nodes.FLEET_LABEL),
    ]


@pytest.mark.parametrize("with_status", [True, False])
@pytest.mark.parametrize(
    "obj",
    [
        _pod(),
        *_sim_objects(),
        {"kind": "ConfigMap", "metadata": {"name": "only-ignored", "uid": "u"}},
        {"kind": "ConfigMap", "metadata": "not a map", "data": {}},
        {
            "kind": "X",
            "spec": {"containers": [{"name": "same"}, {"name": "same", "image": "i"}]},
        },  # repeated key
        {"kind": "X", "spec": {"ports": [{"port": 1}, {"name": "no port"}]}},  # not every item has the key
        {},
    ],
    ids=["pod", "node", "deviceinfo", "only-ignored", "odd-metadata", "repeated-key", "unkeyed", "empty"],
)
def test_a_create_s_field_set_is_the_one_its_paths_encode_to(obj, with_status):
    import json

    expected = managed.encode(set(managed.fields(obj, with_status)))
    found = managed.owned(obj, with_status)
    assert found == expected
    assert json.dumps(found) == json.dumps(expected)  # the same order of keys, as FieldsV1 is written


def test_equal_field_sets_of_two_creates_are_one_tree():
    first, second = _pod(), _pod()
    second["metadata"]["name"] = "q"
    assert managed.owned(first)["f:spec"] is managed.owned(second)["f:spec"]
