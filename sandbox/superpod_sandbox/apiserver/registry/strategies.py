"""What each kind does on create and update beyond the generic pipeline, like kube's registry strategies.

Every write first gets kube's defaults (`defaults.py`). PrepareForCreate: a Job gets the selector and pod
labels made from its uid; PriorityClasses get value 0 and preemptionPolicy PreemptLowerPriority unless set, and are
validated (reserved `system-` names, the user ceiling, policies); Pods start Pending with a QoS class; Namespaces get their `kubernetes` finalizer, phase
Active and the `kubernetes.io/metadata.name` label; Secrets fold stringData into data; Services get a type, a
made-up clusterIP and an empty load-balancer status; CRDs are validated and get their status; custom
resources with a status subresource lose the status they were created with. PrepareForUpdate: a Namespace's
spec changes only through /finalize; immutable ConfigMaps and Secrets keep their data; CRDs are revalidated; a PriorityClass's
value and preemptionPolicy never change.
"""

from __future__ import annotations

import base64
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError
from superpod_sandbox.apiserver.registry import custom, defaults, resources
from superpod_sandbox.apiserver.registry.resources import Resource

Object = dict[str, Any]
PODS: resources.GroupResource = ("", "pods")
SECRETS: resources.GroupResource = ("", "secrets")
CONFIGMAPS: resources.GroupResource = ("", "configmaps")
SERVICES: resources.GroupResource = ("", "services")
PRIORITY_CLASSES: resources.GroupResource = ("scheduling.k8s.io", "priorityclasses")
JOBS: resources.GroupResource = ("batch", "jobs")
HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = ("system-node-critical", "system-cluster-critical")
IMMUTABLE = "Forbidden: field is immutable when `immutable` is set"


class ClusterIPs:
    """Hands out 10.96.x.y addresses in order (there is no Service network behind them)."""

    def __init__(self) -> None:
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"10.96.{(self._count // 250) % 250}.{self._count % 250 + 1}"


_ALLOCATED_SERVICE_FIELDS = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy")
_GENERATED_JOB_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)


def prepare_create(
    resource: Resource, version: str, obj: Object, cluster_ips: ClusterIPs
) -> list[tuple[str, ...]]:
    """kube's PrepareForCreate and allocations. Returns the field paths (managedFields form) the server set
    that the client did not send: kube sets them after the field manager ran, so no manager owns them."""
    key = resource.key
    sent = set(obj.get("spec") or {}) if isinstance(obj.get("spec"), dict) else set()
    allocated: list[tuple[str, ...]] = []
    if key == SERVICES:
        allocated = [("f:spec", f"f:{field}") for field in _ALLOCATED_SERVICE_FIELDS if field not in sent]
    elif key == JOBS and not (obj.get("spec") or {}).get("manualSelector") and "selector" not in sent:
        labels = ("f:spec", "f:template", "f:metadata", "f:labels")
        allocated = [("f:spec", "f:selector"), *((*labels, f"f:{label}") for label in _GENERATED_JOB_LABELS)]
    _prepare_create(resource, version, obj, cluster_ips)
    return allocated


def _prepare_create(resource: Resource, version: str, obj: Object, cluster_ips: ClusterIPs) -> None:
    key = resource.key
    defaults.apply(key, obj)
    if resource.custom and resource.has_status(version):
        obj.pop("status", None)
    if key == JOBS:
        _job_selector(obj)
    if key == PODS:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}
    elif key == resources.NAMESPACES:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif key == SECRETS:
        fold_string_data(obj)
        obj.setdefault("type", "Opaque")
    elif key == SERVICES:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", cluster_ips.next())
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        obj.setdefault("status", {"loadBalancer": {}})
    elif key == resources.CRDS:
        _check_crd(resource, obj)
        obj["status"] = custom.crd_status(obj, None)
    elif key == PRIORITY_CLASSES:
        obj.setdefault("value", 0)  # `value` has no omitempty: a class without one has priority 0
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
        _check_priority_class(resource, obj)


