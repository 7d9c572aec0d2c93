"""kube's validation of built-in kinds, where it follows cheaply from the published schemas or a short table.

- Required fields: every field kube's OpenAPI definitions list in `required` (formats/builtin_schemas.py, the
  `kubernetes-validate` package's copy) is refused when absent or null, with kube's message
  `spec.selector: Required value` (lists and maps as `spec.containers[0].name`, `spec.x[key]`). Checked on
  create and update of the object itself (not its status); `metadata` and `status` are not walked (kube
  validates them by hand, with other messages), nor CustomResourceDefinitions (custom.crd_errors).
- Immutable fields: the fields kube's update validation pins (`ValidateImmutableField`), for the kinds whose
  controllers rely on them: a Job's selector, pod template and completion mode, and the selector of a
  Deployment, ReplicaSet or DaemonSet (apps/v1). (A StatefulSet's fixed fields get one `spec: Forbidden`
  message in kube, not made here.)

Simplified: a required field whose Go type is a struct rather than a pointer (a Deployment's `template`) is
reported as `Required value` itself, where kube reports what the empty struct lacks; kube's other checks
(names, formats, ranges, cross-field rules) are not made.
"""

from __future__ import annotations

import functools
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError
from superpod_sandbox.apiserver.formats import builtin_schemas, gotext
from superpod_sandbox.apiserver.registry import resources
from superpod_sandbox.apiserver.registry.resources import Resource

Object = dict[str, Any]
REQUIRED = "Required value"
_REF_PREFIX = "#/$defs/"
_NOT_WALKED = frozenset({"metadata", "status", "apiVersion", "kind"})
IMMUTABLE_FIELDS: dict[resources.GroupResource, tuple[tuple[str, ...], ...]] = {
    ("batch", "jobs"): (("spec", "selector"), ("spec", "template"), ("spec", "completionMode")),
    ("apps", "deployments"): (("spec", "selector"),),
    ("apps", "replicasets"): (("spec", "selector"),),
    ("apps", "daemonsets"): (("spec", "selector"),),
}

# A definition's plan: its required fields, and the fields leading to definitions that require something,
# each with its shape ("object", "array" or "map") and definition name.
Plan = tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]


def check(resource: Resource, version: str, obj: Object, old: Object | None, subresource: str) -> None:
    """Raise kube's 422 Invalid when `obj` lacks a required field or changes an immutable one."""
    if resource.custom or subresource or resource.key == resources.CRDS:
        return
    causes = required_errors(resource.group, version, resource.kind, obj)
    if old is not None:
        causes += immutable_errors(resource.key, old, obj)
    if causes:
        raise errors.invalid(resource.group, resource.kind, obj["metadata"].get("name", ""), causes)


def required_errors(group: str, version: str, kind: str, obj: Object) -> list[FieldError]:
    name = builtin_schemas.component(group, version, kind)
    if name is None:
        return []
    found: list[FieldError] = []
    required, children = _plan(name)
    for field in required:
        if field not in _NOT_WALKED and obj.get(field) is None:
            found.append(FieldError("FieldValueRequired", REQUIRED, field))
    for field, shape, child in children:
        if field not in _NOT_WALKED:
            _walk(obj.get(field), shape, child, field, found)
    return found


def _walk(value: Any, shape: str, name: str, path: str, found: list[FieldError]) -> None:
    if shape == "array":
        for index, item in enumerate(value if isinstance(value, list) else ()):
            _walk(item, "object", name, f"{path}[{index}]", found)
        return
    if shape == "map":
        for key, item in (value if isinstance(value, dict) else {}).items():
            _walk(item, "object", name, f"{path}[{key}]", found)
        return
    if not isinstance(value, dict):
        return
    required, children = _plan(name)
    for field in required:
        if value.get(field) is None:
            found.append(FieldError("FieldValueRequired", REQUIRED, f"{path}.{field}"))
    for field, child_shape, child in children:
        if field in value:
            _walk(value[field], child_shape, child, f"{path}.{field}", found)


@functools.cache
def _plan(name: str) -> Plan:
    schema = builtin_schemas.source(name) or {}
    children: list[tuple[str, str, str]] = []
    for field, prop in (schema.get("properties") or {}).items():
        shaped = _shape(prop)
        if shaped is not None and _requires_something(shaped[1]):
            children.append((field, *shaped))
    return tuple(schema.get("required") or ()), tuple(children)


def _shape(prop: Any) -> tuple[str, str] | None:
    """("object" | "array" | "map", definition) when a property holds objects of a definition."""
    if not isinstance(prop, dict):
        return None
    if isinstance(prop.get("$ref"), str):
        return "object", prop["$ref"].removeprefix(_REF_PREFIX)
    for shape, key in (("array", "items"), ("map", "additionalProperties")):
        inner = prop.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("$ref"), str):
            return shape, inner["$ref"].removeprefix(_REF_PREFIX)
    return None


@functools.cache
def _requires_something(name: str) -> bool:
    """Whether a definition, or one it holds, lists a required field (a definition seen again adds nothing)."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        schema = builtin_schemas.source(current) or {}
        if schema.get("required"):
            return True
        for prop in (schema.get("properties") or {}).values():
            shaped = _shape(prop)
            if shaped is not None:
                pending.append(shaped[1])
    return False


def immutable_errors(key: resources.GroupResource, old: Object, new: Object) -> list[FieldError]:
    found = []
    for path in IMMUTABLE_FIELDS.get(key, ()):
        before, after = _get(old, path), _get(new, path)
        if before != after:
            shown = "null" if after is None else gotext.go_value(after)
            found.append(
                FieldError("FieldValueInvalid", f"Invalid value: {shown}: field is immutable", ".".join(path))
            )
    return found


def _get(obj: Object, path: tuple[str, ...]) -> Any:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value
