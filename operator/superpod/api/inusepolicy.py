"""The MutatingAdmissionPolicy that gives every partition the in-use finalizer as it is created.

kube-apiserver adds `superpod.dev/in-use` (see `partition.IN_USE_FINALIZER`) in admission, as its own
pvc-protection plugin adds `kubernetes.io/pvc-protection` to every claim: a partition is protected from the
moment it exists, and the operator has one write fewer per partition (it adds the finalizer itself only where
it is missing: clusters without the policy, partitions made before it). `admissionregistration.k8s.io/v1`
MutatingAdmissionPolicy is served from Kubernetes 1.36; the chart ships these two objects there
(`inUsePolicy.enabled`) and the sandbox bench installs them too. `failurePolicy: Ignore`: a policy that cannot
run must not stop partitions being created, since the operator's own write covers for it.
"""

from __future__ import annotations

from superpod.api import common
from superpod.api import partition as api_partition

JSON = common.JSON
API_VERSION = "admissionregistration.k8s.io/v1"
FINALIZER = api_partition.IN_USE_FINALIZER
# the finalizer's name is a CEL string literal below: it holds no quote or backslash to escape
NOT_PROTECTED = f"!has(object.metadata.finalizers) || !('{FINALIZER}' in object.metadata.finalizers)"
ADD_FINALIZER = (
    "has(object.metadata.finalizers)"
    f' ? [JSONPatch{{op: "add", path: "/metadata/finalizers/-", value: "{FINALIZER}"}}]'
    f' : [JSONPatch{{op: "add", path: "/metadata/finalizers", value: ["{FINALIZER}"]}}]'
)


def policy(name: str) -> JSON:
    """The MutatingAdmissionPolicy `name`: the finalizer on every partition created without it."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Ignore",
            "reinvocationPolicy": "Never",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [common.GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE"],
                        "resources": [api_partition.PLURAL],
                    }
                ]
            },
            "matchConditions": [{"name": "not-protected-yet", "expression": NOT_PROTECTED}],
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": ADD_FINALIZER}}],
        },
    }


def binding(name: str) -> JSON:
    """Its MutatingAdmissionPolicyBinding (every namespace), of the same name."""
    return {
        "apiVersion": API_VERSION,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name},
    }
