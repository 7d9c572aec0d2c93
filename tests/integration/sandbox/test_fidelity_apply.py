"""Server-side apply and allocated fields as kube-apiserver keeps them: what the server allocates or generates
at create (a Service's clusterIP, clusterIPs and IP families; a Job's selector and its labels) belongs to no
manager, so moving from client-side to server-side apply never removes it, and an update that leaves a
Service's addresses out keeps them."""

from __future__ import annotations

import json

import yaml

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
}


def _get(kubectl, *what: str) -> dict:
    return json.loads(kubectl("get", *what, "-o", "json", "--show-managed-fields").stdout)


def _owned(obj: dict) -> str:
    return json.dumps([entry["fieldsV1"] for entry in obj["metadata"].get("managedFields", [])])


def test_server_side_apply_after_client_side_apply_keeps_the_cluster_ip(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(SERVICE))
    created = _get(kubectl, "service", "web")
    address = created["spec"]["clusterIP"]
    assert address and created["spec"]["clusterIPs"] == [address]
    assert "f:clusterIP" not in _owned(created) and "f:ipFamilies" not in _owned(created)

    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(SERVICE))
    applied = _get(kubectl, "service", "web")
    assert applied["spec"]["clusterIP"] == address and applied["spec"]["clusterIPs"] == [address]
    assert applied["spec"]["type"] == "ClusterIP" and applied["spec"]["ports"][0]["protocol"] == "TCP"
    assert {entry["manager"] for entry in applied["metadata"]["managedFields"]} >= {"kubectl"}


def test_a_cluster_ip_the_client_chose_is_the_clients(kubectl):
    chosen = {**SERVICE, "spec": {**SERVICE["spec"], "clusterIP": "10.96.200.7"}}
    kubectl("create", "-f", "-", stdin=yaml.safe_dump(chosen))
    created = _get(kubectl, "service", "web")
    assert created["spec"]["clusterIP"] == "10.96.200.7" and "f:clusterIP" in _owned(created)


def test_a_replace_without_the_allocated_addresses_keeps_them(kubectl):
    kubectl("create", "-f", "-", stdin=yaml.safe_dump(SERVICE))
    address = _get(kubectl, "service", "web")["spec"]["clusterIP"]
    replaced = {**SERVICE, "spec": {**SERVICE["spec"], "ports": [{"port": 8080}]}}
    kubectl("replace", "-f", "-", stdin=yaml.safe_dump(replaced))
    after = _get(kubectl, "service", "web")["spec"]
    assert after["clusterIP"] == address and after["ports"][0]["port"] == 8080


def test_a_jobs_generated_selector_belongs_to_no_manager(kubectl):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
        },
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(job))
    created = _get(kubectl, "job", "train")
    assert created["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"]
    assert "f:selector" not in _owned(created) and "controller-uid" not in _owned(created)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(job))
    applied = _get(kubectl, "job", "train")
    assert applied["spec"]["selector"] == created["spec"]["selector"]


def test_strategic_merge_uses_kubes_merge_keys_such_as_webhooks_by_name(kubectl):
    def webhook(name: str) -> dict:
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {"url": f"https://127.0.0.1:9/{name}"},
            "rules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
            ],
        }

    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "checks"},
        "webhooks": [webhook("a.example.dev"), webhook("b.example.dev")],
    }
    kubectl("create", "-f", "-", stdin=yaml.safe_dump(configuration))
    patch = {"webhooks": [{"name": "b.example.dev", "timeoutSeconds": 3}]}
    kubectl(
        "patch", "validatingwebhookconfiguration", "checks", "--type", "strategic", "-p", json.dumps(patch)
    )
    webhooks = _get(kubectl, "validatingwebhookconfiguration", "checks")["webhooks"]
    assert [(w["name"], w.get("timeoutSeconds")) for w in webhooks] == [
        ("a.example.dev", 10),
        ("b.example.dev", 3),
    ]
