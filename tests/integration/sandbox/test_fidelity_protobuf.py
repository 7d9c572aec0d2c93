"""kubectl's `create` commands send protobuf bodies; the sandbox reads them for every built-in kind, as kube."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import TOOLS_BIN

KUBECTL = str(TOOLS_BIN / "kubectl")


@pytest.fixture
def kubectl(sandbox_thread, tmp_path):
    def run(*args, check=True):
        command = [
            KUBECTL,
            "--kubeconfig",
            sandbox_thread.kubeconfig,
            "--cache-dir",
            str(tmp_path / "c"),
            *args,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr}")
        return done

    return run


def get(kubectl, *args):
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_kubectl_create_commands_for_rbac_services_budgets_and_workloads(kubectl):
    kubectl("create", "role", "reader", "--verb=get,list", "--resource=pods,configmaps")
    kubectl("create", "clusterrole", "watcher", "--verb=watch", "--resource=nodes")
    kubectl("create", "rolebinding", "read", "--role=reader", "--serviceaccount=default:robot")
    kubectl("create", "clusterrolebinding", "watch", "--clusterrole=watcher", "--user=alice")
    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    kubectl("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=1")
    kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=8080")
    kubectl("create", "job", "once", "--image=busybox")
    kubectl("create", "priorityclass", "batch", "--value=100", "--description=batch work")

    rules = get(kubectl, "role", "reader")["rules"]
    assert rules == [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}]
    binding = get(kubectl, "rolebinding", "read")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}]
    assert get(kubectl, "clusterrolebinding", "watch")["subjects"][0]["name"] == "alice"
    service = get(kubectl, "service", "web")["spec"]
    assert service["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert service["clusterIP"] and service["type"] == "ClusterIP"
    assert get(kubectl, "pdb", "web")["spec"]["minAvailable"] == 1
    deployment = get(kubectl, "deployment", "web")["spec"]
    assert deployment["replicas"] == 3 and deployment["selector"] == {"matchLabels": {"app": "web"}}
    container = deployment["template"]["spec"]["containers"][0]
    assert (container["image"], container["ports"]) == (
        "nginx:1.27",
        [{"containerPort": 8080, "protocol": "TCP"}],
    )
    assert get(kubectl, "job", "once")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    priority_class = get(kubectl, "priorityclass", "batch")
    assert (priority_class["value"], priority_class["description"]) == (100, "batch work")


def test_kubectl_create_deployment_with_zero_replicas_keeps_the_zero(kubectl):
    kubectl("create", "deployment", "idle", "--image=nginx", "--replicas=0")
    assert get(kubectl, "deployment", "idle")["spec"]["replicas"] == 0


def test_kubectl_auth_can_i_sends_a_protobuf_review_that_is_answered(kubectl):
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
