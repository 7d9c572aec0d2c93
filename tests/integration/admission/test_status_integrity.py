"""A partition's status is the operator's record: only the operator's identity writes it, enforced by the API
server (the chart's RBAC and ValidatingAdmissionPolicy), with identities the sandbox authenticates.

The sandbox is strict (unknown credentials are refused) and holds the chart's objects as `helm template`
renders them: the operator's ClusterRole and binding, the status policy and its binding, the `superpod-tenant`
ClusterRole aggregated into `edit`. The operator runs with a token of its own ServiceAccount, so every request
it makes passes through the chart's RBAC; the simulated fleet and the test's admin calls use the admin token.
Two tenants: alice (group team-a, `edit` in team-a) and bob (group team-b, `edit` in team-b), each with a
partition. What the pods really use (the simulated device plugin's `huawei.com/AscendReal`) is the truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from superpod.cluster import client
from superpod_sandbox.apiserver import server

from tests.chart import cases
from tests.chart import helm as chart_helm
from tests.integration.admission import test_in_use as in_use
from tests.integration.admission.conftest import (
    WebhookOperator,
    allocated,
    eventually,
    no_device_used_twice,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
    webhook_configuration,
)
from tests.integration.operator.conftest import apply_crds, manifest

JSON = dict[str, Any]
R = "huawei.com/Ascend910"
OPERATOR_SA = "superpod-superpod-operator"
OPERATOR_USER = f"system:serviceaccount:{chart_helm.NAMESPACE}:{OPERATOR_SA}"
POLICY = "superpod-superpod-operator-status-writers"
GUARD = "superpod-superpod-operator-in-use-guard"
IN_USE = "superpod.dev/in-use"
PLURALS = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


def _chart_objects() -> list[JSON]:
    """The chart's identity objects, rendered as the operator-managed-webhook install makes them."""
    if not chart_helm.BINARY.exists():
        pytest.skip(f"helm is not installed at {chart_helm.BINARY}: run `make tools` (make test does)")
    import tempfile
    from pathlib import Path

    helm = chart_helm.Helm(chart_helm.BINARY, Path(tempfile.mkdtemp(prefix="superpod-helm-")))
    wanted = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    manifests = helm.template(cases.VALUE_SETS["the operator manages its webhook configuration"])
    return [m for m in manifests if m["kind"] in wanted]


async def _create_all(api: client.KubeClient, objects: list[JSON]) -> None:
    for obj in objects:
        kind = obj["kind"]
        if kind in PLURALS:
            await api.create(f"/apis/rbac.authorization.k8s.io/v1/{PLURALS[kind]}", obj)
        else:
            plural = (
                "validatingadmissionpolicies"
                if kind == "ValidatingAdmissionPolicy"
                else "validatingadmissionpolicybindings"
            )
            await api.create(f"{ADMISSION}/{plural}", obj)


PODS_IN_EDIT = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "pods-in-edit", "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
    "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]}
    ],
}


def _namespace(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _edit_binding(namespace: str) -> JSON:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{namespace}-edit", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "Group", "name": namespace, "apiGroup": "rbac.authorization.k8s.io"}],
    }


def _as(sandbox: server.Sandbox, user: str, group: str) -> client.KubeClient:
    token = sandbox.identities.new_user_token(user, (group,))
    return client.KubeClient(client.Credentials(server=sandbox.url, token=token))


@dataclasses.dataclass
class Cluster:
    sandbox: server.Sandbox
    admin: client.KubeClient
    operator: WebhookOperator
    alice: client.KubeClient
    bob: client.KubeClient
    victim: list[JSON]  # team-a's slots
    mine: list[JSON]  # team-b's slot


