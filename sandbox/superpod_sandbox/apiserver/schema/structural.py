"""A CRD version's structural schema: pruning, defaulting and validation as kube-apiserver does them.

Input: `StructuralSchema(openapi_v3_schema)` takes the `openAPIV3Schema` dict of one CRD version (the value at
`spec.versions[i].schema.openAPIV3Schema`), as decoded from JSON or YAML. The schema is compiled once (CEL
programs included); keep one instance per CRD version and reuse it for every request.

Objects are JSON dicts (the whole custom resource: apiVersion, kind, metadata, spec, status). The API server
calls, in kube-apiserver's order, on every create and update (and on status updates, with the whole object):

1. `prune(obj) -> list[str]`: drops, in place, fields the schema does not declare and returns their dotted
   paths (`spec.foo`, `spec.items[0].bar`, `metadata.foo`); for `fieldValidation=Strict` each path becomes
   `unknown field "spec.foo"`, for `Warn` a warning, for `Ignore` nothing.
2. `default(obj) -> None`: applies `default`s in place (also inside array items and map values, and to
   objects only where they are present), and drops `null`s of non-nullable fields that have no default.
3. `validate(obj, old=None) -> list[Cause]`: OpenAPI value validation, list-type map/set uniqueness, then the
   CEL `x-kubernetes-validations` (transition rules, those using `oldSelf`, only when `old` is given and the
   node exists in both). On update (`old` given) errors are ratcheted as in kube >= 1.30: a node deep-equal
   to its old counterpart (object keys, list-map keys) reports no schema or non-transition-rule errors. Each Cause is a metav1.StatusCause: `reason` (FieldValueInvalid, ...), `message`
   (the field.Error body, e.g. `Invalid value: 0: spec.npus in body should be greater than or equal to 1`)
   and `field` (`spec.npus`). kube-apiserver's 422 Status message is
   `<Kind>.<group> "<name>" is invalid: [<field>: <message>, ...]` (no brackets for one cause), built by the
   caller. ObjectMeta validation (name format etc.) is the caller's job, as kube does it separately.

As kube-apiserver 1.35 does, a failed CEL rule on an object or array node reports no value
(`Invalid value: <message>`); on a scalar it shows the value (`Invalid value: 3: <message>`). When the schema
validation found a type error or an unsupported enum value, the CEL rules are skipped and the field-less cause
`<nil>: Invalid value: null: some validation rules were not checked ...` is added, as kube does.

`compile_errors` lists rules that do not compile (kube would refuse such a CRD).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from celpy import celtypes

from superpod_sandbox.apiserver.formats import gotext
from superpod_sandbox.apiserver.schema import cel

JSON = Any  # a value decoded from JSON

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
TYPE_META_FIELDS = ("apiVersion", "kind")
SKIPPED_RULES_MESSAGE = (
    "some validation rules were not checked because the object was invalid; "
    "correct the existing errors to complete validation"
)


@dataclasses.dataclass(frozen=True)
class Cause:
    """One metav1.StatusCause of a 422 Invalid Status."""

    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueTypeInvalid, ...
    message: str  # field.Error.ErrorBody(), e.g. "Required value"
    field: str  # dotted path, e.g. "spec.npus" or "status.conditions[1]"


@dataclasses.dataclass(frozen=True)
class _Rule:
    rule: str
    program: cel.Program
    message: str
    message_expression: cel.Program | None
    reason: str
    field_path: str  # normalised: "" or "spec.foo"


class _Omitted:
    """field.OmitValueType: the error body shows no value."""


_OMIT = _Omitted()
_MISSING = object()


class _Node:
    """One compiled schema node. Built once; no per-request work beyond walking it."""

    __slots__ = (
        "additional",
        "embedded",
        "enum",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "has_rules",
        "int_or_string",
        "items",
        "list_type",
        "map_keys",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "nullable",
        "pattern",
        "pattern_source",
        "preserve_unknown",
        "properties",
        "raw",
        "required",
        "rule_outcomes",
        "rule_reads",
        "rules",
        "type",
        "unique_items",
    )

    def __init__(self, raw: Mapping[str, Any], errors: list[str], path: str) -> None:
        self.raw = raw
        self.type: str | None = raw.get("type")
        self.nullable = bool(raw.get("nullable", False))
        self.int_or_string = bool(raw.get("x-kubernetes-int-or-string", False))
        self.preserve_unknown = bool(raw.get("x-kubernetes-preserve-unknown-fields", False))
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource", False))
        self.properties = {
            name: _Node(sub, errors, f"{path}.{name}" if path else name)
            for name, sub in (raw.get("properties") or {}).items()
        }
        additional = raw.get("additionalProperties")
        self.additional: _Node | bool | None = (
            _Node(additional, errors, f"{path}[*]") if isinstance(additional, dict) else additional
        )
        items = raw.get("items")
        self.items = _Node(items, errors, f"{path}[*]") if isinstance(items, dict) else None
        self.required: list[str] = list(raw.get("required") or [])
        self.enum: list[JSON] | None = raw.get("enum")
        self.maximum: float | None = raw.get("maximum")
        self.minimum: float | None = raw.get("minimum")
        self.exclusive_maximum = bool(raw.get("exclusiveMaximum", False))
        self.exclusive_minimum = bool(raw.get("exclusiveMinimum", False))
        self.multiple_of: float | None = raw.get("multipleOf")
        self.max_length: int | None = raw.get("maxLength")
        self.min_length: int | None = raw.get("minLength")
        self.pattern_source: str | None = raw.get("pattern")
        self.pattern = re.compile(self.pattern_source) if self.pattern_source is not None else None
        self.format: str | None = raw.get("format")
        self.max_items: int | None = raw.get("maxItems")
        self.min_items: int | None = raw.get("minItems")
        self.unique_items = bool(raw.get("uniqueItems", False))
        self.max_properties: int | None = raw.get("maxProperties")
        self.min_properties: int | None = raw.get("minProperties")
        self.list_type: str | None = raw.get("x-kubernetes-list-type")
        self.map_keys: list[str] = list(raw.get("x-kubernetes-list-map-keys") or [])
        compiled = [_compile_rule(rule, errors, path) for rule in raw.get("x-kubernetes-validations") or []]
        self.rules = [rule for rule in compiled if rule is not None]
        # What of `self` and `oldSelf` the rules read (None: all of it): the input their outcome depends on.
        self.rule_reads = {name: _reads(self.rules, name) for name in cel.RULE_VARIABLES}
        children = [*self.properties.values(), self.items, self.additional]
        # Whether this node or any below it carries CEL rules: the rule walk skips rule-free subtrees.
        self.has_rules: bool = bool(self.rules) or any(isinstance(c, _Node) and c.has_rules for c in children)
        # CEL is pure: remember outcomes by input (bounded), so repeated specs cost one lookup.
        self.rule_outcomes: dict[tuple[str, str, str], list[Cause]] = {}

    def child(self, key: str) -> _Node | None:
        found = self.properties.get(key)
        if found is None and isinstance(self.additional, _Node):
            return self.additional
        return found


def _compile_rule(raw: Mapping[str, Any], errors: list[str], path: str) -> _Rule | None:
    source = str(raw.get("rule", ""))
    try:
        program = cel.compile_expression(source)
        message_source = raw.get("messageExpression")
        message_expression = cel.compile_expression(message_source) if message_source else None
    except cel.RuleCompileError as error:
        errors.append(f"{path or '<root>'}: rule {source!r}: {error}")
        return None
    return _Rule(
        rule=source,
        program=program,
        message=str(raw.get("message") or ""),
        message_expression=message_expression,
        reason=str(raw.get("reason") or "FieldValueInvalid"),
        field_path=str(raw.get("fieldPath") or "").lstrip("."),
    )


class StructuralSchema:
    """The compiled schema of one CRD version; see the module docstring for the calls and their order."""

    def __init__(self, openapi_v3_schema: dict[str, Any]) -> None:
        self.compile_errors: list[str] = []
        self._root = _Node(openapi_v3_schema, self.compile_errors, "")

    # pruning ---------------------------------------------------------------------------------------

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Remove undeclared fields in place; return their paths in the order found."""
        dropped: list[str] = []
        _prune(obj, self._root, "", dropped, is_resource=True)
        return dropped

    # defaulting ------------------------------------------------------------------------------------

    def default(self, obj: dict[str, Any]) -> None:
        """Apply schema defaults in place, as kube-apiserver's structural defaulting does."""
        _prune_nulls(obj, self._root)
        _default(obj, self._root)

    # validation ------------------------------------------------------------------------------------

    def validate(self, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
        """Return every cause that makes `obj` invalid (empty when valid); `old` enables transition rules."""
        causes: list[Cause] = []
        _validate_value(obj, self._root, "", causes, _MISSING if old is None else old)
        _validate_list_types(obj, self._root, "", causes)
        if any(cause.reason in ("FieldValueTypeInvalid", "FieldValueNotSupported") for cause in causes):
            causes.append(
                Cause("FieldValueInvalid", f"Invalid value: null: {SKIPPED_RULES_MESSAGE}", "<nil>")
            )
            return causes
        _validate_rules(obj, _MISSING if old is None else old, self._root, "", causes, is_resource=True)
        return causes


# ---------------------------------------------------------------------------------------------------
# pruning


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: JSON, node: _Node, path: str, dropped: list[str], *, is_resource: bool) -> None:
    if isinstance(value, dict):
        keep_meta = is_resource or node.embedded
        for key in list(value):
            child = node.properties.get(key)
            if keep_meta and key in TYPE_META_FIELDS:
                continue
            if keep_meta and key == "metadata":
                _prune_object_meta(value[key], _join(path, key), dropped)
                continue
            if child is not None:
                _prune(value[key], child, _join(path, key), dropped, is_resource=False)
            elif isinstance(node.additional, _Node):
                _prune(value[key], node.additional, _join(path, key), dropped, is_resource=False)
            elif node.additional is True or node.preserve_unknown:
                continue
            else:
                del value[key]
                dropped.append(_join(path, key))
    elif isinstance(value, list) and node.items is not None:
        for index, item in enumerate(value):
            _prune(item, node.items, f"{path}[{index}]", dropped, is_resource=False)


