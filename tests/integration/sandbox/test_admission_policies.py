"""ValidatingAdmissionPolicy and its binding in the sandbox, applied with kubectl as a cluster admin would, and
requests from users the sandbox authenticates: denials, messages, params, subresources, failure policies."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from superpod_sandbox.apiserver import server

from tests.conftest import TOOLS_BIN

KUBECTL = str(TOOLS_BIN / "kubectl")


@pytest.fixture
def api() -> Iterator[server.Sandbox]:
    with server.in_thread(strict_authentication=True, use_tls=True) as sandbox:
        yield sandbox


def kubectl(
    api: server.Sandbox, kubeconfig: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", f"{api.kubeconfig}.cache", *args]
    return subprocess.run(command, capture_output=True, text=True, input=stdin, timeout=60)


def apply(api: server.Sandbox, manifest: str) -> None:
    result = kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=manifest)
    assert result.returncode == 0, result.stderr


def configmap(name: str, data: dict[str, str], namespace: str = "default") -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        }
    )


SIZE_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: small-configmaps}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}
  validations:
  - expression: "!has(object.data) || size(object.data) <= 2"
    messageExpression: "'at most 2 keys, got ' + string(size(object.data))"
  - expression: "!has(object.data) || !('secret' in object.data)"
    message: no secrets in ConfigMaps
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: small-configmaps-everywhere}
spec:
  policyName: small-configmaps
  validationActions: [Deny]
"""


def test_a_policy_denies_with_kubes_message_and_status(api):
    apply(api, SIZE_POLICY)
    refused = kubectl(
        api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("big", {"a": "1", "b": "2", "c": "3"})
    )
    assert refused.returncode != 0
    assert (
        "ValidatingAdmissionPolicy 'small-configmaps' with binding 'small-configmaps-everywhere' denied request: "
        "at most 2 keys, got 3"
    ) in refused.stderr
    with server_call(api) as call:
        code, body = call(
            "POST", "/api/v1/namespaces/default/configmaps", json.loads(configmap("s", {"secret": "x"}))
        )
    assert code == 403  # the validation's reason
    message = (
        "ValidatingAdmissionPolicy 'small-configmaps' with binding 'small-configmaps-everywhere' denied request: "
        "no secrets in ConfigMaps"
    )
    assert body["reason"] == "Forbidden"
    assert body["message"] == f'configmaps "s" is forbidden: {message}'
    assert body["details"] == {"name": "s", "kind": "configmaps", "causes": [{"message": message}]}
    assert kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("ok", {"a": "1"})).returncode == 0
    # an update is checked too, and the policy objects themselves are never subject to a policy
    grown = kubectl(
        api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("ok", {"a": "1", "b": "2", "c": "3"})
    )
    assert "at most 2 keys, got 3" in grown.stderr
    assert (
        kubectl(api, api.kubeconfig, "get", "validatingadmissionpolicies", "small-configmaps").returncode == 0
    )


class server_call:
    """Raw JSON calls as the sandbox's admin (TLS verified)."""

    def __init__(self, api: server.Sandbox, token: str = "sandbox") -> None:
        self.api, self.token = api, token

    def __enter__(self):
        import ssl
        import urllib.error
        import urllib.request

        assert self.api.certificate is not None
        context = ssl.create_default_context(cadata=self.api.certificate.ca_pem.decode())

        def call(method: str, path: str, body: object = None) -> tuple[int, dict]:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(self.api.url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10, context=context) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read())

        return call

    def __exit__(self, *exc: object) -> None:
        return None


def test_request_user_info_comes_from_the_credentials_and_status_writes_are_matched_as_a_subresource(api):
    """Only `builder` may change a Deployment's status; everyone with RBAC may change its spec."""
    apply(
        api,
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deployments-all}
rules: [{apiGroups: [apps], resources: [deployments, deployments/status], verbs: ["*"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: devs-deployments}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: deployments-all}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: status-by-builder}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: ["*"], operations: [UPDATE], resources: [deployments/status]}
  validations:
  - expression: "request.userInfo.username == 'builder'"
    messageExpression: "'status is written by builder only, not ' + request.userInfo.username"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: status-by-builder}
