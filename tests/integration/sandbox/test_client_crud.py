"""The official `kubernetes` client against the sandbox: CRUD, Status errors, selectors, pagination."""

from __future__ import annotations

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException


@pytest.fixture
def core(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    yield client.CoreV1Api(api_client)
    api_client.close()


def configmap(name, labels=None, data=None):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or {"k": "v"})


def test_create_assigns_uid_resource_version_and_timestamp(core):
    created = core.create_namespaced_config_map("default", configmap("a"))
    assert created.metadata.uid
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    fetched = core.read_namespaced_config_map("a", "default")
    assert fetched.metadata.resource_version == created.metadata.resource_version


def test_generate_name_makes_a_unique_name(core):
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
    first = core.create_namespaced_config_map("default", body)
    second = core.create_namespaced_config_map("default", body)
    assert first.metadata.name.startswith("gen-") and len(first.metadata.name) == len("gen-") + 5
    assert first.metadata.name != second.metadata.name


def test_every_write_takes_a_higher_resource_version(core):
    first = core.create_namespaced_config_map("default", configmap("a"))
    second = core.create_namespaced_config_map("default", configmap("b"))
    patched = core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    versions = [int(o.metadata.resource_version) for o in (first, second, patched)]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_a_write_that_changes_nothing_keeps_the_resource_version(core):
    created = core.create_namespaced_config_map("default", configmap("a"))
    patched = core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    assert patched.metadata.resource_version == created.metadata.resource_version


@pytest.mark.parametrize(
    ("call", "status", "reason", "message"),
    [
        ("read a missing object", 404, "NotFound", 'configmaps "missing" not found'),
        ("create an existing object", 409, "AlreadyExists", 'configmaps "a" already exists'),
        (
            "replace with a stale resourceVersion",
            409,
            "Conflict",
            'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
            "please apply your changes to the latest version and try again",
        ),
        ("create in a missing namespace", 404, "NotFound", 'namespaces "nowhere" not found'),
    ],
)
def test_failures_are_kube_status_objects(core, call, status, reason, message):
    created = core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException) as caught:
        if call == "read a missing object":
            core.read_namespaced_config_map("missing", "default")
        elif call == "create an existing object":
            core.create_namespaced_config_map("default", configmap("a"))
        elif call == "replace with a stale resourceVersion":
            stale = configmap("a", data={"k": "new"})
            stale.metadata.resource_version = str(int(created.metadata.resource_version) - 1)
            core.replace_namespaced_config_map("a", "default", stale)
        else:
            core.create_namespaced_config_map("nowhere", configmap("a"))
    import json

    body = json.loads(caught.value.body)
    assert (caught.value.status, body["kind"], body["reason"], body["message"]) == (
        status,
        "Status",
        reason,
        message,
    )


def test_an_invalid_name_is_422_with_a_cause(core):
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("Not_Valid"))
    import json

    body = json.loads(caught.value.body)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith(
        'ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: "Not_Valid"'
    )
    assert body["details"]["causes"][0]["field"] == "metadata.name"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", ["a"]),
        ("tier==gold", ["a"]),
        ("tier!=gold", ["b", "c"]),
        ("tier in (gold,silver)", ["a", "b"]),
        ("tier notin (gold)", ["b", "c"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c"]),
        ("tier,zone=x", ["b"]),
    ],
)
def test_label_selectors_select_as_in_kube(core, selector, expected):
    core.create_namespaced_config_map("default", configmap("a", {"tier": "gold"}))
    core.create_namespaced_config_map("default", configmap("b", {"tier": "silver", "zone": "x"}))
    core.create_namespaced_config_map("default", configmap("c", {"zone": "y"}))
    found = core.list_namespaced_config_map("default", label_selector=selector)
    assert [o.metadata.name for o in found.items] == expected


