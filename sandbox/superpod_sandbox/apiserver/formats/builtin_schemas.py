"""kube's own field schemas of the built-in kinds, for the OpenAPI v3 and v2 documents the sandbox serves.

The source is the `kubernetes-validate` package: kube-apiserver's OpenAPI definitions of one release (the
version `/version` reports), turned into JSON Schema by openapi2jsonschema. That translation is undone here:

- `"type": ["string", "null"]` (every optional field) is kube's `"type": "string"`;
- the `enum` added to each kind's `apiVersion` and `kind` is dropped (kube publishes none);
- `IntOrString` and `Quantity` are kube's: strings in v2 (`format: int-or-string` for the first), `oneOf` an
  integer or a string (a string or a number) in v3, which `kubectl explain` shows as `<IntOrString>`;
- `$ref: #/$defs/X` points at `#/components/schemas/X` (v3, wrapped in `allOf` so that a description can sit
  beside it, as kube writes it) or `#/definitions/X` (v2).

Descriptions, `required`, formats and the `x-kubernetes-*` extensions (patch strategies and merge keys, list
types, group-version-kinds) are kube's, so `kubectl explain` reads as on a cluster and client-side apply
computes its strategic merge patches from them.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Iterable
from typing import Any

KUBE_VERSION = "v1.35.0"  # the release `/version` reports
V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
_SOURCE_PREFIX = "#/$defs/"
_TYPE_META = ("apiVersion", "kind")
_V3_ONE_OF = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": [{"type": "integer"}, {"type": "string"}],
    "io.k8s.apimachinery.pkg.api.resource.Quantity": [{"type": "string"}, {"type": "number"}],
}
_SCALARS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML "
        "marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for "
        "example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "type": "string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
        "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\n"
        "The serialization format is:\n\n```\n<quantity>        ::= <signedNumber><suffix>\n```\n\n"
        "(see kube's resource.Quantity for the grammar of numbers and suffixes)",
        "type": "string",
    },
}

Schema = dict[str, Any]


@functools.cache
def _source() -> dict[str, Schema]:
    root = (
        importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"{KUBE_VERSION}-local"
    )
    definitions: dict[str, Schema] = json.loads((root / "_definitions.json").read_text())["$defs"]
    return definitions


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in _source().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            key = (gvk["group"], gvk["version"], gvk["kind"])
            # meta.v1's DeleteOptions, WatchEvent, Status... claim every group: a group's own type wins
            if key not in index or index[key].startswith("io.k8s.apimachinery."):
                index[key] = name
    return index


def component(group: str, version: str, kind: str) -> str | None:
    """kube's definition name of a kind (`io.k8s.api.core.v1.Pod`), None when kube has none."""
    return _by_gvk().get((group, version, kind))


def source(name: str) -> Schema | None:
    """A definition as the package holds it (JSON Schema: `$ref: #/$defs/X`, optional fields nullable)."""
    return _source().get(name)


def names() -> Iterable[str]:
    return _source().keys()


@functools.cache
def patch_strategies() -> tuple[dict[str, str], frozenset[str]]:
    """kube's strategic-merge lists of the GA kinds, by field name: the merge key of each keyed list (`ports`,
    keyed by `containerPort` in containers and `port` in Services, is the caller's to tell apart), and the
    primitive lists merged as sets (`finalizers`)."""
    keys: dict[str, str] = {}
    sets: set[str] = set()
    for name, schema in _source().items():
        if any(f".{stage}" in name for stage in (".v1alpha", ".v1beta", ".v2beta")):
            continue
        for field, prop in (schema.get("properties") or {}).items():
            key = prop.get("x-kubernetes-patch-merge-key")
            strategy = str(prop.get("x-kubernetes-patch-strategy", "")).split(",")
            if key:
                keys.setdefault(field, key)
            elif "merge" in strategy:
                sets.add(field)
    return keys, frozenset(sets)


def closure(roots: Iterable[str]) -> list[str]:
    """The roots and every definition they refer to, directly or not, sorted."""
    seen: set[str] = set()
    pending = [root for root in roots if root in _source()]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(ref for ref in _references(name) if ref not in seen)
    return sorted(seen)


@functools.cache
def _references(name: str) -> tuple[str, ...]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if isinstance(ref, str):
                found.append(ref.removeprefix(_SOURCE_PREFIX))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(_source()[name])
    return tuple(found)


@functools.cache
def v3(name: str) -> Schema:
    """The OpenAPI v3 component schema of a definition (shared: callers must not change it)."""
    return _definition(name, v3=True)


@functools.cache
def v2(name: str) -> Schema:
    """The Swagger 2.0 definition (shared: callers must not change it)."""
    return _definition(name, v3=False)


def _definition(name: str, v3: bool) -> Schema:
    if name in _SCALARS:
        scalar: Schema = dict(_SCALARS[name])
        if v3:
            del scalar["type"]
            scalar["oneOf"] = _V3_ONE_OF[name]
        return scalar
    return _convert(_source()[name], v3, top=True)


def _convert(schema: Schema, v3: bool, top: bool = False) -> Schema:
    ref = schema.get("$ref")
    if isinstance(ref, str) and not top:
        target = ref.removeprefix(_SOURCE_PREFIX)
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        if v3:
            return {"allOf": [{"$ref": V3_PREFIX + target}], **rest}
        return {"$ref": V2_PREFIX + target, **rest}
    converted: Schema = {}
    for key, value in schema.items():
        if key == "type":
            converted[key] = _single_type(value)
        elif key == "properties":
            converted[key] = {
                field: _without_type_meta_enum(field, _convert(sub, v3)) for field, sub in value.items()
            }
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            converted[key] = _convert(value, v3)
        else:
            converted[key] = value
    return converted


def _single_type(value: Any) -> Any:
    if isinstance(value, list):
        kinds = [kind for kind in value if kind != "null"]
        return kinds[0] if len(kinds) == 1 else kinds
    return value


def _without_type_meta_enum(field: str, schema: Schema) -> Schema:
    if field in _TYPE_META:
        schema.pop("enum", None)
    return schema
