"""managedFields bookkeeping and server-side apply."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


# `changes` skips equal subtrees; it must say what comparing every leaf of both versions says.

_scalars = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(["a", "b", ""]), st.booleans())
_names = st.sampled_from(["a", "b", "conditions", "finalizers", "containers", "status", "spec", "labels"])


def _keyed_items(children: st.SearchStrategy) -> st.SearchStrategy:
    """Items of a list kube merges by key (conditions by `type`, containers by `name`): string keys."""
    return st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["Ready", "Fault"]), "name": st.sampled_from(["x", "y"])},
            optional={"v": children},
        ),
        max_size=3,
        unique_by=lambda item: (item["type"], item["name"]),
    )


_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.dictionaries(_names, children, max_size=4),
        st.lists(children, max_size=3),
        _keyed_items(children),
    ),
    max_leaves=12,
)
_objects = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {"name": st.just("n")},
            optional={
                "labels": st.dictionaries(_names, _scalars),
                "resourceVersion": st.sampled_from(["1", "2"]),
            },
        )
    },
    optional={"spec": _values, "status": _values, "kind": st.just("Node")},
)


def _by_every_leaf(old, new, with_status):
    before = managed.fields(old, with_status) if old is not None else {}
    after = managed.fields(new, with_status)
    return {path for path, value in after.items() if before.get(path, _NONE) != value}, set(before) - set(
        after
    )


_NONE = object()


@settings(max_examples=400, deadline=None)
@given(old=st.one_of(st.none(), _objects), new=_objects, with_status=st.booleans())
def test_changes_are_what_comparing_every_leaf_gives(old, new, with_status):
    assert managed.changes(old, new, with_status) == _by_every_leaf(old, new, with_status)


@settings(max_examples=200, deadline=None)
@given(base=_objects, edit=_values, where=st.lists(_names, min_size=1, max_size=3))
def test_changes_of_one_edited_branch(base, edit, where):
    """The common write: a copy of the object with one branch replaced (a heartbeat's timestamp)."""
    new = copy.deepcopy(base)
    node = new.setdefault("status", {})
    if not isinstance(node, dict):
        node = new["status"] = {}
    for name in where[:-1]:
        child = node.get(name)
        if not isinstance(child, dict):
            child = node[name] = {}
        node = child
    node[where[-1]] = edit
    assert managed.changes(base, new) == _by_every_leaf(base, new, True)


@settings(max_examples=300, deadline=None)
@given(
    before=_keyed_items(_values),
    after=_keyed_items(_values),
    name=st.sampled_from(["conditions", "containers"]),
)
def test_changes_of_a_keyed_list_are_what_comparing_every_leaf_gives(before, after, name):
    """Two versions of a list kube merges by key (items kept, edited, added, removed; keys shared or not)."""
    old = {"metadata": {"name": "n"}, "status": {name: before}}
    new = {"metadata": {"name": "n"}, "status": {name: copy.deepcopy(after)}}
    assert managed.changes(old, new, True) == _by_every_leaf(old, new, True)


def test_a_heartbeat_gives_the_kubelet_only_the_timestamp():
    node = {
        "metadata": {"name": "n", "labels": {"pool": "a"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}],
                   "capacity": {"huawei.com/npu": "8"}},
    }  # fmt: skip
    beat = copy.deepcopy(node)
    beat["status"]["conditions"][0]["lastHeartbeatTime"] = "t2"
    changed, removed = managed.changes(node, beat)
    assert changed == {("f:status", "f:conditions", 'k:{"type":"Ready"}', "f:lastHeartbeatTime")}
    assert removed == set()


def _record_by_every_leaf(old, new, manager, subresource):
    """The ownership rule written out over every leaf: the manager gains what it changed, others lose it."""
    changed, removed = _by_every_leaf(old, new, subresource == "status")
    result, mine = [], set(changed)
    for entry in old["metadata"].get("managedFields") or []:
        paths = managed.decode(entry["fieldsV1"]) - changed - removed
        if entry["manager"] == manager and entry.get("subresource", "") == subresource:
            mine |= paths
        elif paths:
            result.append((entry["manager"], entry.get("subresource", ""), _as_stored(paths)))
    if mine:
        result.append((manager, subresource, _as_stored(mine)))
    return result


def _as_stored(paths):
    """Paths as FieldsV1 keeps them: a leaf that became a map is the map's leaves."""
    return frozenset(managed.decode(managed.encode(paths)))


def _ownership(obj):
    return [
        (entry["manager"], entry.get("subresource", ""), frozenset(managed.decode(entry["fieldsV1"])))
        for entry in obj["metadata"].get("managedFields") or []
    ]


@settings(max_examples=300, deadline=None)
@given(
    versions=st.lists(_objects, min_size=2, max_size=4),
    writers=st.lists(
        st.tuples(st.sampled_from(["kubelet", "operator", "kubectl"]), st.sampled_from(["", "status"])),
        min_size=4,
        max_size=4,
    ),
)
def test_a_history_of_updates_gives_each_manager_what_it_wrote_last(versions, writers):
    current = copy.deepcopy(versions[0])
    managed.record_update(None, current, writers[0][0], "v1", writers[0][1], True)
    for version, (manager, subresource) in zip(versions[1:], writers[1:], strict=False):
        new = copy.deepcopy(version)
        expected = _record_by_every_leaf(current, new, manager, subresource)
        managed.record_update(current, new, manager, "v1", subresource, True)
        assert _ownership(new) == expected
        current = new
