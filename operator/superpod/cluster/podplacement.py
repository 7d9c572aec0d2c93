"""Where a pod may run by its own constraints, read as kube-scheduler and kubelet read them: pure functions.

- `may_run_on(pod, node)`: `spec.nodeName`, `spec.nodeSelector` and the required node affinity
  (`nodeSelectorTerms` are ORed; inside a term `matchExpressions` on labels with In, NotIn, Exists,
  DoesNotExist, Gt, Lt and `matchFields` on `metadata.name` with In and NotIn are ANDed; an empty term matches
  nothing). Taints are not considered here.
- `constrained(pod)`: whether the pod says anything about its node at all (an unconstrained pod may go
  anywhere its tolerations allow).
- `tolerates(pod, key, effect)`: whether one of the pod's tolerations tolerates a taint of that key and
  effect whatever its value (`operator: Exists` with that key or with no key, or `Equal` with that key).
- `pinned_node(pod)`: the node the admission webhook pinned a pod to (`matchFields metadata.name In [node]`),
  or else the node it runs on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]


def _required_terms(spec: Mapping[str, Any]) -> list[JSON] | None:
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if affinity is None:
        return None
    return list(affinity.get("nodeSelectorTerms") or [])


def constrained(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName") or spec.get("nodeSelector") or _required_terms(spec) is not None)


def _requirement_matches(requirement: Mapping[str, Any], value: str | None) -> bool:
    operator = requirement.get("operator")
    values = [str(item) for item in requirement.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for requirement in expressions:
        if not _requirement_matches(requirement, labels.get(str(requirement.get("key")))):
            return False
    for requirement in fields:
        if requirement.get("key") != "metadata.name" or not _requirement_matches(requirement, name):
            return False
    return True


def may_run_on(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether the pod's nodeName, nodeSelector and required node affinity admit this node."""
    spec = pod.get("spec") or {}
    metadata = node.get("metadata") or {}
    name = str(metadata.get("name", ""))
    labels: Mapping[str, str] = metadata.get("labels") or {}
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False
    if any(labels.get(key) != value for key, value in (spec.get("nodeSelector") or {}).items()):
        return False
    terms = _required_terms(spec)
    return terms is None or any(_term_matches(term, name, labels) for term in terms)


def tolerates(pod: Mapping[str, Any], key: str, effect: str) -> bool:
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration.get("effect") and toleration["effect"] != effect:
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists" and toleration.get("key") in (None, "", key):
            return True
        if operator == "Equal" and toleration.get("key") == key:
            return True
    return False


def pinned_node(pod: Mapping[str, Any]) -> str | None:
    spec = pod.get("spec") or {}
    for term in _required_terms(spec) or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and field.get("values"):
                return str(field["values"][0])
    node = spec.get("nodeName")
    return str(node) if node else None
