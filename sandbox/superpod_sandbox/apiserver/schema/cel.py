"""CEL for `x-kubernetes-validations`: compile a rule once, evaluate it against JSON values.

Wraps the pure-Python `cel-python` package (import name `celpy`) with what kube-apiserver adds:

- values are converted by schema, as kube does: `integer` -> int, `number` -> double (even for `1`),
  objects -> maps, arrays -> lists, and `x-kubernetes-int-or-string` / preserve-unknown nodes stay dynamic;
- the Kubernetes string and list library functions rules commonly use (`lowerAscii`, `upperAscii`, `trim`,
  `replace`, `split`, `join`, `indexOf`, `lastIndexOf`, `substring`, `charAt`, `find`, `findAll`, `isSorted`,
  `sum`, `min`, `max`); `size`, `matches`, `startsWith`, `endsWith`, `contains`, `has()` and the
  `all`/`exists`/`exists_one`/`map`/`filter` macros come from cel-python itself.

Expressions run as Python closures (`celcompile`, same semantics as cel-python's interpreter, about ten times
faster); what that compiler does not cover runs in cel-python's interpreter.

Known differences from kube-apiserver: rules are parsed, not type-checked, so a reference to an unknown field
is reported when the rule runs (as an evaluation error) instead of when the CRD is created; there is no cost
budget; `optionalOldSelf` and the `optional` library, quantities, URLs and IP/CIDR functions are not available.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

import celpy
import lark
from celpy import adapter, celparser, celtypes, evaluation

from superpod_sandbox.apiserver.schema import celcompile

JSON = Any  # a value decoded from JSON: dict, list, str, int, float, bool or None

_ENVIRONMENT = celpy.Environment()


EvaluationError = evaluation.CELEvalError


class RuleCompileError(ValueError):
    """A rule or messageExpression that cel-python cannot parse."""


RULE_VARIABLES = frozenset({"self", "oldSelf"})


@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled CEL expression."""

    source: str
    uses_old_self: bool  # a transition rule: runs only when the old value exists
    reads: Mapping[str, frozenset[str] | None]
    """Per variable (`self`, `oldSelf`) the fields the expression selects from it (`self.spec` -> spec), or None
    when it uses the variable otherwise (compared whole, indexed, a method called on it): the value a rule sees
    can leave out every other field without changing its outcome."""
    runner: celpy.Runner  # cel-python's interpreter
    fast: (
        Callable[[Mapping[str, Any]], Any] | None
    )  # the same expression as closures (celcompile), if covered

    def evaluate(self, variables: Mapping[str, celtypes.Value]) -> celtypes.Value:
        """Run the program; raises `EvaluationError` on evaluation errors (no such key, division by 0...)."""
        if self.fast is not None:
            return self.fast(variables)  # type: ignore[no-any-return]
        return self.runner.evaluate(dict(variables))


def compile_expression(
    source: str, variables: frozenset[str] = RULE_VARIABLES, messages: frozenset[str] = frozenset()
) -> Program:
    """Parse `source` once; raise RuleCompileError when it is not valid CEL.

    `variables` are the names the caller binds when evaluating (`self`, `oldSelf` for CRD rules); `messages` the
    message types it may construct (`JSONPatch`, `Object` in a MutatingAdmissionPolicy), as maps of their fields.
    """
    try:
        tree = _ENVIRONMENT.compile(source)
    except celparser.CELParseError as error:
        raise RuleCompileError(str(error).strip()) from error
    idents = tree.scan_values(lambda token: isinstance(token, lark.Token) and token.type == "IDENT")
    uses_old_self = any(token == "oldSelf" for token in idents)
    reads = {name: _selected_fields(tree, name) for name in variables}
    try:
        fast: Callable[[Mapping[str, Any]], Any] | None = celcompile.compile_tree(
            tree, KUBERNETES_LIBRARY, variables, messages
        )
    except celcompile.Unsupported:
        fast = None
    return Program(
        source, uses_old_self, reads, _ENVIRONMENT.program(tree, functions=KUBERNETES_LIBRARY), fast
    )


def _selected_fields(tree: lark.Tree[Any], name: str) -> frozenset[str] | None:
    """The fields `name.<field>` selects in the parse tree; None if `name` appears any other way."""
    selected: set[str] = set()
    seen: set[int] = set()  # the `ident` nodes of `name` found under a field selection
    for node in tree.iter_subtrees():
        if node.data != "member_dot" or len(node.children) != 2:
            continue
        target, field = node.children
        ident = _bare_ident(target)
        if ident is not None and ident.children[0] == name and isinstance(field, lark.Token):
            selected.add(str(field))
            seen.add(id(ident))
    for node in tree.iter_subtrees():
        if node.data == "ident" and node.children and node.children[0] == name and id(node) not in seen:
            return None
    return frozenset(selected)