def test_field_selectors_select_by_name_and_reject_unknown_fields(core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    found = core.list_config_map_for_all_namespaces(field_selector="metadata.name=b")
    assert [o.metadata.name for o in found.items] == ["b"]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert caught.value.status == 400


def test_pods_are_selected_by_node_and_phase(core):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
    )
    core.create_namespaced_pod("default", pod)
    core.create_namespaced_pod_binding(
        "p",
        "default",
        client.V1Binding(
            metadata=client.V1ObjectMeta(name="p"), target=client.V1ObjectReference(kind="Node", name="n1")
        ),
        _preload_content=False,
    )
    assert core.read_namespaced_pod("p", "default").spec.node_name == "n1"
    assert [
        p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items
    ] == ["p"]
    assert [
        p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector="status.phase=Pending").items
    ] == ["p"]
    assert core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n2").items == []


def test_pagination_returns_every_object_once(core):
    for index in range(7):
        core.create_namespaced_config_map("default", configmap(f"cm-{index}"))
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map("default", limit=3, _continue=token)
        names += [o.metadata.name for o in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 7 - len(names)
    assert names == [f"cm-{index}" for index in range(7)]


def test_pages_across_namespaces_with_and_without_a_selector_return_the_whole_list_once(core):
    for namespace in ("pa", "pb", "pc"):
        core.create_namespace({"metadata": {"name": namespace}})
        for index in range(5):
            labels = {"even": str(index % 2 == 0).lower()}
            if index == 0:
                labels["first"] = "yes"  # few carry it: pages start from the label index
            core.create_namespaced_config_map(namespace, configmap(f"cm-{index}", labels=labels))
    selectors = (None, "even=true", "first=yes", "even in (true)", "first=yes,even=true", "even!=true")
    for selector in selectors:
        whole = [
            (o.metadata.namespace, o.metadata.name)
            for o in core.list_config_map_for_all_namespaces(label_selector=selector).items
        ]
        assert whole, selector
        seen, token = [], None
        while True:
            page = core.list_config_map_for_all_namespaces(limit=2, _continue=token, label_selector=selector)
            seen += [(o.metadata.namespace, o.metadata.name) for o in page.items]
            token = page.metadata._continue
            if not token:
                break
            # kube counts what is left only when no selector makes it unknown
            expected = len(whole) - len(seen) if selector is None else None
            assert page.metadata.remaining_item_count == expected, selector
        assert seen == whole, selector
    paged, token = [], None
    while True:
        page = core.list_config_map_for_all_namespaces(
            limit=2, _continue=token, field_selector="metadata.namespace=pb", label_selector="even=true"
        )
        paged += [(o.metadata.namespace, o.metadata.name) for o in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert paged == [("pb", "cm-0"), ("pb", "cm-2"), ("pb", "cm-4")]


def test_deleting_a_namespace_removes_its_contents(core, sandbox_thread):
    import time

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map("doomed", configmap("a"))
    core.delete_namespace("doomed")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            core.read_namespace("doomed")
        except ApiException as gone:
            assert gone.status == 404
            break
        time.sleep(0.05)
    else:
        pytest.fail("namespace not deleted")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []


def test_an_immutable_configmap_keeps_its_data(core):
    body = configmap("frozen")
    body.immutable = True
    core.create_namespaced_config_map("default", body)
    with pytest.raises(ApiException) as caught:
        core.patch_namespaced_config_map("frozen", "default", {"data": {"k": "changed"}})
    import json

    answer = json.loads(caught.value.body)
    assert caught.value.status == 422
    assert (
        answer["message"]
        == 'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    )
    relabelled = core.patch_namespaced_config_map("frozen", "default", {"metadata": {"labels": {"a": "b"}}})
    assert relabelled.metadata.labels == {"a": "b"}


@pytest.mark.parametrize(
    ("case", "metadata", "field"),
    [
        ("a finalizer that is not a qualified name", {"finalizers": ["not a name!"]}, "metadata.finalizers"),
        (
            "an owner reference without a uid",
            {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": ""}]},
            "metadata.ownerReferences.uid",
        ),
        ("a label value with spaces", {"labels": {"a": "b c"}}, "metadata.labels"),
    ],
)
def test_malformed_metadata_is_422(core, case, metadata, field):
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", **metadata}}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", body)
    import json

    assert caught.value.status == 422
    assert json.loads(caught.value.body)["details"]["causes"][0]["field"] == field