@pytest_asyncio.fixture
async def shared() -> AsyncIterator[Cluster]:
    chart = _chart_objects()
    async with (
        server.Sandbox(strict_authentication=True) as sandbox,
        client.KubeClient(client.credentials_from_kubeconfig(sandbox.kubeconfig)) as admin,
    ):
        await apply_crds(admin)
        for name in ("team-a", "team-b", chart_helm.NAMESPACE):
            await admin.create("/api/v1/namespaces", _namespace(name))
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": OPERATOR_SA}}
        await admin.create(f"/api/v1/namespaces/{chart_helm.NAMESPACE}/serviceaccounts", account)
        await _create_all(admin, chart)
        # kube's own `edit` grants pods; the sandbox's bootstrap `edit` holds only what is aggregated into it
        await admin.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", PODS_IN_EDIT)
        for namespace in ("team-a", "team-b"):
            await admin.create(
                f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
                _edit_binding(namespace),
            )
        kubeconfig = sandbox.service_account_kubeconfig(chart_helm.NAMESPACE, OPERATOR_SA)
        operator = WebhookOperator(kubeconfig)
        await operator.start()
        try:
            await webhook_configuration(admin)
            async with (
                simulated(sandbox),
                _as(sandbox, "alice", "team-a") as alice,
                _as(sandbox, "bob", "team-b") as bob,
            ):
                spod = manifest("superpod-cloudmatrix-384.yaml")
                spod["metadata"]["name"] = "cm384-a"
                spod["spec"]["reserveNodes"] = 0  # four nodes: two for the victim, one for each other
                await admin.create("/apis/superpod.dev/v1alpha1/superpods", spod)
                # the tenants create their partitions themselves: `edit` holds superpod-tenant
                await alice.create(partitions_path("team-a"), partition("victim", 32, devicesPerPod=16))
                victim = (await allocated(admin, "victim"))["status"]["allocation"]
                await bob.create(partitions_path("team-b"), partition("mine", 16, namespace="team-b"))
                mine = (await allocated(admin, "mine", "team-b"))["status"]["allocation"]
                for index in range(2):
                    await alice.create(pods_path(), pod(f"victim-{index}", "victim"))
                for index in range(2):
                    await eventually(lambda i=index: _running(admin, "team-a", f"victim-{i}"), timeout=20)
                yield Cluster(sandbox, admin, operator, alice, bob, victim, mine)
        finally:
            await operator.stop()


async def _running(api: client.KubeClient, namespace: str, name: str) -> JSON | None:
    found = await api.get_or_none(f"{pods_path(namespace)}/{name}")
    return found if ((found or {}).get("status") or {}).get("phase") == "Running" else None


async def _refusal(coroutine: Any) -> client.ApiError:
    try:
        await coroutine
    except client.ApiError as error:
        return error
    raise AssertionError("the request was allowed")


def _forged(victim: list[JSON]) -> JSON:
    return {"status": {"allocation": [{**victim[0], "pod": None}]}}


async def test_the_tenant_role_writes_partitions_but_never_their_status(shared):
    status_path = f"{partitions_path('team-b')}/mine/status"
    error = await _refusal(shared.bob.patch(status_path, _forged(shared.victim)))
    assert error.status == 403
    assert (
        'superpodpartitions.superpod.dev "mine" is forbidden: User "bob" cannot patch resource '
        '"superpodpartitions/status" in API group "superpod.dev" in the namespace "team-b"'
    ) in str(error)
    # the spec is theirs, and another tenant's namespace is not
    await shared.bob.patch(f"{partitions_path('team-b')}/mine", {"metadata": {"labels": {"team": "b"}}})
    error = await _refusal(
        shared.bob.patch(f"{partitions_path('team-a')}/victim", {"metadata": {"labels": {"x": "y"}}})
    )
    assert error.status == 403 and 'User "bob" cannot patch resource "superpodpartitions"' in str(error)
    # kubectl auth can-i agrees, from bob's own credentials
    review = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": {
            "resourceAttributes": {
                "verb": "patch",
                "group": "superpod.dev",
                "resource": "superpodpartitions",
                "subresource": "status",
                "namespace": "team-b",
            }
        },
    }
    answer = await shared.bob.create("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    assert answer["status"]["allowed"] is False
    assert (await shared.admin.get(f"{partitions_path('team-b')}/mine"))["status"][
        "allocation"
    ] == shared.mine


async def test_a_careless_grant_of_status_writes_is_refused_by_the_chart_policy_with_the_operator_stopped(
    shared,
):
    admin = shared.admin
    await shared.operator.stop()  # the rule is the API server's own: nothing of the operator runs
    careless = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "status-too", "namespace": "team-b"},
        "rules": [
            {
                "apiGroups": ["superpod.dev"],
                "resources": ["superpodpartitions/status"],
                "verbs": ["patch", "update"],
            }
        ],
    }
    await admin.create("/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/roles", careless)
    grant = {
        **_edit_binding("team-b"),
        "metadata": {"name": "status-too", "namespace": "team-b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-too"},
    }
    await admin.create("/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings", grant)
    status_path = f"{partitions_path('team-b')}/mine/status"
    error = await _refusal(shared.bob.patch(status_path, _forged(shared.victim)))
    assert error.status == 403
    assert (
        f"superpodpartitions.superpod.dev \"mine\" is forbidden: ValidatingAdmissionPolicy '{POLICY}' with binding "
        f"'{POLICY}' denied request: the status of superpodpartitions is written by the superpod operator only "
        f"({OPERATOR_USER}), not by bob"
    ) in str(error)
    # a Pending partition's status, a SuperPod's status, and the cluster admin himself: the same answer
    error = await _refusal(
        admin.patch(
            "/apis/superpod.dev/v1alpha1/superpods/cm384-a/status", {"status": {"devices": {"free": 0}}}
        )
    )
    assert "not by system:admin" in str(error)
    error = await _refusal(
        admin.patch(f"{partitions_path('team-a')}/victim/status", {"status": {"phase": "Pending"}})
    )
    assert "not by system:admin" in str(error)
    assert (await admin.get(f"{partitions_path('team-b')}/mine"))["status"]["allocation"] == shared.mine
    victim = (await admin.get(f"{partitions_path('team-a')}/victim"))["status"]
    assert victim["phase"] == "Bound"
    assert [(slot["node"], slot["devices"]) for slot in victim["allocation"]] == [
        (slot["node"], slot["devices"]) for slot in shared.victim
    ]


