"""The scale subresource (`kubectl scale`): an autoscaling/v1 Scale view of a Deployment, ReplicaSet or CR.

Reads build the Scale from the object (spec and status replicas, the label selector as a string); writes
(PUT, or any PATCH applied to the Scale) change only the object's spec replicas, through the ordinary update
pipeline, so generation, managedFields and watch events follow.
"""

from __future__ import annotations

import copy
from typing import Any

from superpod.sandbox import errors
from superpod.sandbox.resources import Version

Object = dict[str, Any]


def _parts(path: str) -> list[str]:
    return [part for part in path.split(".") if part]


def _get(obj: Object, path: str) -> Any:
    value: Any = obj
    for part in _parts(path):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _selector_text(selector: Any) -> str:
    if isinstance(selector, str):
        return selector
    if not isinstance(selector, dict):
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key"),
            expression.get("operator"),
            expression.get("values") or [],
        )
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(values)})")
        elif operator == "Exists":
            terms.append(str(key))
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def scale_of(obj: Object, version: Version) -> Object:
    spec_path, status_path, selector_path = version.scale_paths
    meta = obj["metadata"]
    selector = _get(obj, selector_path) if selector_path else (obj.get("spec") or {}).get("selector")
    scale_meta = {
        k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
    }
    status: Object = {"replicas": int(_get(obj, status_path) or 0)}
    text = _selector_text(selector)
    if text:
        status["selector"] = text
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(_get(obj, spec_path) or 0)},
        "status": status,
    }


def with_replicas(obj: Object, version: Version, scale: Any) -> Object:
    """A copy of `obj` with the Scale's spec.replicas written to the spec replicas path."""
    replicas = ((scale or {}).get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("autoscaling", "Scale", obj["metadata"]["name"], [
            errors.FieldError("FieldValueInvalid", f"Invalid value: {replicas}: must be greater than or equal to 0", "spec.replicas")
        ])  # fmt: skip
    new = copy.deepcopy(obj)
    node = new
    parts = _parts(version.scale_paths[0])
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = replicas
    return new
