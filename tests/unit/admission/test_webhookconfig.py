"""The managed MutatingWebhookConfiguration and the self-signed certificate it trusts."""

from __future__ import annotations

import base64
import ssl

import pytest
import yaml
from cryptography import x509
from superpod.cluster import certificates, webhookconfig

from tests.conftest import ROOT


def test_in_a_cluster_the_webhook_is_called_through_its_service():
    config = webhookconfig.client_config(ca_pem=b"PEM", service="superpod-system/superpod-operator")
    assert config == {
        "caBundle": base64.b64encode(b"PEM").decode(),
        "service": {
            "namespace": "superpod-system",
            "name": "superpod-operator",
            "path": "/mutate-pods",
            "port": 443,
        },
    }


def test_without_a_service_the_webhook_is_called_at_its_url():
    config = webhookconfig.client_config(ca_pem=b"PEM", host="127.0.0.1", port=9443)
    assert config["url"] == "https://127.0.0.1:9443/mutate-pods"


def test_a_service_must_name_its_namespace():
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        webhookconfig.client_config(ca_pem=b"PEM", service="superpod-operator")


def test_only_labelled_pod_creates_are_sent_and_failures_refuse_them():
    (hook,) = webhookconfig.configuration({"url": "https://x"})["webhooks"]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "superpod.dev/partition", "operator": "Exists"}]
    }
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert (hook["failurePolicy"], hook["sideEffects"], hook["timeoutSeconds"]) == ("Fail", "NoneOnDryRun", 5)
    assert hook["namespaceSelector"] == {}


def test_a_namespaced_operator_only_takes_its_namespaces_pods():
    (hook,) = webhookconfig.configuration({"url": "https://x"}, namespace="team-a")["webhooks"]
    assert hook["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "team-a"}}


def test_the_managed_webhook_is_the_one_the_chart_renders():
    """Whoever owns the configuration (operator or chart), kube-apiserver sees the same webhook."""
    text = (ROOT / "helm/superpod-operator/templates/webhook.yaml").read_text()
    for setting in (
        "name: pods.superpod.dev",
        "path: /mutate-pods",
        'operations: ["CREATE"]',
        "key: superpod.dev/partition",
    ):
        assert setting in text
    ours = yaml.safe_dump(webhookconfig.configuration({"url": "https://x"}))
    assert "name: pods.superpod.dev" in ours and "sideEffects: NoneOnDryRun" in ours


def test_pods_and_bindings_are_validated_in_every_namespace_and_fail_closed():
    config = webhookconfig.validating_configuration({"url": "https://x/validate-pods"})
    pods, bindings = config["webhooks"]
    assert (config["kind"], pods["name"], bindings["name"]) == (
        "ValidatingWebhookConfiguration",
        "validate-pods.superpod.dev",
        "validate-bindings.superpod.dev",
    )
    assert pods["rules"][0]["operations"] == ["CREATE", "UPDATE"] and pods["rules"][0]["resources"] == [
        "pods"
    ]
    assert bindings["rules"][0]["resources"] == ["pods/binding", "bindings"]
    assert bindings["matchConditions"] == [
        {"name": "not-kube-scheduler", "expression": "request.userInfo.username != 'system:kube-scheduler'"}
    ]
    for hook in (pods, bindings):
        assert (hook["failurePolicy"], hook["sideEffects"], hook["namespaceSelector"]) == ("Fail", "None", {})
        assert "objectSelector" not in hook  # a pod without the label must be seen too


def test_the_device_resources_are_every_builtin_profiles():
    assert webhookconfig.DEVICE_RESOURCES == ("huawei.com/Ascend910", "huawei.com/npu", "nvidia.com/gpu")
    chart = yaml.safe_load((ROOT / "helm/superpod-operator/values.yaml").read_text())
    assert tuple(chart["webhook"]["deviceResources"]) == webhookconfig.DEVICE_RESOURCES


def test_the_self_signed_certificate_serves_its_hosts_and_is_trusted_through_the_ca(tmp_path):
    files = certificates.self_signed(["superpod-operator.system.svc", "127.0.0.1"], str(tmp_path))
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["superpod-operator.system.svc"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(files.cert_file, files.key_file)  # the key matches the certificate
    trust = ssl.create_default_context(cadata=files.ca_pem.decode())
    assert trust.cert_store_stats()["x509_ca"] == 1
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0


def test_a_mounted_secret_uses_its_ca_file_when_there_is_one(tmp_path):
    made = certificates.self_signed(["a.example"], str(tmp_path))
    assert certificates.mounted(made.cert_file, made.key_file).ca_pem != made.ca_pem  # no ca.crt: the chain
    (tmp_path / "ca.crt").write_bytes(made.ca_pem)
    assert certificates.mounted(made.cert_file, made.key_file).ca_pem == made.ca_pem
