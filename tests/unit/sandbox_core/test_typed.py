"""Unknown fields of built-in kinds, from the field table extracted from the `kubernetes` client."""

from __future__ import annotations

import pytest
from superpod_sandbox.apiserver.registry import typed


def test_the_committed_field_table_matches_the_installed_client():
    assert typed.TABLE.read_text() == typed.render(typed.generate()), (
        "run `python -m superpod_sandbox.apiserver.registry.typed`"
    )


def test_unknown_fields_are_dropped_at_every_depth_and_reported_by_path():
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"any": "label"}, "bogus": 1},
        "spec": {
            "replicaz": 2,
            "template": {
                "spec": {"containers": [{"name": "c", "imagez": "i", "env": [{"name": "A", "valu": "1"}]}]}
            },
        },
    }
    dropped = typed.prune(deployment, ("apps", "deployments"))
    assert dropped == [
        "metadata.bogus",
        "spec.replicaz",
        "spec.template.spec.containers[0].imagez",
        "spec.template.spec.containers[0].env[0].valu",
    ]
    assert deployment["spec"]["template"]["spec"]["containers"] == [{"name": "c", "env": [{"name": "A"}]}]
    assert deployment["metadata"]["labels"] == {"any": "label"}


def test_kinds_without_a_model_are_left_alone():
    obj = {"anything": {"goes": 1}}
    assert typed.prune(obj, ("example.dev", "widgets")) == [] and obj == {"anything": {"goes": 1}}


@pytest.mark.parametrize(
    ("case", "spec", "message"),
    [
        (
            "a string for a number",
            {"replicas": "two"},
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        (
            "a string for an object",
            {"selector": "app=x"},
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.selector of type v1.LabelSelector",
        ),
        (
            "a number for a string in a list item",
            {"template": {"spec": {"containers": [{"name": "c", "image": 3}]}}},
            "json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image of type string",
        ),
    ],
)
def test_values_of_the_wrong_type_are_refused_as_go_s_decoder_words_it(case, spec, message):
    with pytest.raises(typed.Mismatch) as caught:
        typed.prune({"spec": spec}, ("apps", "deployments"))
    assert str(caught.value) == message


def test_quantities_in_maps_may_be_numbers_and_nulls_are_zero_values():
    pod = {"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1}}}], "nodeName": None}}
    assert typed.prune(pod, ("", "pods")) == []


def _node() -> dict:
    from superpod_sandbox.sim import hardware, layout, nodes

    fleet = layout.build(hardware.describe("cloudmatrix-384"))
    return nodes.node_object(
        fleet, fleet.nodes[1], "2026-12-07T00:00:00Z", ({"key": "k", "effect": "NoSchedule"},)
    )


@pytest.mark.parametrize(
    ("change", "clean"),
    [
        (lambda node: None, True),
        (lambda node: node["spec"].update(unschedulable=None, taints=None), True),  # null: Go's zero value
        (lambda node: node["status"]["capacity"].update(cpu=192), True),  # map values are not type-checked
        (lambda node: node["status"]["conditions"][0].update(extra="x"), False),  # unknown, in a list item
        (lambda node: node["spec"]["taints"][0].update(effect=1), False),  # a number for a string
        (lambda node: node["spec"].update(unschedulable="yes"), False),
        (lambda node: node["status"].update(conditions={"type": "Ready"}), False),  # a map for a list
        (lambda node: node["metadata"].update(labels=["a"]), False),  # a list for a map
        (lambda node: node["status"]["daemonEndpoints"]["kubeletEndpoint"].update(Port=True), False),  # bool
    ],
)
def test_the_one_walk_check_agrees_with_the_pruning_walk(change, clean):
    node = _node()
    change(node)
    assert typed._clean(node, "V1Node") is clean
    dropped: list[str] = []
    try:
        typed._prune_model(node, "V1Node", "", dropped)
    except typed.Mismatch:
        dropped.append("refused")
    assert (not dropped) is clean
