"""Label and field selectors in kube's text syntax, compiled once per request into predicates.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND).
Field selectors: `f=v`, `f==v`, `f!=v` over the fields kube-apiserver supports for each kind; any other field
is a 400, as in kube ("field label not supported: f").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry.resources import GroupResource

Object = dict[str, Any]
Predicate = Callable[[Object], bool]

_EVENT_FIELDS = {
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "source", "type",
}  # fmt: skip
FIELDS: dict[GroupResource, set[str]] = {
    ("", "pods"): {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    },
    ("", "events"): _EVENT_FIELDS,
    ("events.k8s.io", "events"): _EVENT_FIELDS,
    ("", "nodes"): {"spec.unschedulable"},
    ("", "secrets"): {"type"},
    ("", "namespaces"): {"status.phase"},
    ("apps", "replicasets"): {"status.replicas"},
}  # fmt: skip
_LABEL_KEY = r"[A-Za-z0-9./_-]+"
_REQUIREMENT = re.compile(
    rf"\s*(?:(?P<not>!)\s*(?P<nkey>{_LABEL_KEY})"
    rf"|(?P<key>{_LABEL_KEY})\s*(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9._-]*)"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)|(?P<exists>)))\s*(?:,|$)"
)


def labels(text: str | None) -> Predicate | None:
    """Compile a label selector; None when it selects everything."""
    if not text or not text.strip():
        return None
    checks = [_label_check(match) for match in _requirements(text)]
    return lambda obj: _labels_match(obj, checks)


def label_values(text: str | None) -> tuple[str, frozenset[str]] | None:
    """A label key the selector requires to have one of some values (`k=v`, `k==v`, `k in (v,w)`), and those
    values: only objects labelled so can match, so a list can start from them (`Store.labelled`)."""
    if not text or not text.strip():
        return None
    for match in _requirements(text):
        if match.group("op") in ("=", "=="):
            return match.group("key"), frozenset((match.group("value"),))
        if match.group("setop") == "in":
            values = match.group("values").split(",")
            return match.group("key"), frozenset(item.strip() for item in values if item.strip())
    return None


def _requirements(text: str) -> list[re.Match[str]]:
    found = []
    position = 0
    while position < len(text):
        match = _REQUIREMENT.match(text, position)
        if match is None or match.end() == position:
            raise errors.bad_request(f"unable to parse requirement: found '{text[position:]}'")
        position = match.end()
        found.append(match)
    return found


def _labels_match(obj: Object, checks: list[Callable[[dict[str, str]], bool]]) -> bool:
    object_labels = obj["metadata"].get("labels") or {}
    return all(check(object_labels) for check in checks)


def _label_check(match: re.Match[str]) -> Callable[[dict[str, str]], bool]:
    if match.group("not"):
        key = match.group("nkey")
        return lambda labels: key not in labels
    key = match.group("key")
    op = match.group("op")
    if op is not None:
        value = match.group("value")
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    setop = match.group("setop")
    if setop is not None:
        values = {item.strip() for item in match.group("values").split(",") if item.strip()}
        if setop == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels


def field_value(obj: Object, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # Event.source is selected by its component
        return str(value.get("component", ""))
    return str(value)


def fields(text: str | None, resource: GroupResource, extra: set[str] | None = None) -> Predicate | None:
    """Compile a field selector for one resource; None when it selects everything."""
    if not text or not text.strip():
        return None
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(resource, set()) | (extra or set())
    checks: list[tuple[str, bool, str]] = []
    for term in text.split(","):
        term = term.strip()
        if not term:
            continue
        match = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", term)
        if match is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match.group(1), match.group(2), match.group(3)
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        checks.append((field, op == "!=", value))
    return lambda obj: all((field_value(obj, f) == v) != negate for f, negate, v in checks)


def exact_name(text: str | None) -> str | None:
    """The name a field selector pins with `metadata.name=<name>` (or `==`), if it does."""
    for term in (text or "").split(","):
        match = re.fullmatch(r"\s*metadata\.name\s*==?\s*(\S+)\s*", term)
        if match is not None:
            return match.group(1)
    return None


def both(*predicates: Predicate | None) -> Predicate | None:
    chosen = [p for p in predicates if p is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]
    return lambda obj: all(p(obj) for p in chosen)
