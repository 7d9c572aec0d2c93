"""docs/metrics.md lists every series, recording rule and alert the code defines."""

from __future__ import annotations

import pytest
from superpod.metrics import collector, rules

from tests.conftest import ROOT

DOC = (ROOT / "docs" / "metrics.md").read_text()

NAMES = [
    *(
        pytest.param(f"`{s.name}` | {s.type} | {', '.join(s.labels) or '-'} |", id=s.name)
        for s in collector.SERIES
    ),
    *(pytest.param(f"`{r.record}`", id=r.record) for r in rules.RECORDINGS),
    *(pytest.param(f"`{a.name}`", id=a.name) for a in rules.ALERTS),
]


@pytest.mark.parametrize("row", NAMES)
def test_the_metrics_doc_lists_it_with_its_type_and_labels(row):
    assert row in DOC
