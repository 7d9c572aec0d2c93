"""Identities in the sandbox: who a request comes from (tokens, client certificates) and what RBAC lets it do,
driven with the real kubectl and raw HTTP as a user would, including attempts to get in with bad credentials."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from superpod_sandbox.apiserver import server

from tests.conftest import TOOLS_BIN

KUBECTL = str(TOOLS_BIN / "kubectl")


@pytest.fixture
def strict() -> Iterator[server.Sandbox]:
    with server.in_thread(strict_authentication=True, use_tls=True) as api:
        yield api


def kubectl(
    api: server.Sandbox, kubeconfig: str, *args: str, stdin: str | None = None, cache: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", cache or f"{api.kubeconfig}.cache", *args]
    return subprocess.run(command, capture_output=True, text=True, input=stdin, timeout=60)


def admin_apply(api: server.Sandbox, manifest: str) -> None:
    result = kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=manifest)
    assert result.returncode == 0, result.stderr


def call(api: server.Sandbox, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    """Raw HTTP (TLS verified against the sandbox's CA) with an optional bearer token."""
    import ssl

    assert api.certificate is not None
    context = ssl.create_default_context(cadata=api.certificate.ca_pem.decode())
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def setup_tenant(api: server.Sandbox) -> None:
    admin_apply(
        api,
        """
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: team-a}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: team-a}
""",
    )


def test_whoami_names_the_user_of_a_client_certificate_and_of_a_service_account_token(strict):
    setup_tenant(strict)
    alice = strict.user_kubeconfig("alice", ("devs",))
    result = kubectl(strict, alice, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["userInfo"] == {
        "username": "alice",
        "groups": ["devs", "system:authenticated"],
    }
    builder = strict.service_account_kubeconfig("team-a", "builder")
    info = json.loads(kubectl(strict, builder, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:team-a:builder"
    assert info["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:team-a",
        "system:authenticated",
    ]


def test_rbac_refuses_with_kubes_message_until_a_binding_grants_and_can_i_agrees(strict):
    setup_tenant(strict)
    alice = strict.user_kubeconfig("alice", ("devs",))
    refused = kubectl(strict, alice, "get", "configmaps", "-n", "team-a")
    assert refused.returncode != 0
    assert (
        'Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource "configmaps" '
        'in API group "" in the namespace "team-a"'
    ) in refused.stderr
    assert (
        kubectl(strict, alice, "auth", "can-i", "list", "configmaps", "-n", "team-a").stdout.strip() == "no"
    )
    admin_apply(
        strict,
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader, namespace: team-a}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-read, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
""",
    )
    assert kubectl(strict, alice, "get", "configmaps", "-n", "team-a").returncode == 0
    assert (
        kubectl(strict, alice, "auth", "can-i", "list", "configmaps", "-n", "team-a").stdout.strip() == "yes"
    )
    # the grant is namespaced: not in default, and not for writes
    assert (
        kubectl(strict, alice, "auth", "can-i", "list", "configmaps", "-n", "default").stdout.strip() == "no"
    )
    created = kubectl(strict, alice, "create", "configmap", "x", "-n", "team-a")
    assert 'configmaps is forbidden: User "alice" cannot create resource "configmaps"' in created.stderr
    listed = kubectl(strict, alice, "auth", "can-i", "--list", "-n", "team-a")
    assert any(
        line.split()[0] == "configmaps" and "[get list]" in line for line in listed.stdout.splitlines()
    )


def test_an_aggregated_cluster_role_holds_the_rules_of_the_roles_its_selectors_pick(strict):
    setup_tenant(strict)
    admin_apply(
        strict,
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-edit
  labels: {rbac.authorization.k8s.io/aggregate-to-edit: "true"}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [create, get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: builder-edits, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{kind: ServiceAccount, name: builder, namespace: team-a}]
""",
    )
    builder = strict.service_account_kubeconfig("team-a", "builder")
    assert kubectl(strict, builder, "create", "configmap", "made", "-n", "team-a").returncode == 0
    # `admin` aggregates `edit` (kube's bootstrap labels), so the rule reaches it too
    allowed = call(
        strict, "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", "sandbox",
        {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
         "spec": {"user": "system:serviceaccount:team-a:deployer",
                  "resourceAttributes": {"verb": "create", "resource": "configmaps", "namespace": "team-a"}}},
    )  # fmt: skip
    assert allowed[1]["status"]["allowed"] is False
    admin_apply(
        strict,
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer-admin, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: ServiceAccount, name: deployer, namespace: team-a}]
""",
    )
    deployer = strict.service_account_kubeconfig("team-a", "deployer")
    assert (
        kubectl(strict, deployer, "auth", "can-i", "create", "configmaps", "-n", "team-a").stdout.strip()
        == "yes"
    )


def test_bad_credentials_get_401_and_no_credentials_are_anonymous(strict):
    setup_tenant(strict)
    path = "/api/v1/namespaces/team-a/configmaps"
    assert call(strict, "GET", path, "not-a-token")[0] == 401
    assert call(strict, "GET", path, "sandbox")[0] == 200
    code, body = call(strict, "GET", path, None)
    assert code == 403
    assert body["message"] == (
        'configmaps is forbidden: User "system:anonymous" cannot list resource "configmaps" in API group "" '
        'in the namespace "team-a"'
    )
    assert call(strict, "GET", "/version", None)[0] == 200  # system:public-info-viewer
    code, body = call(strict, "GET", "/apis", None)
    assert code == 403 and body["message"] == 'forbidden: User "system:anonymous" cannot get path "/apis"'
    # a ServiceAccount token forged by changing its claims, or signed for another audience, or expired
    account = strict.state.store.get(("", "serviceaccounts"), "team-a", "builder")
    assert account is not None
    uid = account["metadata"]["uid"]
    good = strict.identities.issue("team-a", "builder", uid).token
    assert call(strict, "GET", path, good)[0] == 403  # known, but not granted
    header, _claims, signature = good.split(".")
    forged = strict.identities.issue("team-a", "deployer", uid).token.split(".")[1]
    assert call(strict, "GET", path, f"{header}.{forged}.{signature}")[0] == 401
    other_audience = strict.identities.issue("team-a", "builder", uid, audiences=("prometheus",)).token
    assert call(strict, "GET", path, other_audience)[0] == 401
    short = strict.identities.issue("team-a", "builder", uid, expiration_seconds=1).token
    deadline = time.monotonic() + 30
    while call(strict, "GET", path, short)[0] != 401:
        assert time.monotonic() < deadline, "an expired token was still accepted"
        time.sleep(0.2)


def test_a_token_dies_with_its_service_account(strict):
    setup_tenant(strict)
    builder = strict.service_account_kubeconfig("team-a", "builder")
    assert kubectl(strict, builder, "auth", "whoami").returncode == 0
    assert kubectl(strict, strict.kubeconfig, "delete", "sa", "builder", "-n", "team-a").returncode == 0
    refused = kubectl(strict, builder, "auth", "whoami")
    assert refused.returncode != 0 and "Unauthorized" in refused.stderr
    # a new ServiceAccount of the same name is another identity (another uid): the old token stays dead
    admin_apply(
        strict, "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: team-a}\n"
    )
    assert "Unauthorized" in kubectl(strict, builder, "auth", "whoami").stderr


def test_token_requests_and_reviews_are_authorized_like_any_other_call(strict):
    setup_tenant(strict)
    builder = strict.service_account_kubeconfig("team-a", "builder")
    # the builder may not mint tokens for the deployer: that would be the deployer's identity
    minted = kubectl(strict, builder, "create", "token", "deployer", "-n", "team-a")
    assert minted.returncode != 0
    assert (
        'serviceaccounts "deployer" is forbidden: User "system:serviceaccount:team-a:builder" cannot create '
        'resource "serviceaccounts/token" in API group "" in the namespace "team-a"'
    ) in minted.stderr
    token = kubectl(strict, strict.kubeconfig, "create", "token", "deployer", "-n", "team-a").stdout.strip()
    review = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": token}}
    with open(builder) as config:
        builder_token = yaml.safe_load(config)["users"][0]["user"]["token"]
    code, _ = call(strict, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", builder_token, review)
    assert code == 403
    code, answer = call(strict, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", "sandbox", review)
    assert code == 201
    assert answer["status"]["authenticated"] is True
    assert answer["status"]["user"]["username"] == "system:serviceaccount:team-a:deployer"
    bad = {**review, "spec": {"token": token + "x"}}
    assert (
        "authenticated"
        not in call(strict, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", "sandbox", bad)[1][
            "status"
        ]
    )
    # the deployer's token is the deployer's, whatever the request claims about the user
    code, answer = call(
        strict, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", token,
        {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
         "spec": {"user": "system:admin", "groups": ["system:masters"],
                  "resourceAttributes": {"verb": "delete", "resource": "namespaces"}}},
    )  # fmt: skip
    assert code == 201 and answer["status"]["allowed"] is False


def test_static_user_tokens_without_tls_and_a_lenient_sandbox_for_older_tools():
    with server.in_thread(strict_authentication=True) as api:
        carol = api.user_kubeconfig(
            "carol", ("auditors",)
        )  # kubectl sends no token over plain HTTP: use HTTP
        with open(carol) as config:
            token = yaml.safe_load(config)["users"][0]["user"]["token"]
        review = json.dumps({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"}).encode()
        request = urllib.request.Request(
            api.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            data=review,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            info = json.loads(response.read())["status"]["userInfo"]
        assert info == {"username": "carol", "groups": ["auditors", "system:authenticated"]}
    with server.in_thread() as api:  # lenient (the default): unknown tokens and no credentials are the admin
        request = urllib.request.Request(
            api.url + "/api/v1/namespaces", headers={"Authorization": "Bearer x"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