async def test_the_operators_service_account_writes_status_and_a_forged_allocation_never_reaches_a_pod(
    shared,
):
    admin = shared.admin
    operator_token = _token(shared.operator.kubeconfig)
    async with client.KubeClient(
        client.Credentials(server=shared.sandbox.url, token=operator_token)
    ) as operator:
        # the operator's identity passes both RBAC and the policy (a no-op write of its own record)
        current = await operator.get(f"{partitions_path('team-b')}/mine")
        await operator.patch(
            f"{partitions_path('team-b')}/mine/status",
            {"status": {"allocation": current["status"]["allocation"]}},
        )
        # the operator's token is the operator's only: it does not authenticate as bob or carry his groups
        whoami = await operator.create(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"},
        )
        assert whoami["status"]["userInfo"]["username"] == OPERATOR_USER
    # bob forges his partition's allocation to name the victim's devices: refused, so his pod gets his own
    await _refusal(shared.bob.patch(f"{partitions_path('team-b')}/mine/status", _forged(shared.victim)))
    created = await shared.bob.create(pods_path("team-b"), pod("worker", "mine", namespace="team-b"))
    assert created["metadata"]["annotations"][R] == ",".join(shared.mine[0]["devices"])
    started = await eventually(lambda: _running(admin, "team-b", "worker"), timeout=20)
    assert started["spec"]["nodeName"] == shared.mine[0]["node"]
    assert set(started["metadata"]["annotations"]["huawei.com/AscendReal"].split(",")) == set(
        shared.mine[0]["devices"]
    )
    for index in range(2):
        victim = await _running(admin, "team-a", f"victim-{index}")
        assert victim is not None
        slot = shared.victim[index]
        assert (
            victim["spec"]["nodeName"],
            set(victim["metadata"]["annotations"]["huawei.com/AscendReal"].split(",")),
        ) == (slot["node"], set(slot["devices"]))


def _token(kubeconfig: str) -> str:
    import yaml

    with open(kubeconfig) as handle:
        return str(yaml.safe_load(handle)["users"][0]["user"]["token"])


