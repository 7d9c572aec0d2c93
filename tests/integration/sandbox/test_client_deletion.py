"""Deletion through the `kubernetes` client: finalizers, propagation policies, owner-reference GC."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException


@pytest.fixture
def core(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    yield client.CoreV1Api(api_client)
    api_client.close()


def configmap(name, owner=None, finalizers=None):
    refs = None
    if owner is not None:
        refs = [
            client.V1OwnerReference(
                api_version="v1",
                kind="ConfigMap",
                name=owner.metadata.name,
                uid=owner.metadata.uid,
                block_owner_deletion=True,
            )
        ]
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, owner_references=refs, finalizers=finalizers), data={"k": "v"}
    )


def exists(core, name):
    try:
        return core.read_namespaced_config_map(name, "default")
    except ApiException as missing:
        assert missing.status == 404
        return None


def wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_a_finalizer_holds_the_object_with_a_deletion_timestamp(core):
    core.create_namespaced_config_map("default", configmap("held", finalizers=["example.dev/hold"]))
    core.delete_namespaced_config_map("held", "default")
    held = exists(core, "held")
    assert held is not None and held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert exists(core, "held") is None


def test_no_new_finalizer_may_be_added_while_deleting(core):
    core.create_namespaced_config_map("default", configmap("held", finalizers=["example.dev/hold"]))
    core.delete_namespaced_config_map("held", "default")
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map(
            "held", "default", {"metadata": {"finalizers": ["example.dev/hold", "example.dev/more"]}}
        )
    assert caught.value.status == 422


def test_background_deletion_collects_dependents_afterwards(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", owner))
    core.create_namespaced_config_map(
        "default", configmap("grandchild", core.read_namespaced_config_map("child", "default"))
    )
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Background")
    assert exists(core, "owner") is None
    wait_until(lambda: exists(core, "child") is None and exists(core, "grandchild") is None)
    del owner


def test_foreground_deletion_removes_dependents_before_the_owner(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", owner, finalizers=["example.dev/hold"]))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    waiting = exists(core, "owner")
    assert waiting is not None and "foregroundDeletion" in waiting.metadata.finalizers
    wait_until(lambda: (c := exists(core, "child")) is not None and c.metadata.deletion_timestamp is not None)
    assert exists(core, "owner") is not None, "the owner waits for its blocking dependent"
    core.patch_namespaced_config_map("child", "default", {"metadata": {"finalizers": None}})
    wait_until(lambda: exists(core, "owner") is None)


def test_orphan_deletion_keeps_dependents_without_the_reference(core):
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", configmap("child", owner))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    wait_until(lambda: exists(core, "owner") is None)
    child = exists(core, "child")
    assert child is not None and not child.metadata.owner_references


def test_delete_collection_deletes_the_selected_objects(core):
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        body = configmap(name)
        body.metadata.labels = {"tier": tier}
        core.create_namespaced_config_map("default", body)
    core.delete_collection_namespaced_config_map("default", label_selector="tier=x")
    assert [o.metadata.name for o in core.list_namespaced_config_map("default").items] == ["c"]


def test_preconditions_guard_deletion(core):
    created = core.create_namespaced_config_map("default", configmap("guarded"))
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map(
            "guarded",
            "default",
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other")),
        )
    assert caught.value.status == 409
    core.delete_namespaced_config_map(
        "guarded",
        "default",
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid)),
    )
    assert exists(core, "guarded") is None


def pod(core, name, node=None):
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
    )
    core.create_namespaced_pod("default", body)
    if node:
        binding = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name), target=client.V1ObjectReference(kind="Node", name=node)
        )
        core.create_namespaced_pod_binding(name, "default", binding, _preload_content=False)


def read_pod(core, name):
    try:
        return core.read_namespaced_pod(name, "default")
    except ApiException as missing:
        assert missing.status == 404
        return None


def test_a_bound_pod_waits_for_its_kubelet_for_the_grace_period(core):
    pod(core, "bound", node="n1")
    core.delete_namespaced_pod("bound", "default")
    terminating = read_pod(core, "bound")
    assert terminating is not None and terminating.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)
    assert read_pod(core, "bound") is None


def test_an_unbound_pod_is_deleted_at_once(core):
    pod(core, "unbound")
    core.delete_namespaced_pod("unbound", "default")
    assert read_pod(core, "unbound") is None