def _prune_object_meta(meta: JSON, path: str, dropped: list[str]) -> None:
    if not isinstance(meta, dict):
        return
    for key in list(meta):
        if key not in OBJECT_META_FIELDS:
            del meta[key]
            dropped.append(_join(path, key))


# ---------------------------------------------------------------------------------------------------
# defaulting


def _is_non_nullable_null(value: JSON, node: _Node | None) -> bool:
    return value is None and node is not None and not node.nullable


def _prune_nulls(value: JSON, node: _Node) -> None:
    """PruneNonNullableNullsWithoutDefaults: a null where null is not allowed and no default exists goes."""
    if isinstance(value, dict):
        for key in list(value):
            child = node.child(key)
            if child is None:
                continue
            item = value[key]
            if _is_non_nullable_null(item, child) and "default" not in child.raw:
                del value[key]
            else:
                _prune_nulls(item, child)
    elif isinstance(value, list) and node.items is not None:
        for item in value:
            _prune_nulls(item, node.items)


def _default(value: JSON, node: _Node) -> None:
    if isinstance(value, dict):
        for key, child in node.properties.items():
            if "default" in child.raw and (key not in value or _is_non_nullable_null(value[key], child)):
                value[key] = json.loads(json.dumps(child.raw["default"]))
        for key, item in value.items():
            found = node.child(key)
            if found is None:
                continue
            if _is_non_nullable_null(item, found) and "default" in found.raw:
                value[key] = item = json.loads(json.dumps(found.raw["default"]))
            _default(item, found)
    elif isinstance(value, list) and node.items is not None:
        items = node.items
        for index, item in enumerate(value):
            if _is_non_nullable_null(item, items) and "default" in items.raw:
                value[index] = item = json.loads(json.dumps(items.raw["default"]))
            _default(item, items)


