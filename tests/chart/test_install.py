"""`helm install`, `helm upgrade` and `helm uninstall` of the chart against the sandbox API server.

The sandbox has no kubelet, so nothing runs: this checks that the API accepts every object the chart makes,
that the CRDs are served after install, that an upgrade keeps the chart-generated webhook CA (the `lookup`
of the existing Secret), and that uninstall removes the release but leaves the CRDs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from superpod_sandbox.apiserver import server

from tests import conftest
from tests.chart import helm as chart_helm

RELEASE = "superpod-operator"
NAMESPACE = "superpod-system"
KUBECTL = conftest.TOOLS_BIN / "kubectl"


@pytest.fixture
def api() -> Iterator[server.Sandbox]:
    with server.in_thread() as sandbox:
        yield sandbox


def _helm(helm: chart_helm.Helm, api: server.Sandbox, *args: str) -> str:
    result = helm.run(*args, "--kubeconfig", api.kubeconfig, "--namespace", NAMESPACE)
    assert result.returncode == 0, f"helm {args[0]} failed: {result.stderr}"
    return result.stdout


def _kubectl_binary() -> str:
    if not KUBECTL.exists():
        pytest.skip(f"kubectl is not installed at {KUBECTL}: run `make tools` (make test does)")
    return str(KUBECTL)


def _kubectl(api: server.Sandbox, *args: str) -> dict:
    result = subprocess.run(
        [_kubectl_binary(), "--kubeconfig", api.kubeconfig, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _names(listing: dict) -> set[str]:
    return {item["metadata"]["name"] for item in listing["items"]}


def test_install_upgrade_and_uninstall_against_the_sandbox(helm, api):
    _helm(helm, api, "install", RELEASE, str(chart_helm.CHART), "--create-namespace")

    crds = _names(_kubectl(api, "get", "customresourcedefinitions"))
    assert {
        "superpods.superpod.dev",
        "superpodpartitions.superpod.dev",
        "clusterkopfpeerings.kopf.dev",
    } <= crds
    assert _kubectl(api, "get", "superpods")["items"] == []  # the CRD is served
    assert _kubectl(api, "get", "superpodpartitions", "--all-namespaces")["items"] == []
    assert _names(_kubectl(api, "get", "clusterkopfpeerings")) == set()  # the replicas share Leases instead
    assert _names(_kubectl(api, "-n", NAMESPACE, "get", "roles")) == {f"{RELEASE}-leases"}
    deployment = _kubectl(api, "-n", NAMESPACE, "get", "deployment", RELEASE)
    assert deployment["spec"]["replicas"] == 2
    secret = _kubectl(api, "-n", NAMESPACE, "get", "secret", f"{RELEASE}-webhook-tls")
    webhook = _kubectl(api, "get", "mutatingwebhookconfiguration", RELEASE)
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    _helm(helm, api, "upgrade", RELEASE, str(chart_helm.CHART), "--set", "replicaCount=3")
    assert _kubectl(api, "-n", NAMESPACE, "get", "deployment", RELEASE)["spec"]["replicas"] == 3
    upgraded_secret = _kubectl(api, "-n", NAMESPACE, "get", "secret", f"{RELEASE}-webhook-tls")
    assert upgraded_secret["data"] == secret["data"], "the upgrade replaced the webhook certificate"
    upgraded_webhook = _kubectl(api, "get", "mutatingwebhookconfiguration", RELEASE)
    assert upgraded_webhook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    _helm(helm, api, "uninstall", RELEASE)
    assert RELEASE not in _names(_kubectl(api, "-n", NAMESPACE, "get", "deployments"))
    assert RELEASE not in _names(_kubectl(api, "get", "mutatingwebhookconfigurations"))
    assert RELEASE not in _names(_kubectl(api, "get", "clusterroles"))
    assert crds <= _names(_kubectl(api, "get", "customresourcedefinitions")), "helm must leave the CRDs"


def test_a_namespaced_install_with_an_operator_managed_webhook(helm, api):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "training"}}
    created = subprocess.run(
        [_kubectl_binary(), "--kubeconfig", api.kubeconfig, "apply", "-f", "-"],
        input=json.dumps(namespace),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    _helm(
        helm,
        api,
        "install",
        RELEASE,
        str(chart_helm.CHART),
        "--create-namespace",
        "--set",
        "webhook.configManagedBy=operator",
        "--set",
        "operator.watchNamespace=training",
    )
    assert _names(_kubectl(api, "get", "clusterkopfpeerings")) == set()
    # pods, partitions and rank tables: one Role in the namespace it serves; the Leases: one where it runs
    assert _names(_kubectl(api, "-n", "training", "get", "roles")) == {RELEASE}
    assert _names(_kubectl(api, "-n", NAMESPACE, "get", "roles")) == {f"{RELEASE}-leases"}
    assert RELEASE not in _names(_kubectl(api, "get", "mutatingwebhookconfigurations"))
    _helm(helm, api, "uninstall", RELEASE)
    assert _names(_kubectl(api, "-n", "training", "get", "roles")) == set()
