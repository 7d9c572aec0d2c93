"""Fixtures of the chart tests: the real helm binary (skipped with the reason when it is not installed) and
the chart rendered once per named value set (tests.chart.cases)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart import cases
from tests.chart import helm as chart_helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> chart_helm.Helm:
    if not chart_helm.BINARY.exists():
        pytest.skip(f"helm is not installed at {chart_helm.BINARY}: run `make tools` (make test does)")
    return chart_helm.Helm(chart_helm.BINARY, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def rendered(helm: chart_helm.Helm) -> Callable[[str], tuple[dict[str, Any], ...]]:
    """case name -> the manifests `helm template` renders for it (rendered once per session)."""

    @functools.cache
    def render(case: str) -> tuple[dict[str, Any], ...]:
        return tuple(helm.template(cases.VALUE_SETS[case]))

    return render