spec: {policyName: status-by-builder, validationActions: [Deny]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
""",
    )
    mallory = api.user_kubeconfig("mallory", ("devs",))
    builder = api.user_kubeconfig("builder", ("devs",))
    patch = '{"status": {"readyReplicas": 5}}'
    args = ("patch", "deployment", "web", "--subresource=status", "--type=merge", "-p", patch)
    refused = kubectl(api, mallory, *args)
    assert "status is written by builder only, not mallory" in refused.stderr
    assert kubectl(api, builder, *args).returncode == 0
    # the main resource is not matched by `deployments/status`
    assert kubectl(api, mallory, "label", "deployment", "web", "tier=front").returncode == 0


def test_params_from_a_configmap_and_what_failure_policy_does_with_a_missing_one(api):
    apply(
        api,
        """
apiVersion: v1
kind: Namespace
metadata: {name: team-a, labels: {tenant: "yes"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: limits, namespace: team-a}
data: {maxKeys: "1"}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: key-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
    namespaceSelector: {matchLabels: {tenant: "yes"}}
  matchConditions:
  - {name: not-the-params, expression: "object.metadata.name != 'limits'"}
  validations:
  - expression: "size(object.data) <= int(params.data.maxKeys)"
    messageExpression: "'at most ' + params.data.maxKeys + ' keys'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: key-limit-tenants}
spec:
  policyName: key-limit
  validationActions: [Deny]
  paramRef: {name: limits, parameterNotFoundAction: Deny}
""",
    )
    assert (
        "at most 1 keys"
        in kubectl(
            api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("two", {"a": "1", "b": "2"}, "team-a")
        ).stderr
    )
    assert (
        kubectl(
            api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("one", {"a": "1"}, "team-a")
        ).returncode
        == 0
    )
    # namespaceSelector: default is not a tenant namespace
    assert (
        kubectl(
            api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("two", {"a": "1", "b": "2"})
        ).returncode
        == 0
    )
    # the params are gone: Deny says refuse (failurePolicy Fail, the default)
    assert kubectl(api, api.kubeconfig, "delete", "configmap", "limits", "-n", "team-a").returncode == 0
    refused = kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("three", {"a": "1"}, "team-a"))
    assert "no params found for policy binding with `Deny` parameterNotFoundAction" in refused.stderr
    with server_call(api) as call:
        _code, policy = call(
            "GET", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/key-limit"
        )
        policy["spec"]["failurePolicy"] = "Ignore"
        assert (
            call(
                "PUT", "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/key-limit", policy
            )[0]
            == 200
        )
    assert (
        kubectl(
            api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("three", {"a": "1"}, "team-a")
        ).returncode
        == 0
    )


def test_an_expression_that_fails_to_run_denies_under_fail_and_warn_only_bindings_never_deny(api):
    apply(
        api,
        """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: broken}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps], resourceNames: [victim]}
  validations:
  - expression: "object.data.missing == 'x'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: broken}
spec: {policyName: broken, validationActions: [Deny]}
""",
    )
    refused = kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("victim", {"a": "1"}))
    assert (
        "ValidatingAdmissionPolicy 'broken' with binding 'broken' denied request: expression 'object.data.missing == 'x'' resulted in error"
        in refused.stderr
    )
    # resourceNames: other names are not matched
    assert (
        kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("bystander", {"a": "1"})).returncode
        == 0
    )
    with server_call(api) as call:
        path = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/broken"
        _code, binding = call("GET", path)
        binding["spec"]["validationActions"] = ["Warn"]
        assert call("PUT", path, binding)[0] == 200
    assert (
        kubectl(api, api.kubeconfig, "apply", "-f", "-", stdin=configmap("victim", {"a": "1"})).returncode
        == 0
    )
