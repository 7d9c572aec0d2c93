"""The chart's RBAC grants exactly the API calls of the operator contract (notes/operator-contract.md): no
wildcards, nothing more, nothing less; the webhook-configuration rule only when the operator manages it.

The issue also asks for a check against the calls the operator really makes in the integration tests (the
sandbox records them in `api.calls`): `tests.chart.rbac.denied(grants, api.calls)` and `rbac.unused(...)` do
that check once the operator's integration tests exist; here they run on hand-written requests.
"""

from __future__ import annotations

import pytest

from tests.chart import cases, rbac
from tests.chart import helm as chart_helm

# (API group, resource) -> verbs, cluster-wide: the contract's list.
CONTRACT: dict[tuple[str, str], frozenset[str]] = {
    ("superpod.dev", "superpods"): frozenset({"get", "list", "watch", "patch"}),
    ("superpod.dev", "superpods/status"): frozenset({"patch"}),
    ("superpod.dev", "superpodpartitions"): frozenset({"get", "list", "watch", "patch"}),
    ("superpod.dev", "superpodpartitions/status"): frozenset({"patch"}),
    ("", "nodes"): frozenset({"get", "list", "watch"}),
    ("", "configmaps"): frozenset({"get", "list", "watch", "create", "patch", "update", "delete"}),
    ("", "pods"): frozenset({"get", "list", "watch", "patch"}),
    ("", "events"): frozenset({"create", "patch"}),
    ("", "namespaces"): frozenset({"get", "list", "watch"}),
    ("events.k8s.io", "events"): frozenset({"create", "patch"}),
    ("kopf.dev", "clusterkopfpeerings"): frozenset({"get", "list", "watch", "patch"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"get", "list", "watch"}),
}
MANAGED_WEBHOOK: dict[tuple[str, str], frozenset[str]] = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): frozenset(
        {"get", "list", "watch", "create", "patch", "update"}
    ),
}
# The contract's "secrets get (webhook certificate)", narrowed to the one Secret in the release namespace.
NAMESPACED: dict[tuple[str, str], frozenset[str]] = {("", "secrets"): frozenset({"get"})}


def _grants(role: dict) -> dict[tuple[str, str], frozenset[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in grants.items()}


def _cluster_role(rendered, case: str) -> dict:
    return chart_helm.one(rendered(case), "ClusterRole")


@pytest.mark.parametrize("case", cases.VALUE_SETS)
def test_no_rule_uses_a_wildcard(rendered, case):
    manifests = rendered(case)
    for role in chart_helm.find(manifests, "ClusterRole") + chart_helm.find(manifests, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{role['kind']} {rule}"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("the default values", CONTRACT),
        ("the operator manages its webhook configuration", CONTRACT | MANAGED_WEBHOOK),
        ("the operator manages its webhook configuration with cert-manager", CONTRACT | MANAGED_WEBHOOK),
    ],
)
def test_the_cluster_role_grants_exactly_the_contract(rendered, case, expected):
    assert _grants(_cluster_role(rendered, case)) == expected


def test_a_namespaced_operator_peers_inside_its_namespace(rendered):
    """kopf serving one namespace uses a KopfPeering there, not the cluster-wide one (kopf's own rule)."""
    manifests = rendered("every optional feature is on")
    cluster_wide_peering = ("kopf.dev", "clusterkopfpeerings")
    assert _grants(_cluster_role(rendered, "every optional feature is on")) == {
        key: verbs for key, verbs in CONTRACT.items() if key != cluster_wide_peering
    }
    grants = rbac.grants_of(manifests, "superpod-superpod-operator", chart_helm.NAMESPACE)
    peering = chart_helm.one(manifests, "KopfPeering")
    assert peering["metadata"]["namespace"] == "training"
    for verb in ("get", "list", "watch", "patch"):
        assert rbac.allowed(grants, rbac.Call(verb, "kopf.dev", "kopfpeerings", namespace="training"))
    assert not rbac.allowed(grants, rbac.Call("patch", "kopf.dev", "kopfpeerings", namespace="team-a"))
    assert not rbac.allowed(grants, rbac.Call("patch", "kopf.dev", "clusterkopfpeerings"))


