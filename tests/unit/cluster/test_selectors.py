import pytest
from superpod.api import common
from superpod.cluster import selectors

NODE = {"accelerator": "huawei-Ascend910", "huawei.com/topotree.superpodid": "0", "zone": "a"}


def _selector(**spec):
    return common.LabelSelector.model_validate(spec)


@pytest.mark.parametrize(
    ("case", "selector", "expected"),
    [
        ("no selector selects every node", None, True),
        ("equal labels match", _selector(matchLabels={"zone": "a"}), True),
        ("a different value does not match", _selector(matchLabels={"zone": "b"}), False),
        (
            "In matches a listed value",
            _selector(matchExpressions=[{"key": "zone", "operator": "In", "values": ["a", "b"]}]),
            True,
        ),
        (
            "In needs the label",
            _selector(matchExpressions=[{"key": "rack", "operator": "In", "values": ["1"]}]),
            False,
        ),
        (
            "NotIn refuses a listed value",
            _selector(matchExpressions=[{"key": "zone", "operator": "NotIn", "values": ["a"]}]),
            False,
        ),
        (
            "NotIn accepts a missing label",
            _selector(matchExpressions=[{"key": "rack", "operator": "NotIn", "values": ["a"]}]),
            True,
        ),
        (
            "Exists needs the key",
            _selector(matchExpressions=[{"key": "accelerator", "operator": "Exists"}]),
            True,
        ),
        (
            "DoesNotExist refuses the key",
            _selector(matchExpressions=[{"key": "zone", "operator": "DoesNotExist"}]),
            False,
        ),
        (
            "all requirements are ANDed",
            _selector(matchLabels={"zone": "a"}, matchExpressions=[{"key": "gpu", "operator": "Exists"}]),
            False,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_label_selector_matching(case, selector, expected):
    assert selectors.matches(selector, NODE) is expected


def test_selector_as_query_string():
    selector = _selector(
        matchLabels={"zone": "a"},
        matchExpressions=[
            {"key": "tier", "operator": "In", "values": ["x", "y"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "old", "operator": "DoesNotExist"},
        ],
    )
    assert selectors.to_query(selector) == "zone=a,tier in (x,y),gpu,!old"
