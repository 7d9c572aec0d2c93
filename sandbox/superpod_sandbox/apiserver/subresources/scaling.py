"""The scale subresource (`kubectl scale`): an autoscaling/v1 Scale view of a Deployment, ReplicaSet or CR.

Reads build the Scale from the object (spec and status replicas, the label selector as a string); writes
(PUT, or any PATCH applied to the Scale) change only the object's spec replicas, through the ordinary update
pipeline, so generation, managedFields and watch events follow.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import jsonpatch
from superpod_sandbox.apiserver.registry.resources import Version
from superpod_sandbox.apiserver.registry.semantics import Options, State, Target

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
    if not {"matchLabels", "matchExpressions"} & set(selector):  # a ReplicationController's plain map
        selector = {"matchLabels": selector}
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


def _served(target: Target) -> Version:
    served = target.resource.version(target.version)
    assert served is not None and served.scale, "routes only send scale requests for scalable versions"
    return served


def read(api: State, target: Target) -> Object:
    """The Scale of the addressed object (404 when it does not exist)."""
    obj = api.store.get(target.resource.storage_key, target.namespace, target.name)
    if obj is None:
        raise errors.not_found(target.resource.group, target.resource.plural, target.name)
    return scale_of(obj, _served(target))


def patched(current: Object, content_type: str, raw: bytes) -> Any:
    """The Scale after a merge or JSON patch (a Scale has no strategic lists: strategic is a merge)."""
    try:
        document = json.loads(raw)
    except ValueError as failure:
        raise errors.bad_request(f"error decoding patch: {failure}") from None
    if content_type == "application/json-patch+json":
        return jsonpatch.json_patch(current, document)
    if content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        return jsonpatch.merge(current, document)
    raise errors.unsupported_media_type(
        content_type, ["application/json-patch+json", "application/merge-patch+json"]
    )


async def write(api: State, target: Target, wanted: Any, options: Options) -> Object:
    """Apply a wanted Scale (PUT body or patched Scale) to the object; answers the resulting Scale."""
    served = _served(target)
    old = api.store.get(target.resource.storage_key, target.namespace, target.name)
    if old is None:
        raise errors.not_found(target.resource.group, target.resource.plural, target.name)
    version = ((wanted.get("metadata") or {}).get("resourceVersion")) if isinstance(wanted, dict) else None
    if version and version != old["metadata"]["resourceVersion"]:
        raise errors.stale(target.resource.group, target.resource.plural, target.name)
    await api.write_update(target, old, with_replicas(old, served, wanted), options)
    stored = api.store.get(target.resource.storage_key, target.namespace, target.name) or old
    return scale_of(stored, served)
