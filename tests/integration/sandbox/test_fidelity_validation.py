"""Built-in kinds are validated as kube validates them, where kube's published schemas say how: required fields
are refused when missing (`spec.selector: Required value`), and the fields kube pins after create (a Job's
selector and pod template, an apps/v1 selector) are refused when changed, while the others still change."""

from __future__ import annotations

import json

import yaml

POD_SPEC = {"containers": [{"name": "c", "image": "busybox"}]}


def deployment(selector: dict | None, labels: dict, image: str = "busybox") -> dict:
    spec: dict = {
        "replicas": 1,
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}]}},
    }
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def test_a_deployment_without_a_selector_is_refused_with_kubes_message(kubectl):
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment(None, {"app": "web"})), check=False)
    assert refused.returncode != 0
    assert 'The Deployment "web" is invalid: spec.selector: Required value' in refused.stderr
    assert kubectl("get", "deployments", "-o", "name").stdout == ""  # nothing was stored


def test_missing_fields_deep_in_lists_are_named_by_their_index(kubectl):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}, {"image": "busybox"}]},
    }
    refused = kubectl("create", "-f", "-", stdin=yaml.safe_dump(pod), check=False)
    assert 'The Pod "p" is invalid: spec.containers[1].name: Required value' in refused.stderr
    empty = {**pod, "spec": {}}
    refused = kubectl("create", "-f", "-", stdin=yaml.safe_dump(empty), check=False)
    assert 'The Pod "p" is invalid: spec.containers: Required value' in refused.stderr
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "a"}, {"kind": "ServiceAccount"}],
    }
    refused = kubectl("create", "-f", "-", stdin=yaml.safe_dump(binding), check=False)
    assert 'The RoleBinding "b" is invalid: subjects[1].name: Required value' in refused.stderr


def test_a_jobs_selector_and_template_are_immutable_and_its_parallelism_is_not(kubectl):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "parallelism": 1,
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {**POD_SPEC, "restartPolicy": "Never"},
            },
        },
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job))
    changed = json.loads(json.dumps(job))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(changed), check=False)
    assert 'The Job "train" is invalid: spec.template: Invalid value: ' in refused.stderr
    assert "field is immutable" in refused.stderr
    refused = kubectl(
        "patch",
        "job",
        "train",
        "--type=merge",
        "-p",
        '{"spec":{"selector":{"matchLabels":{"x":"y"}}}}',
        check=False,
    )
    assert 'The Job "train" is invalid: spec.selector: Invalid value: ' in refused.stderr
    kubectl("patch", "job", "train", "--type=merge", "-p", '{"spec":{"parallelism":3}}')
    stored = json.loads(kubectl("get", "job", "train", "-o", "json").stdout)
    assert stored["spec"]["parallelism"] == 3
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    assert "x" not in stored["spec"]["selector"]["matchLabels"]


def test_a_deployments_selector_is_immutable_in_apps_v1_and_its_template_is_not(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment({"app": "a"}, {"app": "a"})))
    moved = deployment({"app": "b"}, {"app": "b"})
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(moved), check=False)
    assert 'The Deployment "web" is invalid: spec.selector: Invalid value: ' in refused.stderr
    assert "field is immutable" in refused.stderr
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(deployment({"app": "a"}, {"app": "a"}, image="nginx")))
    stored = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert stored["spec"]["selector"] == {"matchLabels": {"app": "a"}}
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
