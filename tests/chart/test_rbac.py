"""The chart's RBAC: no wildcards, and exactly the operator's API requests (the operator contract's list,
refined by tests/chart/test_rbac_recorded.py, which records what `superpod run` really asks for), each where it
is made: what the operator does in the namespaces it serves (partitions, pods, rank-table ConfigMaps) through a
Role in operator.watchNamespace when that is set; the webhook-configuration rule only when the operator manages
that configuration, and then only for its own by name; the peering rule where kopf peers; the Leases the
replicas share the SuperPods on (coordination leases, the default) through a Role in the release namespace.
"""

from __future__ import annotations

import pytest

from tests.chart import cases, rbac
from tests.chart import helm as chart_helm

FULLNAME = "superpod-superpod-operator"
TENANT = "superpod-tenant"

# (API group, resource) -> verbs, cluster-wide. The contract also listed: get on superpods, nodes,
# CRDs and peerings; pods patch and delete (evictions are never bypassed); configmaps update; events patch and
# events.k8s.io; namespaces (kopf needs them only for namespace globs);
# secrets get (the certificate is a mounted file); MutatingWebhookConfiguration list/watch/patch. The operator
# makes none of those requests, so the chart grants none.
CLUSTER: dict[tuple[str, str], frozenset[str]] = {
    ("superpod.dev", "superpods"): frozenset({"list", "watch", "patch"}),
    ("superpod.dev", "superpods/status"): frozenset({"patch"}),
    ("", "nodes"): frozenset({"list", "watch", "patch"}),
    ("", "configmaps"): frozenset({"list", "watch"}),  # device info (kube-system), NodeD (mindx-dl)
    ("", "events"): frozenset({"create"}),
    # tenancy: partitions' PriorityClasses, namespaceSelector quotas
    ("scheduling.k8s.io", "priorityclasses"): frozenset({"list", "watch"}),
    ("", "namespaces"): frozenset({"get"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"}),
    # secure /metrics (metrics.secure, the default): each scrape's token and permission reviewed
    ("authentication.k8s.io", "tokenreviews"): frozenset({"create"}),
    ("authorization.k8s.io", "subjectaccessreviews"): frozenset({"create"}),
}
REVIEWS = {
    key: CLUSTER[key]
    for key in [("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")]
}
# what the operator does in the namespaces it serves: every namespace, or operator.watchNamespace only
SERVED: dict[tuple[str, str], frozenset[str]] = {
    ("superpod.dev", "superpodpartitions"): frozenset({"get", "list", "watch", "patch"}),
    ("superpod.dev", "superpodpartitions/status"): frozenset({"patch"}),
    ("", "pods"): frozenset({"get", "list", "watch"}),
    ("", "pods/eviction"): frozenset({"create"}),  # a preempted partition's pods; deletionPolicy EvictPods
    ("", "configmaps"): frozenset({"get", "create", "patch", "delete"}),  # rank tables (deleted: in-use)
}


def _union(*parts: dict[tuple[str, str], frozenset[str]]) -> dict[tuple[str, str], frozenset[str]]:
    merged: dict[tuple[str, str], frozenset[str]] = {}
    for part in parts:
        for key, verbs in part.items():
            merged[key] = merged.get(key, frozenset()) | verbs
    return merged


OPERATOR = _union(CLUSTER, SERVED)
CLUSTER_PEERING: dict[tuple[str, str], frozenset[str]] = {
    ("kopf.dev", "clusterkopfpeerings"): frozenset({"list", "watch", "patch"}),
}
# coordination leases: a Role in the release namespace (the replicas' and the SuperPods' Leases)
LEASES: dict[tuple[str, str], frozenset[str]] = {
    ("coordination.k8s.io", "leases"): frozenset({"get", "list", "watch", "create", "update", "delete"}),
}
MANAGED_WEBHOOK: dict[tuple[str, str], frozenset[str]] = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): frozenset({"get", "create", "update"}),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): frozenset(
        {"get", "create", "update"}
    ),
}


