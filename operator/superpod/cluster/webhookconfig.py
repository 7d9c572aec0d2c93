"""The webhook configurations `superpod-operator`, when the operator manages them (`--webhook-config managed`).

Their shape is the chart's (helm/superpod-operator/templates/webhook.yaml), so either owner produces the same
objects:

- MutatingWebhookConfiguration, webhook `pods.superpod.dev`: pod CREATE at `/mutate-pods`, only for pods
  labelled `superpod.dev/partition` (objectSelector Exists: no other pod ever waits on it). sideEffects is
  NoneOnDryRun: admission claims a slot in the partition's status, a side effect the webhook skips for dry-run
  requests (kube then still calls it for them, as it does with None).
- ValidatingWebhookConfiguration, at `/validate-pods`, with two webhooks:
  - `validate-pods.superpod.dev`: pod CREATE and UPDATE. Its matchCondition (CEL, evaluated by the API
    server, so an unrelated pod costs no call) sends only partition pods (labelled now or before the update)
    and pods that reach for devices: that name one of `DEVICE_RESOURCES` in an annotation or a container's
    request, and tolerate the isolation taint or say where they must run (nodeName, nodeSelector, required
    node affinity); an update only while the pod is not yet on a node.
  - `validate-bindings.superpod.dev`: `pods/binding` CREATE (and the legacy `bindings`), except those of
    kube-scheduler itself (`system:kube-scheduler`): it honours the pods' required node affinity and taints,
    which admission made safe at creation; every other binder (a custom scheduler, a user) is checked.

Both fail closed (failurePolicy Fail) with a short timeout. The client config is the Service
(`--webhook-service NAMESPACE/NAME`, port 443) in a cluster, else a URL `https://<host>:<port><path>` (the
sandbox and the demo), with the CA that signed the serving certificate as caBundle.

With several replicas each must serve the same certificate (a mounted Secret): a self-signed certificate per
replica would make each replica rewrite the caBundle for its own CA.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from superpod.api import common
from superpod.api import superpod as api_superpod
from superpod.cluster import client
from superpod.topology import profiles

JSON = dict[str, Any]
NAME = "superpod-operator"
WEBHOOK_NAME = "pods.superpod.dev"
POD_WEBHOOK_NAME = "validate-pods.superpod.dev"
BINDING_WEBHOOK_NAME = "validate-bindings.superpod.dev"
PATH = "/mutate-pods"
VALIDATE_PATH = "/validate-pods"
TIMEOUT_SECONDS = 5
GROUP_PATH = "/apis/admissionregistration.k8s.io/v1"
COLLECTION = f"{GROUP_PATH}/mutatingwebhookconfigurations"
COLLECTIONS = {
    "MutatingWebhookConfiguration": COLLECTION,
    "ValidatingWebhookConfiguration": f"{GROUP_PATH}/validatingwebhookconfigurations",
}
DEVICE_RESOURCES: tuple[str, ...] = tuple(sorted({p.resource_name for p in profiles.BUILTIN.values()}))
"""The device resources of the built-in profiles: the requests and annotations that send a pod to validation."""
SCHEDULER = "system:kube-scheduler"
logger = logging.getLogger(__name__)


def client_config(
    *,
    ca_pem: bytes,
    service: str | None = None,
    host: str = "127.0.0.1",
    port: int = 9443,
    path: str = PATH,
) -> JSON:
    """`clientConfig` for a Service `NAMESPACE/NAME` (port 443) or, without one, a URL to host:port."""
    config: JSON = {"caBundle": base64.b64encode(ca_pem).decode("ascii")}
    if service:
        namespace, _, name = service.partition("/")
        if not namespace or not name:
            raise ValueError(f"webhook service must be NAMESPACE/NAME, not {service!r}")
        config["service"] = {"namespace": namespace, "name": name, "path": path, "port": 443}
    else:
        address = f"[{host}]" if ":" in host else host
        config["url"] = f"https://{address}:{port}{path}"
    return config


def configuration(config: JSON, *, namespace: str | None = None) -> JSON:
    """The whole MutatingWebhookConfiguration; `namespace` limits it to one namespace's pods."""
    namespace_selector: JSON = (
        {"matchLabels": {"kubernetes.io/metadata.name": namespace}} if namespace else {}
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "superpod-operator"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "failurePolicy": "Fail",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "matchPolicy": "Equivalent",
                "reinvocationPolicy": "Never",
                "clientConfig": config,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "objectSelector": {
                    "matchExpressions": [{"key": common.PARTITION_LABEL, "operator": "Exists"}]
                },
                "namespaceSelector": namespace_selector,
            }
        ],
    }


