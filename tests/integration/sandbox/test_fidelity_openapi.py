"""kube's own schemas of the built-in kinds, through the real kubectl: explain (v3 and v2), client-side apply's
strategic merge patches computed from them, and the `kubectl get -o yaml` / `kubectl apply -f` round trip of a
`kind: List`, which kubectl validates against `/openapi/v2` (gnostic protobuf)."""

from __future__ import annotations

import json
import urllib.request

import pytest
import yaml

from tests.integration.sandbox import widgets

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "sidecar", "image": "busybox:1"},
                ]
            },
        },
    },
}


@pytest.mark.parametrize(
    ("path", "kind", "field", "expected"),
    [
        ("pod.spec.containers", "Pod", "containers <[]Container>", "imagePullPolicy\t<string>"),
        ("deployment.spec.strategy", "Deployment", "strategy <DeploymentStrategy>", "rollingUpdate\t<"),
        ("jobs.spec.completionMode", "Job", "completionMode <string>", "Indexed"),
        ("configmap.data", "ConfigMap", "data <map[string]string>", "Data contains the configuration data"),
        ("svc.spec.ports", "Service", "ports <[]ServicePort>", "targetPort\t<IntOrString>"),
        ("pc.value", "PriorityClass", "FIELD: value <integer>", "actual priority that pods receive"),
        ("sa.automountServiceAccountToken", "ServiceAccount", "<boolean>", "AutomountServiceAccountToken"),
    ],
)
def test_explain_reads_kubes_field_schemas_of_built_in_kinds(kubectl, path, kind, field, expected):
    out = kubectl("explain", path).stdout
    assert f"KIND:       {kind}" in out
    assert field in out
    assert expected in out


def test_explain_recursive_and_the_v2_output_read_the_same_fields(kubectl):
    recursive = kubectl("explain", "pod.spec.securityContext", "--recursive").stdout
    assert "runAsNonRoot\t<boolean>" in recursive and "seccompProfile\t<SeccompProfile>" in recursive
    v2 = kubectl("explain", "pods.spec.restartPolicy", "--output", "plaintext-openapiv2").stdout
    assert "FIELD:    restartPolicy <string>" in v2 and "Restart policy for all containers" in v2
    missing = kubectl("explain", "pods.spec.nosuchfield", check=False)
    assert missing.returncode != 0 and 'field "nosuchfield" does not exist' in missing.stderr


def test_openapi_v2_answers_json_and_gnostic_protobuf(sandbox_thread):
    def get(accept: str) -> tuple[str, bytes]:
        request = urllib.request.Request(f"{sandbox_thread.url}/openapi/v2", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.headers["Content-Type"], answer.read()

    content_type, body = get("application/json")
    document = json.loads(body)
    assert content_type.startswith("application/json") and document["swagger"] == "2.0"
    pod = document["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in [parameter["name"] for parameter in patch["parameters"]]
    content_type, body = get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert content_type.startswith("application/com.github.proto-openapi.spec.v2")
    assert body[:1] == b"\x0a" and b"io.k8s.api.core.v1.PodSpec" in body  # field 1: swagger "2.0"


def test_a_kind_list_from_get_o_yaml_applies_back(kubectl):
    kubectl("create", "configmap", "settings", "--from-literal=level=3")
    kubectl("create", "deployment", "web", "--image=nginx:1")
    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    backup = kubectl("get", "configmap/settings", "deployment/web", "service/web", "-o", "yaml").stdout
    assert yaml.safe_load(backup)["kind"] == "List"
    kubectl("delete", "configmap/settings", "deployment/web", "service/web")

    restored = kubectl("apply", "-f", "-", stdin=backup)
    assert "configmap/settings created" in restored.stdout
    assert "deployment.apps/web created" in restored.stdout and "service/web created" in restored.stdout
    data = json.loads(kubectl("get", "configmap", "settings", "-o", "json").stdout)["data"]
    assert data == {"level": "3"}


def test_a_kind_list_with_an_unknown_field_is_refused_by_kubectls_validation(kubectl):
    listing = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "dataa": {"a": "1"}}],
    }
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(listing), check=False)
    assert refused.returncode != 0 and 'unknown field "dataa"' in refused.stderr
    assert kubectl("get", "configmap", "c", check=False).returncode != 0


def test_client_side_apply_merges_containers_by_name_from_the_schema(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(DEPLOYMENT))
    injected = {"spec": {"template": {"spec": {"containers": [{"name": "injected", "image": "proxy:1"}]}}}}
    kubectl("patch", "deployment", "web", "-p", json.dumps(injected))  # another writer's container
    changed = json.loads(json.dumps(DEPLOYMENT).replace("nginx:1", "nginx:2"))
    del changed["spec"]["template"]["spec"]["containers"][0]["env"]
    applied = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(changed))
    assert "error calculating patch" not in applied.stderr, applied.stderr
    containers = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)["spec"]["template"][
        "spec"
    ]["containers"]
    by_name = {container["name"]: container for container in containers}
    assert by_name["web"]["image"] == "nginx:2" and "env" not in by_name["web"]
    # merged by name: the other writer's container stays (a replaced list would have lost it)
    assert sorted(by_name) == ["injected", "sidecar", "web"]


def test_a_list_holding_custom_resources_round_trips_and_the_server_validates_them(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.widget("w1", size=7)))
    kubectl("create", "configmap", "settings", "--from-literal=level=3")
    backup = kubectl("get", "widget/w1", "configmap/settings", "-o", "yaml").stdout
    kubectl("delete", "widget/w1", "configmap/settings")
    restored = kubectl("apply", "-f", "-", stdin=backup)
    assert (
        "widget.example.dev/w1 created" in restored.stdout and "configmap/settings created" in restored.stdout
    )
    assert json.loads(kubectl("get", "widget", "w1", "-o", "json").stdout)["spec"]["size"] == 7

    listing = {"apiVersion": "v1", "kind": "List", "items": [widgets.widget("w2", size=3)]}
    listing["items"][0]["spec"]["sizee"] = 1
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(listing), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.sizee"' in refused.stderr