def _grants(role: dict) -> dict[tuple[str, str], frozenset[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return {key: frozenset(verbs) for key, verbs in grants.items()}


def _cluster_role(rendered, case: str) -> dict:
    (role,) = [m for m in chart_helm.find(rendered(case), "ClusterRole") if m["metadata"]["name"] == FULLNAME]
    return role


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
        ("the default values", OPERATOR),
        ("replicas with kopf peering", OPERATOR | CLUSTER_PEERING),
        ("the operator manages its webhook configuration", OPERATOR | MANAGED_WEBHOOK),
        ("the operator manages its webhook configuration with cert-manager", OPERATOR | MANAGED_WEBHOOK),
        ("a single standalone replica", OPERATOR),
        ("metrics over plain HTTP inside the pod", {k: v for k, v in OPERATOR.items() if k not in REVIEWS}),
        ("every optional feature is on", CLUSTER),  # namespaced: the rest is in a Role there
    ],
)
def test_the_cluster_role_grants_exactly_what_the_operator_requests(rendered, case, expected):
    assert _grants(_cluster_role(rendered, case)) == expected


@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("every optional feature is on", {}),
        (
            "a namespaced operator with kopf peering",
            {("kopf.dev", "kopfpeerings"): frozenset({"list", "watch", "patch"})},
        ),
    ],
)
def test_a_namespaced_operator_gets_a_role_in_its_namespace_for_what_it_does_there(rendered, case, extra):
    (role,) = [m for m in chart_helm.find(rendered(case), "Role") if m["metadata"]["namespace"] == "training"]
    assert _grants(role) == SERVED | extra


@pytest.mark.parametrize(
    ("case", "leased"),
    [
        ("the default values", True),
        ("every optional feature is on", True),
        ("replicas with kopf peering", False),
        ("a single standalone replica", False),
    ],
)
def test_replicas_sharing_on_leases_get_them_in_the_release_namespace_only(rendered, case, leased):
    roles = [
        m for m in chart_helm.find(rendered(case), "Role") if m["metadata"]["name"] == f"{FULLNAME}-leases"
    ]
    assert [(r["metadata"]["namespace"], _grants(r)) for r in roles] == (
        [(chart_helm.NAMESPACE, LEASES)] if leased else []
    )
    grants = rbac.grants_of(rendered(case), FULLNAME, chart_helm.NAMESPACE)
    renew = rbac.Call("update", "coordination.k8s.io", "leases", namespace=chart_helm.NAMESPACE, name="x")
    assert rbac.allowed(grants, renew) is leased
    for namespace in ("kube-system", "training", ""):  # nobody else's Leases (kube's leader elections)
        elsewhere = rbac.Call("update", "coordination.k8s.io", "leases", namespace=namespace, name="x")
        assert not rbac.allowed(grants, elsewhere)


NAMESPACED_REQUESTS = {
    "it watches partitions in its namespace": (
        rbac.Call("watch", "superpod.dev", "superpodpartitions", namespace="training"),
        True,
    ),
    "it may not watch partitions everywhere": (
        rbac.Call("watch", "superpod.dev", "superpodpartitions", namespace=""),
        False,
    ),
    "it may not read another namespace's partition": (
        rbac.Call("get", "superpod.dev", "superpodpartitions", namespace="team-b", name="p"),
        False,
    ),
    "it reads pods in its namespace": (rbac.Call("get", "", "pods", namespace="training", name="w-0"), True),
    "it may not read another namespace's pods": (rbac.Call("list", "", "pods", namespace="team-b"), False),
    "it writes rank tables in its namespace": (
        rbac.Call("create", "", "configmaps", namespace="training"),
        True,
    ),
    "it may not write ConfigMaps elsewhere": (
        rbac.Call("create", "", "configmaps", namespace="kube-system"),
        False,
    ),
    "it may not patch ConfigMaps elsewhere": (
        rbac.Call("patch", "", "configmaps", namespace="team-b", name="settings"),
        False,
    ),
    "it may not read a ConfigMap elsewhere by name": (
        rbac.Call("get", "", "configmaps", namespace="team-b", name="settings"),
        False,
    ),
    "it watches the device plugin's ConfigMaps": (
        rbac.Call("watch", "", "configmaps", namespace="kube-system"),
        True,
    ),
}


@pytest.mark.parametrize("case", NAMESPACED_REQUESTS)
def test_a_namespaced_operator_is_authorized_only_in_its_namespace(rendered, case):
    request, expected = NAMESPACED_REQUESTS[case]
    grants = rbac.grants_of(rendered("every optional feature is on"), FULLNAME, chart_helm.NAMESPACE)
    assert rbac.allowed(grants, request) is expected