# ---------------------------------------------------------------------------------------------------
# value rendering as Go's fmt and field.Error do it


def _error(kind: str, field: str, value: JSON | _Omitted, detail: str = "") -> Cause:
    """A field.Error of `kind` ("Invalid value", ...) rendered as kube renders ErrorBody."""
    reasons = {
        "Required value": "FieldValueRequired",
        "Forbidden": "FieldValueForbidden",
        "Too long": "FieldValueTooLong",
        "Invalid value": "FieldValueInvalid",
        "Type invalid": "FieldValueTypeInvalid",
        "Unsupported value": "FieldValueNotSupported",
        "Duplicate value": "FieldValueDuplicate",
        "Too many": "FieldValueTooMany",
    }
    label = "Invalid value" if kind == "Type invalid" else kind
    if kind in ("Required value", "Forbidden", "Too long") or isinstance(value, _Omitted):
        body = label
    else:
        body = f"{label}: {gotext.go_value(value)}"
    if detail:
        body += f": {detail}"
    return Cause(reasons[kind], body, field)


# ---------------------------------------------------------------------------------------------------
# OpenAPI value validation (kube-openapi's validators, converted to field errors as apiextensions does)


def _json_type(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(value: JSON, node: _Node) -> bool:
    actual = _json_type(value)
    if node.int_or_string:
        return actual in ("integer", "string") or (actual == "number" and float(value).is_integer())
    if node.type is None:
        return True
    if actual == node.type:
        return True
    if node.type == "number" and actual == "integer":
        return True
    return node.type == "integer" and actual == "number" and float(value).is_integer()


def same(a: JSON, b: JSON) -> bool:
    """Deep equality of JSON values that, like Go's DeepEqual, tells true from 1 and 1 from 1.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(item, b[key]) for key, item in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _validate_value(value: JSON, node: _Node, path: str, causes: list[Cause], old: JSON = _MISSING) -> None:
    if old is not _MISSING and same(value, old):
        return  # ratcheting (kube >= 1.30): errors of a node unchanged since the old object are not reported
    name = path or "."
    if value is None:
        if not node.nullable and (node.type is not None or node.int_or_string):
            declared = "integer,string" if node.int_or_string else str(node.type)
            causes.append(
                _error("Type invalid", path, "null", f'{name} in body must be of type {declared}: "null"')
            )
        return
    if not _type_matches(value, node):
        declared = "integer,string" if node.int_or_string else str(node.type)
        actual = _json_type(value)
        causes.append(
            _error(
                "Type invalid",
                path,
                actual,
                f"{name} in body must be of type {declared}: {gotext.go_quote(actual)}",
            )
        )
        return
    if isinstance(value, str):
        _validate_string(value, node, path, causes)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, node, path, causes)
    elif isinstance(value, list):
        _validate_array(value, node, path, causes, old)
    elif isinstance(value, dict):
        _validate_object(value, node, path, causes, old)
    if node.enum is not None and value not in node.enum:
        supported = ", ".join(
            gotext.go_quote(item if isinstance(item, str) else json.dumps(item)) for item in node.enum
        )
        causes.append(_error("Unsupported value", path, value, f"supported values: {supported}"))


def _validate_string(value: str, node: _Node, path: str, causes: list[Cause]) -> None:
    if node.max_length is not None and len(value) > node.max_length:
        unit = "byte" if node.max_length == 1 else "bytes"
        causes.append(_error("Too long", path, value, f"may not be more than {node.max_length} {unit}"))
    if node.min_length is not None and len(value) < node.min_length:
        causes.append(
            _error(
                "Invalid value",
                path,
                value,
                f"{path} in body should be at least {node.min_length} chars long",
            )
        )
    if node.pattern is not None and node.pattern.search(value) is None:
        causes.append(
            _error("Invalid value", path, value, f"{path} in body should match '{node.pattern_source}'")
        )
    if node.format is not None and not _format_valid(node.format, value):
        causes.append(
            _error(
                "Type invalid",
                path,
                value,
                f"{path} in body must be of type {node.format}: {gotext.go_quote(value)}",
            )
        )


def _bound(number: float, as_int: bool) -> str:
    return str(int(number)) if as_int else gotext.go_float(float(number))


def _validate_number(value: float, node: _Node, path: str, causes: list[Cause]) -> None:
    as_int = isinstance(value, int)
    if node.multiple_of is not None and node.multiple_of > 0:
        quotient = value / node.multiple_of
        if not float(quotient).is_integer():
            bound = _bound(node.multiple_of, float(node.multiple_of).is_integer() and as_int)
            causes.append(
                _error("Invalid value", path, value, f"{path} in body should be a multiple of {bound}")
            )
    if node.maximum is not None:
        too_big = value >= node.maximum if node.exclusive_maximum else value > node.maximum
        if too_big:
            relation = "less than" if node.exclusive_maximum else "less than or equal to"
            bound = _bound(node.maximum, as_int)
            causes.append(
                _error("Invalid value", path, value, f"{path} in body should be {relation} {bound}")
            )
    if node.minimum is not None:
        too_small = value <= node.minimum if node.exclusive_minimum else value < node.minimum
        if too_small:
            relation = "greater than" if node.exclusive_minimum else "greater than or equal to"
            bound = _bound(node.minimum, as_int)
            causes.append(
                _error("Invalid value", path, value, f"{path} in body should be {relation} {bound}")
            )


def _validate_array(value: list[JSON], node: _Node, path: str, causes: list[Cause], old: JSON) -> None:
    if node.items is not None:
        old_items = _correlate_list(value, old, node)
        for index, item in enumerate(value):
            _validate_value(item, node.items, f"{path}[{index}]", causes, old_items[index])
    if node.min_items is not None and len(value) < node.min_items:
        causes.append(
            _error(
                "Invalid value",
                path,
                len(value),
                f"{path} in body should have at least {node.min_items} items",
            )
        )
    if node.max_items is not None and len(value) > node.max_items:
        unit = "item" if node.max_items == 1 else "items"
        causes.append(_error("Too many", path, len(value), f"must have at most {node.max_items} {unit}"))
    if node.unique_items:
        seen = [json.dumps(item, sort_keys=True) for item in value]
        if len(set(seen)) != len(seen):
            causes.append(_error("Invalid value", path, "", f"{path} in body shouldn't contain duplicates"))


def _validate_object(value: dict[str, JSON], node: _Node, path: str, causes: list[Cause], old: JSON) -> None:
    old_map = old if isinstance(old, dict) else {}
    if node.min_properties is not None and len(value) < node.min_properties:
        detail = f"{path} in body should have at least {node.min_properties} properties"
        causes.append(_error("Invalid value", path, len(value), detail))
        return
    if node.max_properties is not None and len(value) > node.max_properties:
        unit = "item" if node.max_properties == 1 else "items"
        causes.append(_error("Too many", path, len(value), f"must have at most {node.max_properties} {unit}"))
        return
    for key, child in node.properties.items():
        if key in value:
            _validate_value(value[key], child, _join(path, key), causes, old_map.get(key, _MISSING))
    if isinstance(node.additional, _Node):
        for key, item in value.items():
            if key not in node.properties:
                _validate_value(item, node.additional, _join(path, key), causes, old_map.get(key, _MISSING))
    for key in node.required:
        if key not in value:
            causes.append(_error("Required value", _join(path, key), ""))


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _format_valid(fmt: str, value: str) -> bool:
    """The formats kube-apiserver checks on CRD strings (others are accepted as written)."""
    try:
        if fmt == "date-time":
            if not _DATE_TIME.match(value):
                return False
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        elif fmt == "date":
            datetime.date.fromisoformat(value)
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
        elif fmt in ("uuid", "uuid3", "uuid4", "uuid5"):
            parsed = uuid.UUID(value)
            return len(value) == 36 and (fmt == "uuid" or parsed.version == int(fmt[-1]))
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "hostname":
            return _HOSTNAME.match(value) is not None
        elif fmt == "email":
            return _EMAIL.match(value) is not None
        elif fmt == "mac":
            return _MAC.match(value) is not None
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# x-kubernetes-list-type map and set


def _validate_list_types(value: JSON, node: _Node, path: str, causes: list[Cause]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = node.child(key)
            if child is not None:
                _validate_list_types(item, child, _join(path, key), causes)
    elif isinstance(value, list):
        if node.list_type == "set":
            seen: set[str] = set()
            for index, item in enumerate(value):
                marker = json.dumps(item, sort_keys=True)
                if marker in seen:
                    causes.append(_error("Duplicate value", f"{path}[{index}]", item))
                seen.add(marker)
        elif node.list_type == "map" and node.map_keys:
            seen_keys: set[str] = set()
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                keys = {key: item[key] for key in node.map_keys if key in item}
                marker = json.dumps(keys, sort_keys=True)
                if marker in seen_keys:
                    causes.append(_error("Duplicate value", f"{path}[{index}]", keys))
                seen_keys.add(marker)
        if node.items is not None:
            for index, item in enumerate(value):
                _validate_list_types(item, node.items, f"{path}[{index}]", causes)


# ---------------------------------------------------------------------------------------------------
# CEL x-kubernetes-validations


def _validate_rules(
    value: JSON, old: JSON, node: _Node, path: str, causes: list[Cause], *, is_resource: bool
) -> None:
    if value is None:
        return  # kube validates only non-null values
    if node.rules:
        _run_rules(value, old, node, path, causes, is_resource=is_resource)
    if isinstance(value, dict):
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            child = node.child(key)
            if child is not None and child.has_rules:
                _validate_rules(
                    item, old_map.get(key, _MISSING), child, _join(path, key), causes, is_resource=False
                )
    elif isinstance(value, list) and node.items is not None and node.items.has_rules:
        old_items = _correlate_list(value, old, node)
        for index, item in enumerate(value):
            _validate_rules(item, old_items[index], node.items, f"{path}[{index}]", causes, is_resource=False)


def _correlate_list(value: list[JSON], old: JSON, node: _Node) -> list[JSON]:
    """Old items for transition rules: only list-type map items correlate (by their keys), as in kube."""
    if not isinstance(old, list) or node.list_type != "map" or not node.map_keys:
        return [_MISSING] * len(value)
    by_key: dict[str, JSON] = {}
    for item in old:
        if isinstance(item, dict):
            by_key[json.dumps([item.get(key) for key in node.map_keys])] = item
    return [
        by_key.get(json.dumps([item.get(key) for key in node.map_keys]), _MISSING)
        if isinstance(item, dict)
        else _MISSING
        for item in value
    ]


def _cel_schema(node: _Node, *, is_resource: bool) -> Mapping[str, Any]:
    if not is_resource:
        return node.raw
    # At the resource root, rules see apiVersion, kind and metadata.name/generateName, as in kube.
    properties = dict(node.raw.get("properties") or {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}},
    }
    return {**node.raw, "properties": properties}


def _cel_value(value: JSON, node: _Node, *, is_resource: bool) -> celtypes.Value:
    if is_resource and isinstance(value, dict):
        meta = value.get("metadata") or {}
        value = {**value, "metadata": {key: meta[key] for key in ("name", "generateName") if key in meta}}
    return cel.to_cel(value, _cel_schema(node, is_resource=is_resource))


RULE_OUTCOME_CACHE_SIZE = 2048  # per schema node with rules


def _reads(rules: list[_Rule], name: str) -> frozenset[str] | None:
    fields: set[str] = set()
    for rule in rules:
        for program in (rule.program, rule.message_expression):
            if program is None:
                continue
            read = program.reads.get(name)
            if read is None:
                return None
            fields |= read
    return frozenset(fields)


def _rule_input(value: JSON, fields: frozenset[str] | None, *, is_resource: bool) -> JSON:
    """The part of an object its rules read: what they are evaluated on, and what their outcome is cached by.

    A partition's status write does not convert the whole partition to CEL (nor print it for the cache key) to
    check a rule on its name.
    """
    if not isinstance(value, dict):
        return value
    if fields is not None:
        value = {key: value[key] for key in fields if key in value}
    if is_resource and isinstance(value.get("metadata"), dict):
        meta = value["metadata"]
        value = {**value, "metadata": {key: meta[key] for key in ("name", "generateName") if key in meta}}
    return value


def _run_rules(
    value: JSON, old: JSON, node: _Node, path: str, causes: list[Cause], *, is_resource: bool
) -> None:
    has_old = old is not _MISSING and old is not None
    uses_old = has_old and any(rule.program.uses_old_self for rule in node.rules)
    unchanged = has_old and same(value, old)
    value = _rule_input(value, node.rule_reads["self"], is_resource=is_resource)
    if uses_old:
        old = _rule_input(old, node.rule_reads["oldSelf"], is_resource=is_resource)
    key = (path, _canonical(value), _canonical(old) if uses_old else "")
    if unchanged:
        # Ratcheting (kube >= 1.30): an unchanged node's non-transition rule errors become warnings.
        key = (path, key[1], key[2] + "\x00ratchet")
    outcome = node.rule_outcomes.get(key)
    if outcome is None:
        outcome = _evaluate_rules(
            value, old, node, path, has_old=has_old, ratchet=unchanged, is_resource=is_resource
        )
        if len(node.rule_outcomes) >= RULE_OUTCOME_CACHE_SIZE:
            node.rule_outcomes.pop(next(iter(node.rule_outcomes)))
        node.rule_outcomes[key] = outcome
    causes.extend(outcome)


def _canonical(value: JSON) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _evaluate_rules(
    value: JSON, old: JSON, node: _Node, path: str, *, has_old: bool, ratchet: bool, is_resource: bool
) -> list[Cause]:
    causes: list[Cause] = []
    variables: dict[str, celtypes.Value] = {"self": _cel_value(value, node, is_resource=is_resource)}
    if has_old and any(rule.program.uses_old_self for rule in node.rules):
        variables["oldSelf"] = _cel_value(old, node, is_resource=is_resource)
    shown: JSON | _Omitted = (
        _OMIT if node.type in ("object", "array") or isinstance(value, dict | list) else value
    )
    type_name = node.type or _json_type(value)
    for rule in node.rules:
        if rule.program.uses_old_self and not has_old:
            continue
        if ratchet and not rule.program.uses_old_self:
            continue
        try:
            result = rule.program.evaluate(variables)
        except cel.EvaluationError as error:
            causes.append(_error("Invalid value", path, type_name, _evaluation_error(error, rule)))
            continue
        except Exception as error:  # library functions raise plain Python errors
            causes.append(
                _error("Invalid value", path, type_name, f"{error} evaluating rule: {rule.rule.strip()}")
            )
            continue
        if isinstance(result, cel.EvaluationError):
            causes.append(_error("Invalid value", path, type_name, _evaluation_error(result, rule)))
            continue
        if isinstance(result, celtypes.BoolType) and bool(result):
            continue
        field = _join(path, rule.field_path) if rule.field_path else path
        detail = _message(rule, variables)
        causes.append(_rule_error(rule.reason, field, shown, detail))
    return causes


def _evaluation_error(error: cel.EvaluationError, rule: _Rule) -> str:
    args = error.args
    text = str(args[0]) if args else "evaluation error"
    nested = args[2] if len(args) > 2 else ()
    if text == "evaluation error" and len(args) > 2 and isinstance(nested, tuple) and nested:
        text = str(nested[0])
    if text.startswith("no such overload"):
        return f"'{text}': call arguments did not match a supported operator, function or macro signature for rule: {rule.rule.strip()}"
    return f"{text} evaluating rule: {rule.rule.strip()}"


def _message(rule: _Rule, variables: Mapping[str, celtypes.Value]) -> str:
    if rule.message_expression is not None:
        try:
            result = rule.message_expression.evaluate(variables)
        except Exception:  # kube falls back to the static message when messageExpression fails
            result = None
        if isinstance(result, str) and result.strip() and "\n" not in result:
            return str(result)
    if rule.message:
        return rule.message
    return f"failed rule: {rule.rule.strip()}"


def _rule_error(reason: str, field: str, value: JSON | _Omitted, detail: str) -> Cause:
    if reason == "FieldValueForbidden":
        return _error("Forbidden", field, "", detail)
    if reason == "FieldValueRequired":
        return _error("Required value", field, "", detail)
    if reason == "FieldValueDuplicate":
        return _error("Duplicate value", field, value)
    return _error("Invalid value", field, value, detail)