def test_the_only_secret_the_operator_may_read_is_its_webhook_certificate(rendered):
    manifests = rendered("the default values")
    role = chart_helm.one(manifests, "Role")
    assert _grants(role) == NAMESPACED
    assert role["metadata"]["namespace"] == chart_helm.NAMESPACE
    certificate_secret = chart_helm.one(manifests, "Secret")["metadata"]["name"]
    assert [rule["resourceNames"] for rule in role["rules"]] == [[certificate_secret]]


def test_the_bindings_give_the_roles_to_the_operator_service_account(rendered):
    manifests = rendered("the default values")
    account = chart_helm.one(manifests, "ServiceAccount")["metadata"]
    pod_account = chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert pod_account == account["name"]
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = chart_helm.one(manifests, kind)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": chart_helm.one(manifests, role_kind)["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_rbac_can_be_left_to_the_cluster_admin(helm):
    manifests = helm.template({"rbac": {"create": False}})
    assert {m["kind"] for m in manifests} & {
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    } == set()


OPERATOR_REQUESTS = {
    "the operator may watch partitions in every namespace": (
        rbac.Call("watch", "superpod.dev", "superpodpartitions", namespace=""),
        True,
    ),
    "the operator may patch a partition's status": (
        rbac.Call("patch", "superpod.dev", "superpodpartitions", "status", "team-a"),
        True,
    ),
    "the operator may write a rank table ConfigMap": (
        rbac.Call("create", "", "configmaps", namespace="team-a"),
        True,
    ),
    "the operator may read its webhook certificate": (
        rbac.Call(
            "get", "", "secrets", namespace="superpod-system", name="superpod-superpod-operator-webhook-tls"
        ),
        True,
    ),
    "the operator may not read another Secret in its namespace": (
        rbac.Call("get", "", "secrets", namespace="superpod-system", name="other"),
        False,
    ),
    "the operator may not read Secrets in other namespaces": (
        rbac.Call("get", "", "secrets", namespace="team-a", name="superpod-superpod-operator-webhook-tls"),
        False,
    ),
    "the operator may not list Secrets": (
        rbac.Call("list", "", "secrets", namespace="superpod-system"),
        False,
    ),
    "the operator may not delete a SuperPod": (rbac.Call("delete", "superpod.dev", "superpods"), False),
    "the operator may not write a partition's spec by update": (
        rbac.Call("update", "superpod.dev", "superpodpartitions", namespace="team-a"),
        False,
    ),
    "the operator may not create pods": (rbac.Call("create", "", "pods", namespace="team-a"), False),
    "the operator may not change webhook configurations when the chart owns them": (
        rbac.Call("patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        False,
    ),
}


@pytest.mark.parametrize("case", OPERATOR_REQUESTS)
def test_the_rendered_roles_authorize_requests_like_kubernetes(rendered, case):
    request, expected = OPERATOR_REQUESTS[case]
    manifests = rendered("the default values")
    grants = rbac.grants_of(manifests, "superpod-superpod-operator", chart_helm.NAMESPACE)
    assert rbac.allowed(grants, request) is expected


def test_every_contract_permission_is_needed_by_some_request_and_nothing_else_is_granted(rendered):
    manifests = rendered("the operator manages its webhook configuration")
    grants = rbac.grants_of(manifests, "superpod-superpod-operator", chart_helm.NAMESPACE)
    contract_calls = [
        rbac.Call(verb, group, *resource.split("/"))
        for (group, resource), verbs in (CONTRACT | MANAGED_WEBHOOK).items()
        for verb in verbs
    ] + [rbac.Call("get", "", "secrets", namespace=chart_helm.NAMESPACE)]
    assert rbac.denied(grants, contract_calls) == []
    assert rbac.unused(grants, contract_calls) == []
    assert rbac.unused(grants, contract_calls[1:]) != [], "dropping a used permission must show up"