MANAGED_REQUESTS = {
    "it creates its webhook configuration": (
        rbac.Call("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        True,
    ),
    "it replaces its own": (
        rbac.Call(
            "update",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            name="superpod-operator",
        ),
        True,
    ),
    "it reads its own": (
        rbac.Call(
            "get", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", name="superpod-operator"
        ),
        True,
    ),
    "it may not replace another's": (
        rbac.Call(
            "update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", name="istio-sidecar"
        ),
        False,
    ),
    "it may not read another's": (
        rbac.Call(
            "get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", name="gatekeeper"
        ),
        False,
    ),
    "it may not list them": (
        rbac.Call("list", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        False,
    ),
}


@pytest.mark.parametrize("case", MANAGED_REQUESTS)
def test_an_operator_managing_its_webhooks_touches_only_its_own(rendered, case):
    request, expected = MANAGED_REQUESTS[case]
    manifests = rendered("the operator manages its webhook configuration")
    grants = rbac.grants_of(manifests, FULLNAME, chart_helm.NAMESPACE)
    assert rbac.allowed(grants, request) is expected


def test_resource_names_never_allow_a_create():
    """kube authorizes a create before the object has a name: a rule limited to names cannot allow one."""
    grant = rbac.Grant(
        ({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["create"]},), "ns"
    )
    assert not rbac.allowed([grant], rbac.Call("create", "", "configmaps", namespace="ns"))
    assert not rbac.allowed([grant], rbac.Call("create", "", "configmaps", namespace="ns", name="a"))


def test_a_namespaced_operator_peers_inside_its_namespace(rendered):
    """kopf serving one namespace uses a KopfPeering there, not the cluster-wide one (kopf's own rule)."""
    manifests = rendered("a namespaced operator with kopf peering")
    grants = rbac.grants_of(manifests, FULLNAME, chart_helm.NAMESPACE)
    peering = chart_helm.one(manifests, "KopfPeering")
    assert peering["metadata"]["namespace"] == "training"
    for verb in ("list", "watch", "patch"):
        assert rbac.allowed(grants, rbac.Call(verb, "kopf.dev", "kopfpeerings", namespace="training"))
    assert not rbac.allowed(grants, rbac.Call("patch", "kopf.dev", "kopfpeerings", namespace="team-a"))
    assert not rbac.allowed(grants, rbac.Call("patch", "kopf.dev", "clusterkopfpeerings"))


@pytest.mark.parametrize("case", ["the default values", "every optional feature is on"])
def test_the_bindings_give_the_roles_to_the_operator_service_account(rendered, case):
    manifests = rendered(case)
    account = chart_helm.one(manifests, "ServiceAccount")["metadata"]
    pod_account = chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert pod_account == account["name"]
    roles = {
        (m["kind"], m["metadata"]["name"])
        for m in manifests
        if m["kind"] in ("ClusterRole", "Role")
        and m["metadata"]["name"] not in (TENANT, f"{FULLNAME}-metrics-reader")  # for tenants and Prometheus
    }
    bindings = chart_helm.find(manifests, "ClusterRoleBinding") + chart_helm.find(manifests, "RoleBinding")
    assert len(bindings) == len(roles)
    for binding in bindings:
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles
        assert binding["roleRef"]["kind"] == binding["kind"].removesuffix("Binding")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
        ]


def test_rbac_can_be_left_to_the_cluster_admin(helm):
    manifests = helm.template(
        {"rbac": {"create": False}, "tenantRole": {"create": False}, "metrics": {"reader": {"create": False}}}
    )
    kinds = {m["kind"] for m in manifests}
    assert kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} == set()


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
    "the operator may renew its Lease": (
        rbac.Call("update", "coordination.k8s.io", "leases", namespace="superpod-system", name="r"),
        True,
    ),
    "the operator has no peering object to patch": (
        rbac.Call("patch", "kopf.dev", "clusterkopfpeerings"),
        False,
    ),
    "the operator may not read Secrets": (
        rbac.Call("get", "", "secrets", namespace="superpod-system"),
        False,
    ),
    "the operator may not delete a SuperPod": (rbac.Call("delete", "superpod.dev", "superpods"), False),
    "the operator may not write a partition's spec by update": (
        rbac.Call("update", "superpod.dev", "superpodpartitions", namespace="team-a"),
        False,
    ),
    "the operator may not create pods": (rbac.Call("create", "", "pods", namespace="team-a"), False),
    "the operator may evict a pod (EvictPods, PodDisruptionBudgets honoured)": (
        rbac.Call("create", "", "pods", "eviction", "team-a"),
        True,
    ),
    "the operator may not delete pods (an eviction is never bypassed)": (
        rbac.Call("delete", "", "pods", namespace="team-a"),
        False,
    ),
    "the operator may not change webhook configurations when the chart owns them": (
        rbac.Call("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
        False,
    ),
}