async def test_the_operators_configmap_writes_are_confined_to_its_rank_tables_by_the_chart_policy(shared):
    """The operator's RBAC lets it write ConfigMaps wherever partitions live; the chart's second policy keeps
    its token to the rank tables it made: a tenant's ConfigMap, one dressed up with the partition label, and
    the device plugin's device list are refused; its own rank tables are written."""
    admin = shared.admin
    table = "/api/v1/namespaces/team-a/configmaps/rings-config-victim"
    made = await eventually(lambda: admin.get_or_none(table), timeout=20)  # the operator's own: written
    settings = {"metadata": {"name": "app-settings"}, "data": {"lr": "0.1"}}
    await admin.create("/api/v1/namespaces/team-a/configmaps", settings)  # a tenant's own
    dressed = {"metadata": {"name": "dressed", "labels": {"superpod.dev/partition": "victim"}}, "data": {}}
    await admin.create("/api/v1/namespaces/team-a/configmaps", dressed)
    async with client.KubeClient(
        client.Credentials(server=shared.sandbox.url, token=_token(shared.operator.kubeconfig))
    ) as operator:
        await operator.patch(table, {"metadata": {"annotations": {"checked": "yes"}}})  # its own: allowed
        attempts = {
            "team-a/app-settings": operator.patch(
                "/api/v1/namespaces/team-a/configmaps/app-settings", {"data": {"hccl.json": "{}"}}
            ),
            "team-a/dressed": operator.patch(
                "/api/v1/namespaces/team-a/configmaps/dressed", {"data": {"hccl.json": "{}"}}
            ),
            "team-b/planted": operator.create(
                "/api/v1/namespaces/team-b/configmaps", {"metadata": {"name": "planted"}, "data": {}}
            ),
            "the device plugin's device list": operator.patch(
                f"/api/v1/namespaces/kube-system/configmaps/mindx-dl-deviceinfo-{shared.victim[0]['node']}",
                {"data": {"DeviceInfoCfg": "{}"}},
            ),
            "team-a/rings-config-victim (relabelled)": operator.patch(
                table, {"metadata": {"labels": {"superpod.dev/partition": "mine"}}}
            ),
        }
        for what, attempt in attempts.items():
            error = await _refusal(attempt)
            assert error.status == 403, what
            assert "the superpod operator writes only the rank tables of its partitions" in str(error), what
        # deleting another's ConfigMap: refused too (by RBAC, or by the policy where RBAC grants deletes)
        error = await _refusal(operator.delete("/api/v1/namespaces/team-a/configmaps/app-settings"))
        assert error.status == 403
    assert (await admin.get("/api/v1/namespaces/team-a/configmaps/app-settings"))["data"] == {"lr": "0.1"}
    assert (await admin.get(table))["metadata"]["labels"] == made["metadata"]["labels"]


async def test_a_tenant_cannot_strip_the_in_use_finalizer_so_running_pods_keep_their_devices(shared):
    """Removing the finalizer would free the victim's devices while its pods run on them (for bob's next
    partition to be given): the chart's guard refuses it to the tenant, however the request is written; the
    operator still removes it once the pods are gone."""
    admin, alice = shared.admin, shared.alice
    path = f"{partitions_path('team-a')}/victim"
    current = await alice.get(path)
    finalizers = current["metadata"]["finalizers"]
    assert IN_USE in finalizers
    stripped = {**current, "metadata": {**current["metadata"], "finalizers": []}}
    refused = (
        f"superpodpartitions.superpod.dev \"victim\" is forbidden: ValidatingAdmissionPolicy '{GUARD}' with "
        f"binding '{GUARD}' denied request: the finalizer superpod.dev/in-use is removed by the superpod "
        f"operator only ({OPERATOR_USER}), once no pod of the partition runs; not by alice"
    )
    for attempt in (
        alice.patch(path, {"metadata": {"finalizers": None}}),
        alice.patch(
            path,
            [{"op": "remove", "path": f"/metadata/finalizers/{finalizers.index(IN_USE)}"}],
            content_type=client.JSON_PATCH,
        ),
        alice.replace(path, stripped),
    ):
        error = await _refusal(attempt)
        assert error.status == 403 and refused in str(error)
    # the rest of the object is still the tenant's: labels, and finalizers of its own, added and removed
    await alice.patch(path, {"metadata": {"labels": {"team": "a"}}})
    own = "team-a.example/audit"
    added = await alice.patch(
        path, [{"op": "add", "path": "/metadata/finalizers/-", "value": own}], content_type=client.JSON_PATCH
    )
    assert added["metadata"]["finalizers"] == [*finalizers, own]
    kept = await alice.patch(path, {"metadata": {"finalizers": finalizers}})
    assert kept["metadata"]["finalizers"] == finalizers

    # deleted while its pods run: Terminating, and still refused
    await alice.delete(path)
    await eventually(lambda: in_use.terminating(admin), timeout=15)
    error = await _refusal(alice.patch(path, {"metadata": {"finalizers": None}}))
    assert error.status == 403 and refused in str(error)
    # bob's partition of two nodes can only have the victim's: it waits while the victim's pods run
    await in_use.waiting_for_victims_devices(shared.bob)
    await no_device_used_twice(admin)

    # the pods go: the operator removes the finalizer (the guard lets its identity), the devices pass on
    for index in range(2):
        await alice.delete(f"{pods_path()}/victim-{index}")
    devices = {(slot["node"], d) for slot in shared.victim for d in slot["devices"]}
    await in_use.placed_on_the_victims_devices(admin, devices)
