"""What the chart renders does what the operator contract and the issue ask: the hardened Deployment with
the contract's flags, the webhook with a certificate the API server can trust, monitoring objects, the PDB."""

from __future__ import annotations

import argparse
import base64
import datetime
import json

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from superpod.api import inusepolicy
from superpod.cluster import webhookconfig
from superpod.controller import settings as operator_settings

from tests.chart import helm as chart_helm

FULLNAME = "superpod-superpod-operator"
CONTRACT_FLAGS = {
    "--namespace",
    "--peering",
    "--coordination",
    "--lease-namespace",
    "--lease-duration",
    "--renew-deadline",
    "--retry-period",
    "--standalone",
    "--health-port",
    "--metrics-port",
    "--webhook-port",
    "--tls-cert-file",
    "--tls-key-file",
    "--webhook-config",
    "--webhook-service",
    "--webhook-host",
    "--bind-address",
    "--metrics-secure",
    "--metrics-host",
    "--verbose",
}


def _pod(manifests):
    return chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]


def _container(manifests):
    (container,) = _pod(manifests)["containers"]
    return container


def test_the_operator_runs_two_replicas_spread_across_nodes(rendered):
    manifests = rendered("the default values")
    deployment = chart_helm.one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = _pod(manifests)
    selector = deployment["spec"]["selector"]["matchLabels"]
    (preferred,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == selector


def test_the_container_is_hardened(rendered):
    manifests = rendered("every optional feature is on")
    pod, container = _pod(manifests), _container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_both_probes_ask_the_kopf_health_endpoint(rendered):
    container = _container(rendered("the default values"))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert ports[container[probe]["httpGet"]["port"]] == 8081
    assert ports == {"health": 8081, "metrics": 8080, "webhook": 9443}


ARGS = {
    "the default values": [
        "--coordination=leases",
        "--lease-namespace=superpod-system",
        "--lease-duration=10",
        "--renew-deadline=7",
        "--retry-period=2",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-secure",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=external",
    ],
    "the operator manages its webhook configuration": [
        "--coordination=leases",
        "--lease-namespace=superpod-system",
        "--lease-duration=10",
        "--renew-deadline=7",
        "--retry-period=2",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-secure",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=managed",
        f"--webhook-service=superpod-system/{FULLNAME}",
    ],
    "a single standalone replica": [
        "--standalone",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-secure",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=external",
    ],
    "replicas with kopf peering": [
        "--peering=superpod-operator",
        "--coordination=peering",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-secure",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=external",
    ],
    "metrics over plain HTTP inside the pod": [
        "--coordination=leases",
        "--lease-namespace=superpod-system",
        "--lease-duration=10",
        "--renew-deadline=7",
        "--retry-period=2",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-host=127.0.0.1",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=external",
    ],
    "every optional feature is on": [
        "--coordination=leases",
        "--lease-namespace=superpod-system",
        "--lease-duration=10",
        "--renew-deadline=7",
        "--retry-period=2",
        "--namespace=training",
        "--health-port=8081",
        "--metrics-port=8080",
        "--webhook-port=9443",
        "--webhook-host=0.0.0.0",
        "--bind-address=0.0.0.0",
        "--metrics-secure",
        "--tls-cert-file=/etc/superpod/tls/tls.crt",
        "--tls-key-file=/etc/superpod/tls/tls.key",
        "--webhook-config=external",
        "--verbose",
    ],
}


@pytest.mark.parametrize("case", ARGS)
def test_the_operator_gets_the_contract_flags(rendered, case):
    container = _container(rendered(case))
    assert "command" not in container, "the image's ENTRYPOINT (superpod run) must stay"
    assert container["args"] == ARGS[case]
    assert {arg.split("=")[0] for arg in container["args"]} <= CONTRACT_FLAGS


@pytest.mark.parametrize(
    ("case", "leased"), [("the default values", True), ("replicas with kopf peering", False)]
)
def test_a_replica_is_named_in_the_leases_after_its_pod(rendered, case, leased):
    identity = [env for env in _container(rendered(case))["env"] if env["name"] == "SUPERPOD_IDENTITY"]
    assert identity == ([{"name": "SUPERPOD_IDENTITY", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
                        if leased else [])  # fmt: skip


def test_lease_timings_that_would_let_two_replicas_write_are_refused(helm):
    """A replica must stop writing (renew deadline) before its Lease expires for the others (duration)."""
    for timings in ({"renewDeadline": 10}, {"retryPeriod": 7}, {"duration": 5}):
        result = helm.run("template", "superpod", str(chart_helm.CHART), "--set-json",
                          f"operator.leases={json.dumps({'duration': 10, 'renewDeadline': 7, 'retryPeriod': 2} | timings)}")  # fmt: skip
        assert result.returncode != 0
        assert "retryPeriod < renewDeadline < duration" in result.stderr


def test_the_tls_files_the_flags_name_are_the_mounted_secret(rendered):
    manifests = rendered("the default values")
    pod, container = _pod(manifests), _container(manifests)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/superpod/tls")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    secret = chart_helm.one(manifests, "Secret")
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key"} <= set(secret["data"])


def test_the_image_defaults_to_the_chart_app_version(rendered):
    chart = yaml.safe_load((chart_helm.CHART / "Chart.yaml").read_text())
    assert _container(rendered("the default values"))["image"] == (
        f"ghcr.io/superpod-dev/superpod-operator:{chart['appVersion']}"
    )
    assert _container(rendered("every optional feature is on"))["image"].endswith("@sha256:" + "0" * 64)


def test_the_service_exposes_metrics_and_the_webhook_on_443(rendered):
    manifests = rendered("the default values")
    service = chart_helm.one(manifests, "Service")
    ports = {port["name"]: (port["port"], port["targetPort"]) for port in service["spec"]["ports"]}
    assert ports == {"metrics": (8080, "metrics"), "webhook": (443, "webhook")}
    pod_labels = chart_helm.one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_the_chart_managed_webhook_sends_only_labelled_pod_creations(rendered):
    manifests = rendered("the default values")
    (webhook,) = chart_helm.one(manifests, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["objectSelector"] == {
        "matchExpressions": [{"key": "superpod.dev/partition", "operator": "Exists"}]
    }
    assert webhook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["sideEffects"] == "NoneOnDryRun"  # claiming a slot is a side effect, skipped on dry runs
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["timeoutSeconds"] == 5
    assert webhook["clientConfig"]["service"] == {
        "namespace": "superpod-system",
        "name": chart_helm.one(manifests, "Service")["metadata"]["name"],
        "path": "/mutate-pods",
        "port": 443,
    }


def test_the_chart_generated_certificate_is_trusted_by_the_webhook_configuration(rendered):
    manifests = rendered("the default values")
    secret = chart_helm.one(manifests, "Secret")["data"]
    (webhook,) = chart_helm.one(manifests, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["clientConfig"]["caBundle"] == secret["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["ca.crt"]))
    serving = x509.load_pem_x509_certificate(base64.b64decode(secret["tls.crt"]))
    public_key = ca.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert serving.signature_hash_algorithm is not None
    public_key.verify(
        serving.signature, serving.tbs_certificate_bytes, padding.PKCS1v15(), serving.signature_hash_algorithm
    )
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    service = f"{FULLNAME}.superpod-system.svc"
    assert service in names.get_values_for_type(x509.DNSName)
    assert serving.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)


def test_cert_manager_issues_the_secret_the_operator_mounts(rendered):
    manifests = rendered("cert-manager issues the certificate with its own self-signed Issuer")
    assert chart_helm.find(manifests, "Secret") == []
    certificate = chart_helm.one(manifests, "Certificate")
    issuer = chart_helm.one(manifests, "Issuer")
    assert certificate["spec"]["issuerRef"] == {
        "name": issuer["metadata"]["name"],
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert f"{FULLNAME}.superpod-system.svc" in certificate["spec"]["dnsNames"]
    volume = next(v for v in _pod(manifests)["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = chart_helm.one(manifests, kind)
        assert configuration["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": f"superpod-system/{certificate['metadata']['name']}"
        }
        assert all("caBundle" not in hook["clientConfig"] for hook in configuration["webhooks"])


def test_cert_manager_can_use_an_existing_cluster_issuer(rendered):
    manifests = rendered("cert-manager issues the certificate from an existing ClusterIssuer")
    assert chart_helm.find(manifests, "Issuer") == []
    assert chart_helm.one(manifests, "Certificate")["spec"]["issuerRef"] == {
        "name": "corporate-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


@pytest.mark.parametrize(
    "case",
    [
        "the operator manages its webhook configuration",
        "the operator manages its webhook configuration with cert-manager",
    ],
)
def test_an_operator_managed_webhook_configuration_is_not_rendered(rendered, case):
    assert chart_helm.find(rendered(case), "MutatingWebhookConfiguration") == []
    assert chart_helm.find(rendered(case), "ValidatingWebhookConfiguration") == []


def test_a_namespaced_operator_gets_webhook_calls_from_its_namespace_only(rendered):
    (webhook,) = chart_helm.one(rendered("every optional feature is on"), "MutatingWebhookConfiguration")[
        "webhooks"
    ]
    assert webhook["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "training"}}


def test_the_service_monitor_scrapes_the_metrics_port_as_job_superpod_operator(rendered):
    manifests = rendered("monitoring is on")
    monitor = chart_helm.one(manifests, "ServiceMonitor")
    service = chart_helm.one(manifests, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "superpod-operator"


def test_the_prometheus_rule_holds_the_recording_rules_and_the_alerts(rendered):
    rule = chart_helm.one(rendered("monitoring is on"), "PrometheusRule")
    files = [chart_helm.CHART / "files" / name for name in ("recording-rules.yaml", "alerts.yaml")]
    expected = [
        group for path in files if path.exists() for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == expected
    assert any(r.get("alert") for group in expected for r in group["rules"])


def test_the_dashboard_configmap_carries_the_grafana_label_and_the_dashboard(rendered):
    configmap = next(
        m
        for m in chart_helm.find(rendered("the default values"), "ConfigMap")
        if m["metadata"]["name"].endswith("-dashboard")
    )
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = configmap["data"].values()
    assert json.loads(content) == json.loads((chart_helm.CHART / "files" / "dashboard.json").read_text())


def test_monitoring_off_renders_no_monitoring_objects(rendered):
    kinds = {m["kind"] for m in rendered("monitoring is off")}
    assert kinds & {"ServiceMonitor", "PrometheusRule", "ConfigMap"} == set()


def test_the_default_values_leave_prometheus_operator_objects_out(rendered):
    kinds = {m["kind"] for m in rendered("the default values")}
    assert kinds & {"ServiceMonitor", "PrometheusRule"} == set()


def test_a_pod_disruption_budget_keeps_one_replica(rendered):
    manifests = rendered("the default values")
    budget = chart_helm.one(manifests, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    selector = chart_helm.one(manifests, "Deployment")["spec"]["selector"]
    assert budget["spec"]["selector"] == selector


@pytest.mark.parametrize("case", ["a single standalone replica", "a single replica with peering"])
def test_a_single_replica_gets_no_disruption_budget(rendered, case):
    assert chart_helm.find(rendered(case), "PodDisruptionBudget") == []


def test_peering_replicas_share_a_cluster_peering_object(rendered):
    peering = chart_helm.one(rendered("replicas with kopf peering"), "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "superpod-operator"
    assert chart_helm.find(rendered("replicas with kopf peering"), "KopfPeering") == []
    assert chart_helm.find(rendered("a single standalone replica"), "ClusterKopfPeering") == []


@pytest.mark.parametrize("case", ["the default values", "every optional feature is on"])
def test_replicas_sharing_on_leases_need_no_peering_object(rendered, case):
    kinds = {manifest["kind"] for manifest in rendered(case)}
    assert kinds & {"ClusterKopfPeering", "KopfPeering"} == set()


@pytest.mark.parametrize(
    ("case", "replicas"), [("the default values", 2), ("three replicas share the SuperPods", 3)]
)
def test_every_replica_works_and_a_budget_keeps_one(rendered, case, replicas):
    """With Leases replicas mean capacity: all of them run the operator, and a disruption leaves one."""
    manifests = rendered(case)
    assert chart_helm.one(manifests, "Deployment")["spec"]["replicas"] == replicas
    assert "--coordination=leases" in _container(manifests)["args"]
    assert chart_helm.one(manifests, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_a_namespaced_operator_gets_a_peering_object_in_its_namespace(rendered):
    manifests = rendered("a namespaced operator with kopf peering")
    assert chart_helm.find(manifests, "ClusterKopfPeering") == []
    peering = chart_helm.one(manifests, "KopfPeering")
    assert (peering["metadata"]["name"], peering["metadata"]["namespace"]) == (
        "superpod-operator",
        "training",
    )


@pytest.mark.parametrize("case", ["the default values", "every optional feature is on"])
def test_namespaced_objects_live_in_the_release_namespace(rendered, case):
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ClusterKopfPeering",
    }
    for manifest in rendered(case):
        if manifest["kind"] in cluster_scoped:
            assert "namespace" not in manifest["metadata"]
        elif manifest["kind"] in ("Role", "RoleBinding") and manifest["metadata"]["name"].endswith("-leases"):
            assert manifest["metadata"]["namespace"] == "superpod-system"  # the Leases live with the operator
        elif manifest["kind"] in ("KopfPeering", "Role", "RoleBinding"):
            assert manifest["metadata"]["namespace"] == "training", manifest["kind"]  # the watched namespace
        else:
            assert manifest["metadata"]["namespace"] == "superpod-system", manifest["kind"]


@pytest.mark.parametrize("case", ARGS)
def test_superpod_run_accepts_the_chart_flags_and_environment(rendered, case):
    """The operator's own parser reads what the chart passes, so a renamed flag fails here, not in a pod."""
    container = _container(rendered(case))
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_settings.add_arguments(parser)
    args = parser.parse_args(container["args"])
    environment = {env["name"]: env["value"] for env in container["env"] if "value" in env}
    settings = operator_settings.from_sources(args, environ=environment)
    assert settings.health_port == 8081
    assert settings.metrics_port == 8080
    assert settings.webhook_port == 9443
    assert settings.webhook_host == "0.0.0.0"
    assert settings.tls_cert_file == "/etc/superpod/tls/tls.crt"
    assert settings.tls_key_file == "/etc/superpod/tls/tls.key"
    managed = case == "the operator manages its webhook configuration"
    assert settings.webhook_config == ("managed" if managed else "external")
    assert settings.webhook_service == (f"superpod-system/{FULLNAME}" if managed else None)
    assert settings.standalone is (case == "a single standalone replica")
    expected = {"a single standalone replica": "leases", "replicas with kopf peering": "peering"}
    assert settings.coordination == expected.get(case, "leases")
    if not settings.standalone and settings.coordination == "leases":
        assert settings.lease_namespace == "superpod-system"
        assert (settings.retry_period, settings.renew_deadline, settings.lease_duration) == (2.0, 7.0, 10.0)
    assert settings.namespace == ("training" if case == "every optional feature is on" else None)


@pytest.mark.parametrize(
    ("case", "namespace"), [("the default values", None), ("every optional feature is on", "training")]
)
def test_the_chart_renders_the_same_webhook_the_operator_writes_in_managed_mode(rendered, case, namespace):
    """Whichever owns the configuration (webhook.configManagedBy), the API server sees the same webhook."""
    (chart_webhook,) = chart_helm.one(rendered(case), "MutatingWebhookConfiguration")["webhooks"]
    operator_configuration = webhookconfig.configuration(
        webhookconfig.client_config(ca_pem=b"unused", service="superpod-system/superpod-superpod-operator"),
        namespace=namespace,
    )
    (operator_webhook,) = operator_configuration["webhooks"]
    assert chart_webhook["clientConfig"]["service"] == operator_webhook["clientConfig"]["service"]
    assert {k: v for k, v in chart_webhook.items() if k != "clientConfig"} == {
        k: v for k, v in operator_webhook.items() if k != "clientConfig"
    }


@pytest.mark.parametrize("case", ["the default values", "every optional feature is on"])
def test_the_chart_renders_the_same_validating_webhooks_the_operator_writes_in_managed_mode(rendered, case):
    """The pod and binding validation, with its CEL matchConditions, is the same whoever owns it."""
    chart_webhooks = chart_helm.one(rendered(case), "ValidatingWebhookConfiguration")["webhooks"]
    operator_webhooks = webhookconfig.validating_configuration(
        webhookconfig.client_config(
            ca_pem=b"unused", service="superpod-system/superpod-superpod-operator", path="/validate-pods"
        )
    )["webhooks"]
    assert [hook["name"] for hook in chart_webhooks] == [hook["name"] for hook in operator_webhooks]
    for chart_webhook, operator_webhook in zip(chart_webhooks, operator_webhooks, strict=True):
        assert chart_webhook["clientConfig"]["service"] == operator_webhook["clientConfig"]["service"]
        assert {k: v for k, v in chart_webhook.items() if k != "clientConfig"} == {
            k: v for k, v in operator_webhook.items() if k != "clientConfig"
        }


def _policy(manifests: list, suffix: str) -> dict:
    """The chart's ValidatingAdmissionPolicy (or binding) whose name ends with `suffix`."""
    (found,) = [m for m in manifests if m["metadata"]["name"].endswith(suffix)]
    return found


def _policies(manifests: list, suffix: str) -> tuple[dict, dict]:
    policies = [m for m in manifests if m["kind"] == "ValidatingAdmissionPolicy"]
    bindings = [m for m in manifests if m["kind"] == "ValidatingAdmissionPolicyBinding"]
    return _policy(policies, suffix), _policy(bindings, suffix)


def test_only_the_operator_service_account_may_write_status_by_the_chart_policy(rendered):
    manifests = rendered("the default values")
    policy, binding = _policies(manifests, "-status-writers")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["superpods/status", "superpodpartitions/status"]
    account = chart_helm.one(manifests, "ServiceAccount")["metadata"]
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"] == (
        f"request.userInfo.username in ['system:serviceaccount:{account['namespace']}:{account['name']}']"
    )


def test_the_status_policy_can_be_turned_off_or_widened(helm):
    off = helm.template({"statusIntegrity": {"enabled": False}})
    assert [m["metadata"]["name"] for m in chart_helm.find(off, "ValidatingAdmissionPolicy")] == [
        "superpod-superpod-operator-rank-table-writes",
        "superpod-superpod-operator-in-use-guard",
    ]
    widened = helm.template({"statusIntegrity": {"enabled": True, "extraWriters": ["break-glass"]}})
    (validation,) = _policies(widened, "-status-writers")[0]["spec"]["validations"]
    assert validation["expression"].endswith(",'break-glass']")


def test_only_the_operator_service_account_may_remove_the_in_use_finalizer_by_the_chart_policy(
    rendered, helm
):
    manifests = rendered("the default values")
    policy, binding = _policies(manifests, "-in-use-guard")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    # the object itself (finalizers are metadata: never changed through /status), updates only
    assert (rule["resources"], rule["operations"]) == (["superpodpartitions"], ["UPDATE"])
    account = chart_helm.one(manifests, "ServiceAccount")["metadata"]
    operator = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    (validation,) = policy["spec"]["validations"]
    assert validation["expression"] == f"request.userInfo.username in ['{operator}']"
    assert operator in validation["messageExpression"]
    widened = helm.template({"inUseGuard": {"enabled": True, "extraRemovers": ["break-glass"]}})
    (validation,) = _policies(widened, "-in-use-guard")[0]["spec"]["validations"]
    assert validation["expression"].endswith(",'break-glass']")
    off = helm.template({"inUseGuard": {"enabled": False}})
    assert not [m for m in off if m["metadata"]["name"].endswith("-in-use-guard")]


MUTATING_POLICIES = ["--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"]


def test_partitions_get_the_in_use_finalizer_at_creation_where_mutating_policies_are_served(helm):
    manifests = helm.template(extra=MUTATING_POLICIES)
    (policy,) = chart_helm.find(manifests, "MutatingAdmissionPolicy")
    (binding,) = chart_helm.find(manifests, "MutatingAdmissionPolicyBinding")
    name = "superpod-superpod-operator-in-use"
    # the objects the sandbox bench installs (superpod.api.inusepolicy), as the chart names and labels them
    assert (policy["metadata"]["name"], policy["spec"]) == (name, inusepolicy.policy(name)["spec"])
    assert (binding["metadata"]["name"], binding["spec"]) == (name, inusepolicy.binding(name)["spec"])
    assert policy["metadata"]["labels"] == binding["metadata"]["labels"] != {}
    # where the API is not served (before Kubernetes 1.36), or turned off, the operator adds it itself
    for manifests in (
        helm.template(),
        helm.template({"inUsePolicy": {"enabled": False}}, extra=MUTATING_POLICIES),
    ):
        assert not chart_helm.find(manifests, "MutatingAdmissionPolicy")
        assert not chart_helm.find(manifests, "MutatingAdmissionPolicyBinding")


def test_the_operators_configmap_writes_are_confined_to_rank_tables_by_a_chart_policy(rendered, helm):
    manifests = rendered("the default values")
    policy, binding = _policies(manifests, "-rank-table-writes")
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    assert policy["spec"]["failurePolicy"] == "Fail"
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["resources"], rule["operations"]) == (["configmaps"], ["CREATE", "UPDATE", "DELETE"])
    account = chart_helm.one(manifests, "ServiceAccount")["metadata"]
    (condition,) = policy["spec"]["matchConditions"]
    user = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    assert condition["expression"] == f"request.userInfo.username == '{user}'"
    assert not [
        m
        for m in helm.template({"rankTableIntegrity": {"enabled": False}})
        if m["metadata"]["name"].endswith("-rank-table-writes")
    ]


def test_the_service_monitor_presents_prometheus_token_over_https_to_secure_metrics(rendered):
    manifests = rendered("monitoring is on")
    (endpoint,) = chart_helm.one(manifests, "ServiceMonitor")["spec"]["endpoints"]
    assert "--metrics-secure" in _container(manifests)["args"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    service = chart_helm.one(manifests, "Service")["metadata"]["name"]
    assert endpoint["tlsConfig"]["serverName"] == f"{service}.superpod-system.svc"
    secret = chart_helm.one(manifests, "Secret")  # the webhook's: the operator serves /metrics with it
    assert endpoint["tlsConfig"]["ca"] == {"secret": {"name": secret["metadata"]["name"], "key": "ca.crt"}}
    names = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"])).extensions
    dns = names.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert endpoint["tlsConfig"]["serverName"] in dns


def test_plain_metrics_stay_inside_the_pod_and_are_scraped_over_http(rendered):
    manifests = rendered("metrics over plain HTTP inside the pod")
    (endpoint,) = chart_helm.one(manifests, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "http" and "bearerTokenFile" not in endpoint
    assert "--metrics-host=127.0.0.1" in _container(manifests)["args"]
    assert "--metrics-secure" not in _container(manifests)["args"]
