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