@pytest.mark.parametrize("case", OPERATOR_REQUESTS)
def test_the_rendered_roles_authorize_requests_like_kubernetes(rendered, case):
    request, expected = OPERATOR_REQUESTS[case]
    grants = rbac.grants_of(rendered("the default values"), FULLNAME, chart_helm.NAMESPACE)
    assert rbac.allowed(grants, request) is expected


def test_resource_names_restrict_a_rule_to_the_named_objects():
    grant = rbac.Grant(
        ({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["tls"], "verbs": ["get"]},), "ns"
    )
    assert rbac.allowed([grant], rbac.Call("get", "", "secrets", namespace="ns", name="tls"))
    assert not rbac.allowed([grant], rbac.Call("get", "", "secrets", namespace="ns", name="other"))
    assert not rbac.allowed([grant], rbac.Call("get", "", "secrets", namespace="elsewhere", name="tls"))


def test_unused_reports_a_granted_permission_no_request_needed(rendered):
    grants = rbac.grants_of(rendered("the default values"), FULLNAME, chart_helm.NAMESPACE)
    every_grant = [
        rbac.Call(verb, group, *resource.split("/"))
        for (group, resource), verbs in OPERATOR.items()
        for verb in verbs
    ] + [
        rbac.Call(verb, group, resource, namespace=chart_helm.NAMESPACE)
        for (group, resource), verbs in LEASES.items()
        for verb in verbs
    ]
    assert rbac.denied(grants, every_grant) == []
    assert rbac.unused(grants, every_grant) == []
    assert rbac.unused(grants, every_grant[1:]) == [
        (every_grant[0].group, every_grant[0].resource, every_grant[0].verb)
    ]


def test_tenants_get_partitions_but_not_their_status_through_admin_and_edit(rendered):
    (role,) = [
        m
        for m in chart_helm.find(rendered("the default values"), "ClusterRole")
        if m["metadata"]["name"] == TENANT
    ]
    labels = role["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    grants = [rbac.Grant(tuple(role["rules"]), "team-a")]  # bound by a RoleBinding in the tenant namespace
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert rbac.allowed(grants, rbac.Call(verb, "superpod.dev", "superpodpartitions", namespace="team-a"))
    for verb in ("update", "patch"):
        for resource in ("superpodpartitions", "superpods"):
            assert not rbac.allowed(grants, rbac.Call(verb, "superpod.dev", resource, "status", "team-a"))
    assert not rbac.allowed(grants, rbac.Call("patch", "superpod.dev", "superpods"))


def test_the_tenant_role_can_be_left_out_or_kept_out_of_the_aggregated_roles(helm):
    assert not [
        m for m in helm.template({"tenantRole": {"create": False}}) if m["metadata"]["name"] == TENANT
    ]
    (role,) = [
        m
        for m in helm.template({"tenantRole": {"aggregate": False, "name": "gpu-tenant"}})
        if m["metadata"]["name"] == "gpu-tenant"
    ]
    assert not any(key.startswith("rbac.authorization.k8s.io/") for key in role["metadata"]["labels"])


@pytest.mark.parametrize(
    ("case", "bound"),
    [("the default values", []), ("Prometheus may read the secure metrics", [("monitoring", "prometheus")])],
)
def test_the_metrics_reader_may_get_metrics_and_nothing_else(rendered, case, bound):
    """The ClusterRole a scraper needs with metrics.secure: get on the non-resource URL /metrics, no more."""
    manifests = rendered(case)
    (role,) = [
        m
        for m in chart_helm.find(manifests, "ClusterRole")
        if m["metadata"]["name"].endswith("-metrics-reader")
    ]
    assert role["rules"] == [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    bindings = [
        m
        for m in chart_helm.find(manifests, "ClusterRoleBinding")
        if m["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert [(s["namespace"], s["name"]) for b in bindings for s in b["subjects"]] == bound
    assert not [
        m
        for m in rendered("metrics over plain HTTP inside the pod")
        if m["metadata"]["name"].endswith("-metrics-reader")
    ]
