"""kube-apiserver's built-in admission plugins that change or refuse objects the sandbox serves.

They run, as in kube, before the admission webhooks: `ServiceAccount` names the `default` account and
`DefaultTolerationSeconds` adds the not-ready/unreachable tolerations (both in `defaults.pod_admission`), and
`ServiceAccount` then refuses a Pod whose account is missing and mounts its token (`serviceaccounts`);
`Priority` resolves a Pod's `priorityClassName` into
`spec.priority` and `spec.preemptionPolicy` (the cluster's `globalDefault` class when none is named, 0 when
there is none), refuses Pods naming a missing class and a second `globalDefault` PriorityClass. The
`system-cluster-critical` and `system-node-critical` classes exist from the start, as kube-apiserver creates
them.
"""

from __future__ import annotations

from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry import defaults, resources, serviceaccounts
from superpod_sandbox.apiserver.storage import store

Object = dict[str, Any]
PODS: resources.GroupResource = ("", "pods")
PRIORITY_CLASSES: resources.GroupResource = ("scheduling.k8s.io", "priorityclasses")
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
PREEMPT_LOWER = "PreemptLowerPriority"


def system_priority_classes() -> list[Object]:
    """The PriorityClasses kube-apiserver's bootstrap controller creates."""
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": "Used for system critical pods that must not be moved from their current node."
            if name == "system-node-critical"
            else "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            "preemptionPolicy": PREEMPT_LOWER,
        }
        for name, value in SYSTEM_PRIORITY_CLASSES.items()
    ]


def admit_create(objects: store.Store, resource: resources.Resource, obj: Object) -> None:
    """The mutating and validating built-in plugins for a create, in kube's order."""
    if resource.key == PODS:
        defaults.pod_admission(obj)
        serviceaccounts.admit_pod(objects, obj)
        _pod_priority(objects, obj)
    elif resource.key == PRIORITY_CLASSES and obj.get("globalDefault"):
        _one_global_default(objects, obj)


def admit_update(objects: store.Store, resource: resources.Resource, old: Object, new: Object) -> None:
    if resource.key == PRIORITY_CLASSES and new.get("globalDefault") and not old.get("globalDefault"):
        _one_global_default(objects, new)


def _one_global_default(objects: store.Store, obj: Object) -> None:
    name = obj["metadata"]["name"]
    for other in objects.objects(PRIORITY_CLASSES, ""):
        if other.get("globalDefault") and other["metadata"]["name"] != name:
            raise errors.forbidden(
                "scheduling.k8s.io",
                "priorityclasses",
                name,
                f"PriorityClass {other['metadata']['name']} is already marked as default. Only one default can exist",
            )


def _pod_priority(objects: store.Store, pod: Object) -> None:
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName")
    if name:
        found = objects.get(PRIORITY_CLASSES, "", name)
        if found is None:
            raise errors.forbidden(
                "", "pods", pod["metadata"].get("name", ""), f"no PriorityClass with name {name} was found"
            )
    else:
        found = next((pc for pc in objects.objects(PRIORITY_CLASSES, "") if pc.get("globalDefault")), None)
        if found is not None:
            spec["priorityClassName"] = found["metadata"]["name"]
    value = int(found.get("value", 0)) if found is not None else 0
    if "priority" in spec and spec["priority"] != value:
        raise errors.forbidden(
            "",
            "pods",
            pod["metadata"].get("name", ""),
            f"the integer value of priority ({spec['priority']}) must not be provided in pod spec; priority "
            f"admission controller computed {value} from the given PriorityClass name",
        )
    spec["priority"] = value
    if found is not None:
        spec["preemptionPolicy"] = found.get("preemptionPolicy", PREEMPT_LOWER)
    else:
        spec.setdefault("preemptionPolicy", PREEMPT_LOWER)