def _bare_ident(member: Any) -> lark.Tree[Any] | None:
    """The `ident` of a member that is a plain identifier (`member -> primary -> ident`), else None."""
    if not isinstance(member, lark.Tree) or member.data != "member" or len(member.children) != 1:
        return None
    primary = member.children[0]
    if not isinstance(primary, lark.Tree) or primary.data != "primary" or len(primary.children) != 1:
        return None
    ident = primary.children[0]
    return ident if isinstance(ident, lark.Tree) and ident.data == "ident" else None


def to_cel(value: JSON, schema: Mapping[str, Any] | None) -> celtypes.Value:
    """Convert a JSON value to CEL as kube does, typed by its (raw OpenAPI v3) schema node."""
    if value is None:
        return None
    if schema is None or schema.get("x-kubernetes-int-or-string") or "type" not in schema:
        return adapter.json_to_cel(value)
    declared = schema["type"]
    if declared == "object" and isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        converted: dict[celtypes.Value, celtypes.Value] = {}
        for key, item in value.items():
            item_schema = properties.get(key)
            if item_schema is None and isinstance(additional, dict):
                item_schema = additional
            converted[celtypes.StringType(key)] = to_cel(item, item_schema)
        return celtypes.MapType(converted)
    if declared == "array" and isinstance(value, list):
        items = schema.get("items")
        return celtypes.ListType([to_cel(item, items if isinstance(items, dict) else None) for item in value])
    if declared == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if declared == "integer" and isinstance(value, float) and value.is_integer():
        return celtypes.IntType(int(value))
    return adapter.json_to_cel(value)


def to_json(value: celtypes.Value) -> JSON:
    """A CEL value as plain JSON types, what a mutation's result is stored as. cel-python's own
    `CELJSONEncoder.to_python` leaves strings, ints and doubles as CEL subclasses, which the store would keep."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value


def _string_list(items: list[str]) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(item) for item in items])


def _split(text: str, separator: str, limit: int = -1) -> celtypes.ListType:
    if limit == 0:
        return celtypes.ListType([])
    if separator == "":
        parts = list(text)
        if limit > 0 and len(parts) > limit:
            parts = [*parts[: limit - 1], "".join(parts[limit - 1 :])]
        return _string_list(parts)
    return _string_list(text.split(separator, limit - 1 if limit > 0 else -1))


def _replace(text: str, old: str, new: str, limit: int = -1) -> celtypes.StringType:
    return celtypes.StringType(text.replace(old, new, limit))


def _index_of(container: Any, needle: Any, start: int = 0) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.find(needle, start))
    items = list(container)
    return celtypes.IntType(items.index(needle) if needle in items else -1)


def _last_index_of(container: Any, needle: Any) -> celtypes.IntType:
    if isinstance(container, str):
        return celtypes.IntType(container.rfind(needle))
    items = list(container)
    for position in range(len(items) - 1, -1, -1):
        if items[position] == needle:
            return celtypes.IntType(position)
    return celtypes.IntType(-1)


def _substring(text: str, start: int, end: int | None = None) -> celtypes.StringType:
    stop = len(text) if end is None else int(end)
    if not 0 <= start <= stop <= len(text):
        raise IndexError(f"substring({start}, {stop}) out of range for a string of length {len(text)}")
    return celtypes.StringType(text[start:stop])


def _char_at(text: str, index: int) -> celtypes.StringType:
    if not 0 <= index <= len(text):
        raise IndexError(f"index out of range: {index}")
    return celtypes.StringType(text[index : index + 1])


def _find(text: str, pattern: str) -> celtypes.StringType:
    match = re.search(pattern, text)
    return celtypes.StringType(match.group(0) if match else "")


def _find_all(text: str, pattern: str, limit: int = -1) -> celtypes.ListType:
    found = [match.group(0) for match in re.finditer(pattern, text)]
    return _string_list(found if limit < 0 else found[:limit])


def _sum(items: list[Any]) -> Any:
    total: Any = celtypes.IntType(0)
    for item in items:
        total = item if total == 0 and not isinstance(item, celtypes.IntType) else total + item
    return total


def _is_sorted(items: list[Any]) -> celtypes.BoolType:
    return celtypes.BoolType(all(left <= right for left, right in itertools.pairwise(items)))


def _min(items: list[Any]) -> Any:
    if len(items) == 0:
        raise ValueError("min called on an empty list")
    return min(items)


def _max(items: list[Any]) -> Any:
    if len(items) == 0:
        raise ValueError("max called on an empty list")
    return max(items)


KUBERNETES_LIBRARY: dict[str, Callable[..., Any]] = {
    "lowerAscii": lambda text: celtypes.StringType(text.lower()),
    "upperAscii": lambda text: celtypes.StringType(text.upper()),
    "trim": lambda text: celtypes.StringType(text.strip()),
    "replace": _replace,
    "split": _split,
    "join": lambda items, separator="": celtypes.StringType(separator.join(items)),
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "substring": _substring,
    "charAt": _char_at,
    "find": _find,
    "findAll": _find_all,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
}