def pod_condition(resources: Sequence[str] = DEVICE_RESOURCES) -> str:
    """The CEL matchCondition of `validate-pods.superpod.dev` (see the module docstring), on one line.

    The chart renders the same text from `webhook.deviceResources` (a JSON list is a CEL list literal).
    """
    listed = json.dumps(list(resources), separators=(",", ":"))
    label, taint = common.PARTITION_LABEL, api_superpod.ISOLATION_TAINT
    asks = (
        f"has(c.resources) && (has(c.resources.limits) && c.resources.limits.exists(k, k in {listed})"
        f" || has(c.resources.requests) && c.resources.requests.exists(k, k in {listed}))"
    )
    lines = [
        f"has(object.metadata.labels) && '{label}' in object.metadata.labels",
        f"|| oldObject != null && has(oldObject.metadata.labels) && '{label}' in oldObject.metadata.labels",
        "|| (request.operation == 'CREATE' || !has(oldObject.spec.nodeName))",
        f"&& (has(object.metadata.annotations) && object.metadata.annotations.exists(k, k in {listed})",
        f"|| object.spec.containers.exists(c, {asks})",
        f"|| has(object.spec.initContainers) && object.spec.initContainers.exists(c, {asks}))",
        "&& (has(object.spec.tolerations) && object.spec.tolerations.exists(t,"
        f" (!has(t.key) || t.key in ['', '{taint}']) && (!has(t.effect) || t.effect in ['', 'NoSchedule']))",
        "|| has(object.spec.nodeName) || has(object.spec.nodeSelector) || has(object.spec.affinity)"
        " && has(object.spec.affinity.nodeAffinity)"
        " && has(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution))",
    ]
    return " ".join(lines)


def validating_configuration(
    config: JSON,
    *,
    resources: Sequence[str] = DEVICE_RESOURCES,
    namespace_selector: JSON | None = None,
) -> JSON:
    """The whole ValidatingWebhookConfiguration (`config`: a clientConfig for `VALIDATE_PATH`).

    Every namespace by default, also with a namespaced operator: a pod of any namespace may reach for the
    devices of an isolated SuperPod.
    """
    common_fields: JSON = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "matchPolicy": "Equivalent",
        "clientConfig": config,
        "namespaceSelector": dict(namespace_selector or {}),
    }
    pods_rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": ["pods"],
        "scope": "Namespaced",
    }
    bindings_rule = {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "operations": ["CREATE"],
        "resources": ["pods/binding", "bindings"],
        "scope": "Namespaced",
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": NAME, "labels": {"app.kubernetes.io/managed-by": "superpod-operator"}},
        "webhooks": [
            {
                "name": POD_WEBHOOK_NAME,
                **common_fields,
                "rules": [pods_rule],
                "matchConditions": [
                    {
                        "name": "partition-pods-and-pods-reaching-for-devices",
                        "expression": pod_condition(resources),
                    }
                ],
            },
            {
                "name": BINDING_WEBHOOK_NAME,
                **common_fields,
                "rules": [bindings_rule],
                "matchConditions": [
                    {
                        "name": "not-kube-scheduler",
                        "expression": f"request.userInfo.username != '{SCHEDULER}'",
                    }
                ],
            },
        ],
    }


async def ensure(api: client.KubeClient, desired: JSON) -> JSON:
    """Create the configuration, or replace its webhooks when they differ; safe against concurrent replicas."""
    path = f"{COLLECTIONS[desired['kind']]}/{desired['metadata']['name']}"
    for _ in range(5):
        current = await api.get_or_none(path)
        if current is None:
            try:
                return await api.create(COLLECTIONS[desired["kind"]], desired)
            except client.ApiError as error:
                if error.status != 409:
                    raise
                continue  # another replica created it first
        if _webhooks_match(current.get("webhooks") or [], desired["webhooks"]):
            return current
        replacement = {**current, "webhooks": desired["webhooks"]}
        try:
            updated = await api.replace(path, replacement)
            logger.info("updated %s %s", desired["kind"], desired["metadata"]["name"])
            return updated
        except client.ApiError as error:
            if error.status != 409:
                raise
    raise RuntimeError(f"could not write {desired['kind']} {desired['metadata']['name']}")


def _webhooks_match(current: list[JSON], desired: list[JSON]) -> bool:
    """Whether every field we set has our value (the apiserver adds defaults of its own)."""
    if len(current) != len(desired):
        return False
    return all(_contains(have, want) for have, want in zip(current, desired, strict=True))


def _contains(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    return bool(have == want)
