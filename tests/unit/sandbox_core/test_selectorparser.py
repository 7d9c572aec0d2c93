"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.listwatch import selectorparser


def obj(labels=None, **fields):
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels or {}}, **fields}


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {"a": "3"}, True),
        ("a notin (1,2)", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("example.com/role=db,tier", {"example.com/role": "db", "tier": "x"}, True),
        ("a=1, b in (x)", {"a": "1", "b": "y"}, False),
    ],
)
def test_label_selectors(selector, labels, selected):
    predicate = selectorparser.labels(selector)
    assert predicate is not None and predicate(obj(labels)) is selected


def test_an_empty_label_selector_selects_everything():
    assert selectorparser.labels("") is None and selectorparser.labels(None) is None


def test_a_malformed_label_selector_is_a_400():
    with pytest.raises(errors.ApiError) as caught:
        selectorparser.labels("a in (1")
    assert caught.value.code == 400


@pytest.mark.parametrize(
    ("selector", "resource", "body", "selected"),
    [
        ("metadata.name=n", ("", "configmaps"), {}, True),
        ("metadata.namespace!=ns", ("", "configmaps"), {}, False),
        ("spec.nodeName=a", ("", "pods"), {"spec": {"nodeName": "a"}}, True),
        ("status.phase=Running,spec.nodeName=", ("", "pods"), {"status": {"phase": "Running"}}, True),
        (
            "involvedObject.kind=Pod,involvedObject.name=p",
            ("", "events"),
            {"involvedObject": {"kind": "Pod", "name": "p"}},
            True,
        ),
        ("type=Warning", ("", "events"), {"type": "Normal"}, False),
        ("spec.unschedulable=true", ("", "nodes"), {"spec": {"unschedulable": True}}, True),
    ],
)
def test_field_selectors(selector, resource, body, selected):
    predicate = selectorparser.fields(selector, resource)
    assert predicate is not None and predicate(obj(**body)) is selected


def test_a_field_the_kind_does_not_support_is_a_400():
    with pytest.raises(errors.ApiError) as caught:
        selectorparser.fields("spec.nodeName=a", ("", "configmaps"))
    assert (
        caught.value.code == 400
        and caught.value.status["message"] == "field label not supported: spec.nodeName"
    )


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("metadata.name=a", "a"),
        ("type=x,metadata.name==b", "b"),
        ("metadata.name!=a", None),
        ("", None),
        (None, None),
    ],
)
def test_an_exact_name_is_found_for_direct_lookup(selector, name):
    assert selectorparser.exact_name(selector) == name
