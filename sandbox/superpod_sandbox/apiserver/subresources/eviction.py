"""pods/<name>/eviction (`kubectl drain`): delete a Pod unless a PodDisruptionBudget forbids it.

There is no disruption controller, so a budget's allowance is computed at the request from the Pods it
selects: healthy ones (Ready condition True, not terminating) against `minAvailable` or `maxUnavailable`
(integers or percentages of the selected Pods). A refused eviction is kube's 429 TooManyRequests
("Cannot evict pod as it would violate the pod's disruption budget."); an allowed one deletes the Pod with
the eviction's deleteOptions, gracefully like any Pod deletion.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry import deletion
from superpod_sandbox.apiserver.registry.semantics import Options, State, Target

Object = dict[str, Any]
BUDGETS = ("policy", "poddisruptionbudgets")
REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."


def _selects(selector: Object | None, labels: dict[str, str]) -> bool:
    if not selector:
        return (
            False  # kube: an empty PDB selector selects nothing in policy/v1beta1, everything in v1; be safe
        )
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key", ""),
            expression.get("operator"),
            expression.get("values") or [],
        )
        present = key in labels
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _healthy(pod: Object) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _count(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def _refusal(api: State, namespace: str, pod: Object) -> str | None:
    """Why a budget forbids evicting `pod` now, or None."""
    labels = pod["metadata"].get("labels") or {}
    pods = api.store.objects(("", "pods"), namespace)
    for budget in api.store.objects(BUDGETS, namespace):
        spec = budget.get("spec") or {}
        if not _selects(spec.get("selector"), labels):
            continue
        selected = [p for p in pods if _selects(spec.get("selector"), p["metadata"].get("labels") or {})]
        healthy = sum(1 for p in selected if _healthy(p))
        if "minAvailable" in spec:
            needed = _count(spec["minAvailable"], len(selected), round_up=True)
        else:
            needed = len(selected) - _count(spec.get("maxUnavailable", 0), len(selected), round_up=False)
        if healthy - (1 if _healthy(pod) else 0) < needed:
            name = budget["metadata"]["name"]
            return f"The disruption budget {name} needs {needed} healthy pods and has {healthy} currently"
    return None


async def evict(api: State, target: Target, body: Any, options: Options) -> Object:
    resource = target.resource
    pod = api.store.get(resource.storage_key, target.namespace, target.name)
    if pod is None:
        raise errors.not_found("", "pods", target.name)
    reason = _refusal(api, target.namespace, pod)
    if reason is not None:
        details = {"causes": [{"reason": "DisruptionBudget", "message": reason}]}
        raise errors.ApiError(errors.status(429, "TooManyRequests", REFUSED, details))
    delete_options = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
    await deletion.delete(api, dataclasses.replace(target, subresource=""), delete_options, options)
    return errors.success({}) | {"code": 201}
