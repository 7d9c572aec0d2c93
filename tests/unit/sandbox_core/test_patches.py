"""Merge patch, JSON patch and strategic merge patch: the documents kubectl and kopf send."""

from __future__ import annotations

import pytest
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import jsonpatch, strategic

POD = {
    "metadata": {"name": "p", "finalizers": ["a"], "labels": {"x": "1"}},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "i:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80}],
            },
            {"name": "side", "image": "s:1"},
        ],
        "tolerations": [{"key": "t"}],
    },
}


@pytest.mark.parametrize(
    ("case", "document", "expected"),
    [
        ("null deletes a key", {"metadata": {"labels": {"x": None}}}, {"x": None}),
        ("maps merge recursively", {"metadata": {"labels": {"y": "2"}}}, {"x": "1", "y": "2"}),
    ],
)
def test_merge_patch(case, document, expected):
    result = jsonpatch.merge(POD, document)
    assert result["metadata"].get("labels", {}) == {k: v for k, v in expected.items() if v is not None}


def test_merge_patch_replaces_lists_whole():
    result = jsonpatch.merge(POD, {"spec": {"containers": [{"name": "only"}]}})
    assert result["spec"]["containers"] == [{"name": "only"}]


@pytest.mark.parametrize(
    ("case", "operations", "expected"),
    [
        (
            "add appends with a dash",
            [{"op": "add", "path": "/metadata/finalizers/-", "value": "b"}],
            ["a", "b"],
        ),
        ("remove drops an item", [{"op": "remove", "path": "/metadata/finalizers/0"}], []),
        ("replace sets a value", [{"op": "replace", "path": "/metadata/finalizers", "value": ["z"]}], ["z"]),
        (
            "a passing test lets the rest apply",
            [
                {"op": "test", "path": "/metadata/finalizers", "value": ["a"]},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "c"},
            ],
            ["a", "c"],
        ),
    ],
)
def test_json_patch_operations(case, operations, expected):
    assert jsonpatch.json_patch(POD, operations)["metadata"]["finalizers"] == expected
    assert POD["metadata"]["finalizers"] == ["a"], "the input is not modified"


@pytest.mark.parametrize(
    ("case", "operations", "code"),
    [
        ("a failed test is 422", [{"op": "test", "path": "/metadata/finalizers", "value": ["x"]}], 422),
        ("a missing path is 422", [{"op": "replace", "path": "/nope/deeper", "value": 1}], 422),
        ("an unknown op is 400", [{"op": "frobnicate", "path": "/a"}], 400),
        ("a patch that is not a list is 400", {"op": "add"}, 400),
    ],
)
def test_json_patch_failures(case, operations, code):
    with pytest.raises(errors.ApiError) as caught:
        jsonpatch.json_patch(POD, operations)
    assert caught.value.code == code


def containers(result):
    return result["spec"]["containers"]


def test_strategic_merge_merges_containers_by_name_and_env_by_name():
    result = strategic.apply(
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "i:2",
                        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                    }
                ]
            }
        },
    )
    main = containers(result)[0]
    assert main["image"] == "i:2"
    assert main["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
        {"name": "C", "value": "4"},
    ]
    assert main["ports"] == [{"containerPort": 80}] and containers(result)[1]["name"] == "side"


def test_strategic_merge_honours_patch_delete_and_replace_directives():
    deleted = strategic.apply(POD, {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}})
    assert [c["name"] for c in containers(deleted)] == ["main"]
    replaced = strategic.apply(POD, {"spec": {"containers": [{"name": "new"}, {"$patch": "replace"}]}})
    assert containers(replaced) == [{"name": "new"}]
    map_replaced = strategic.apply(POD, {"metadata": {"labels": {"$patch": "replace", "only": "this"}}})
    assert map_replaced["metadata"]["labels"] == {"only": "this"}


def test_strategic_merge_treats_finalizers_as_a_set_and_deletes_from_primitive_lists():
    added = strategic.apply(POD, {"metadata": {"finalizers": ["a", "b"]}})
    assert added["metadata"]["finalizers"] == ["a", "b"]
    removed = strategic.apply(added, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == ["b"]


def test_strategic_merge_retain_keys_drops_the_others():
    deployment = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    result = strategic.apply(
        deployment, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    )
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_strategic_merge_replaces_lists_without_a_merge_key():
    result = strategic.apply(POD, {"spec": {"tolerations": [{"key": "u"}]}, "$setElementOrder/x": []})
    assert result["spec"]["tolerations"] == [{"key": "u"}]