def _job_selector(job: Object) -> None:
    """The selector and pod labels kube's Job strategy generates from the Job's uid (unless manualSelector)."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    uid, name = job["metadata"]["uid"], job["metadata"]["name"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
    )


def _keep_allocated(old: Object, new: Object) -> None:
    """kube's patchAllocatedValues: an update that leaves out a Service's allocated addresses keeps them."""
    before, after = old.get("spec") or {}, new.get("spec")
    if not isinstance(after, dict) or after.get("type") == "ExternalName" or not before.get("clusterIP"):
        return
    for field in _ALLOCATED_SERVICE_FIELDS:
        if not after.get(field) and before.get(field):
            after[field] = before[field]


def prepare_update(resource: Resource, subresource: str, old: Object, new: Object) -> None:
    key = resource.key
    defaults.apply(key, new)
    if key == resources.NAMESPACES and subresource != "finalize":
        new["spec"] = old.get("spec", {})
    if key == SECRETS:
        fold_string_data(new)
    if key == SERVICES:
        _keep_allocated(old, new)
    if key in (CONFIGMAPS, SECRETS) and old.get("immutable"):
        check_immutable(resource, old, new)
    if key == resources.CRDS and not subresource:
        _check_crd(resource, new)
        new["status"] = custom.crd_status(new, old.get("status"))
    if key == PRIORITY_CLASSES:
        new.setdefault("value", 0)
        new.setdefault("preemptionPolicy", "PreemptLowerPriority")
        causes = []
        if new.get("value") != old.get("value"):
            causes.append(
                FieldError("FieldValueForbidden", "Forbidden: may not be changed in an update.", "value")
            )
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(
                FieldError(
                    "FieldValueInvalid",
                    f'Invalid value: "{new.get("preemptionPolicy")}": field is immutable',
                    "preemptionPolicy",
                )
            )
        if causes:
            raise errors.invalid(resource.group, resource.kind, old["metadata"]["name"], causes)
        _check_priority_class(resource, new)


def _check_priority_class(resource: Resource, obj: Object) -> None:
    """kube's ValidatePriorityClass: reserved names, the user-definable ceiling, the preemption policies."""
    name = obj["metadata"].get("name", "")
    value = obj.get("value")
    causes = []
    if name.startswith("system-") and name not in SYSTEM_PRIORITY_CLASSES:
        causes.append(
            FieldError(
                "FieldValueForbidden",
                "Forbidden: priority class names with 'system-' prefix are reserved for system use only",
                "metadata.name",
            )
        )
    if name not in SYSTEM_PRIORITY_CLASSES and isinstance(value, int) and value > HIGHEST_USER_PRIORITY:
        causes.append(
            FieldError(
                "FieldValueForbidden",
                f"Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}",
                "value",
            )
        )
    policy = obj.get("preemptionPolicy")
    if policy not in ("PreemptLowerPriority", "Never"):
        causes.append(
            FieldError(
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: "Never", "PreemptLowerPriority"',
                "preemptionPolicy",
            )
        )
    if causes:
        raise errors.invalid(resource.group, resource.kind, name, causes)


def _check_crd(resource: Resource, crd: Object) -> None:
    causes = custom.crd_errors(crd)
    if causes:
        raise errors.invalid(resource.group, resource.kind, crd["metadata"].get("name", ""), causes)
    custom.default_crd(crd)


def check_immutable(resource: Resource, old: Object, new: Object) -> None:
    """ConfigMaps and Secrets marked `immutable: true` keep their data (kube's ValidateConfigMapUpdate)."""
    causes = []
    if not new.get("immutable"):
        causes.append(FieldError("FieldValueForbidden", IMMUTABLE, "immutable"))
    for field in ("data", "binaryData", "type"):
        if old.get(field) != new.get(field):
            causes.append(FieldError("FieldValueForbidden", IMMUTABLE, field))
    if causes:
        raise errors.invalid(resource.group, resource.kind, old["metadata"]["name"], causes)


def qos_class(pod: Object) -> str:
    """BestEffort without requests or limits, Guaranteed when every container's requests equal its limits."""
    containers = (pod.get("spec") or {}).get("containers") or []
    requests = [c.get("resources", {}) for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in requests):
        return "BestEffort"
    if all(r.get("limits") and r.get("requests", r.get("limits")) == r.get("limits") for r in requests):
        return "Guaranteed"
    return "Burstable"


def fold_string_data(secret: Object) -> None:
    """Secret.stringData is write-only: kube merges it into data (base64) and drops it."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict):
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
