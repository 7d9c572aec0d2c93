"""MutatingAdmissionPolicy and its binding in the sandbox (admissionregistration.k8s.io/v1, Kubernetes 1.36),
applied with kubectl as a cluster admin would: JSONPatch mutations, match conditions, the order against the
mutating webhooks' and the failure policies."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from superpod_sandbox.apiserver import server

from tests.integration.sandbox.test_admission_policies import apply, configmap, kubectl, server_call


@pytest.fixture
def api() -> Iterator[server.Sandbox]:
    with server.in_thread(strict_authentication=True, use_tls=True) as sandbox:
        yield sandbox


FINALIZER_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: protect-configmaps}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  matchConditions:
  - name: not-yet-protected
    expression: "!has(object.metadata.finalizers) || !object.metadata.finalizers.exists(f, f == 'example.com/keep')"
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        has(object.metadata.finalizers)
        ? [JSONPatch{op: "add", path: "/metadata/finalizers/-", value: "example.com/keep"}]
        : [JSONPatch{op: "add", path: "/metadata/finalizers", value: ["example.com/keep"]}]
  - patchType: JSONPatch
    jsonPatch:
      expression: >-
        [JSONPatch{op: "add", path: "/metadata/labels", value: {}},
         JSONPatch{op: "add", path: "/metadata/labels/finalizers", value: string(size(object.metadata.finalizers))}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: protect-configmaps}
spec:
  policyName: protect-configmaps
"""


def _created(api: server.Sandbox, body: dict) -> tuple[int, dict]:
    with server_call(api) as call:
        return call("POST", "/api/v1/namespaces/default/configmaps", body)


def test_a_policy_adds_a_finalizer_at_creation_beside_the_users_and_its_later_mutations_see_the_first(api):
    apply(api, FINALIZER_POLICY)
    code, bare = _created(api, json.loads(configmap("bare", {"a": "1"})))
    assert code == 201, bare["message"]
    assert bare["metadata"]["finalizers"] == ["example.com/keep"]
    assert bare["metadata"]["labels"] == {"finalizers": "1"}  # the second mutation saw the first's result
    theirs = json.loads(configmap("theirs", {}))
    theirs["metadata"]["finalizers"] = ["team.example/audit"]
    code, written = _created(api, theirs)
    assert code == 201, written
    assert written["metadata"]["finalizers"] == ["team.example/audit", "example.com/keep"]
    # already there: the match condition leaves it alone (no duplicate)
    kept = json.loads(configmap("kept", {}))
    kept["metadata"]["finalizers"] = ["example.com/keep"]
    code, written = _created(api, kept)
    assert code == 201 and written["metadata"]["finalizers"] == ["example.com/keep"]
    assert "labels" not in written["metadata"]
    # kubectl sees the stored object and the policy objects
    shown = kubectl(api, api.kubeconfig, "get", "configmap", "bare", "-o", "json")
    assert json.loads(shown.stdout)["metadata"]["finalizers"] == ["example.com/keep"]
    listed = kubectl(api, api.kubeconfig, "get", "mutatingadmissionpolicies,mutatingadmissionpolicybindings")
    assert "protect-configmaps" in listed.stdout, listed.stderr


BROKEN_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: broken}
spec:
  failurePolicy: %s
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/finalizers/-", value: "x"}]'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: broken}
spec:
  policyName: broken
"""


def test_a_patch_that_does_not_apply_refuses_under_fail_and_is_skipped_under_ignore(api):
    apply(api, BROKEN_POLICY % "Fail")  # no finalizers list to append to
    code, body = _created(api, json.loads(configmap("c1", {})))
    assert code == 403, body
    assert body["message"].startswith(
        "configmaps \"c1\" is forbidden: MutatingAdmissionPolicy 'broken' with binding 'broken' denied request: "
    )
    assert kubectl(api, api.kubeconfig, "get", "configmap", "c1").returncode != 0  # nothing stored
    apply(api, BROKEN_POLICY % "Ignore")
    code, body = _created(api, json.loads(configmap("c2", {})))
    assert code == 201 and "finalizers" not in body["metadata"]


APPLY_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: by-apply}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{labels: {"a": "b"}}}'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: by-apply}
spec:
  policyName: by-apply
"""


def test_an_apply_configuration_mutation_is_refused_with_a_message_that_says_why(api):
    apply(api, APPLY_POLICY)
    code, body = _created(api, json.loads(configmap("c", {})))
    assert code == 403
    assert "patchType ApplyConfiguration is not supported by the sandbox" in body["message"]
