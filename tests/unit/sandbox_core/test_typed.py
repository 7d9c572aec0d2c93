"""Unknown fields of built-in kinds, from the field table extracted from the `kubernetes` client."""

from __future__ import annotations

from superpod.sandbox import typed


def test_the_committed_field_table_matches_the_installed_client():
    assert typed.TABLE.read_text() == typed.render(typed.generate()), "run `python -m superpod.sandbox.typed`"


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
