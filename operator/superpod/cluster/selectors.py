"""Matching Kubernetes label selectors (matchLabels + matchExpressions) against a node's labels."""

from __future__ import annotations

from collections.abc import Mapping

from superpod.api import common


def matches(selector: common.LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """True when `labels` satisfy every requirement; an absent selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions or []:
        present = requirement.key in labels
        values = requirement.values or []
        operator = requirement.operator
        if operator is common.LabelSelectorOperator.IN and not (
            present and labels[requirement.key] in values
        ):
            return False
        if operator is common.LabelSelectorOperator.NOT_IN and present and labels[requirement.key] in values:
            return False
        if operator is common.LabelSelectorOperator.EXISTS and not present:
            return False
        if operator is common.LabelSelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True


def to_query(selector: common.LabelSelector | None) -> str:
    """The selector as a `labelSelector` query string (for server-side filtering of lists and watches)."""
    if selector is None:
        return ""
    parts = [f"{key}={value}" for key, value in (selector.match_labels or {}).items()]
    for requirement in selector.match_expressions or []:
        values = ",".join(requirement.values or [])
        match requirement.operator:
            case common.LabelSelectorOperator.IN:
                parts.append(f"{requirement.key} in ({values})")
            case common.LabelSelectorOperator.NOT_IN:
                parts.append(f"{requirement.key} notin ({values})")
            case common.LabelSelectorOperator.EXISTS:
                parts.append(requirement.key)
            case common.LabelSelectorOperator.DOES_NOT_EXIST:
                parts.append(f"!{requirement.key}")
    return ",".join(parts)
