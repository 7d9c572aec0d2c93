"""The MutatingWebhookConfiguration `superpod-operator`, when the operator manages it (`--webhook-config managed`).

Its shape is the chart's (helm/superpod-operator/templates/webhook.yaml), so either owner produces the same
object: one webhook `pods.superpod.dev` for pod CREATE at `/mutate-pods`, only for pods labelled
`superpod.dev/partition` (objectSelector Exists: no other pod ever waits on it), failurePolicy Fail, a short
timeout. The client config is the Service (`--webhook-service NAMESPACE/NAME`, port 443) in a cluster, else a
URL `https://<host>:<port>/mutate-pods` (the sandbox and the demo), with the CA that signed the serving
certificate as caBundle.

sideEffects is NoneOnDryRun: admission claims a slot in the partition's status, a side effect, which the
webhook skips for dry-run requests (kube then still calls it for them, as it does with None).

With several replicas each must serve the same certificate (a mounted Secret): a self-signed certificate per
replica would make each replica rewrite the caBundle for its own CA.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from superpod.api import common
from superpod.cluster import client

JSON = dict[str, Any]
NAME = "superpod-operator"
WEBHOOK_NAME = "pods.superpod.dev"
PATH = "/mutate-pods"
TIMEOUT_SECONDS = 5
COLLECTION = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
logger = logging.getLogger(__name__)


def client_config(
    *, ca_pem: bytes, service: str | None = None, host: str = "127.0.0.1", port: int = 9443
) -> JSON:
    """`clientConfig` for a Service `NAMESPACE/NAME` (port 443) or, without one, a URL to host:port."""
    config: JSON = {"caBundle": base64.b64encode(ca_pem).decode("ascii")}
    if service:
        namespace, _, name = service.partition("/")
        if not namespace or not name:
            raise ValueError(f"webhook service must be NAMESPACE/NAME, not {service!r}")
        config["service"] = {"namespace": namespace, "name": name, "path": PATH, "port": 443}
    else:
        address = f"[{host}]" if ":" in host else host
        config["url"] = f"https://{address}:{port}{PATH}"
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


async def ensure(api: client.KubeClient, desired: JSON) -> JSON:
    """Create the configuration, or replace its webhooks when they differ; safe against concurrent replicas."""
    path = f"{COLLECTION}/{desired['metadata']['name']}"
    for _ in range(5):
        current = await api.get_or_none(path)
        if current is None:
            try:
                return await api.create(COLLECTION, desired)
            except client.ApiError as error:
                if error.status != 409:
                    raise
                continue  # another replica created it first
        if _webhooks_match(current.get("webhooks") or [], desired["webhooks"]):
            return current
        replacement = {**current, "webhooks": desired["webhooks"]}
        try:
            updated = await api.replace(path, replacement)
            logger.info("updated MutatingWebhookConfiguration %s", desired["metadata"]["name"])
            return updated
        except client.ApiError as error:
            if error.status != 409:
                raise
    raise RuntimeError(f"could not write MutatingWebhookConfiguration {desired['metadata']['name']}")


def _webhooks_match(current: list[JSON], desired: list[JSON]) -> bool:
    """Whether every field we set has our value (the apiserver adds defaults of its own)."""
    if len(current) != len(desired):
        return False
    return all(_contains(have, want) for have, want in zip(current, desired, strict=True))


def _contains(have: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    return bool(have == want)
