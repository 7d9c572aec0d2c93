"""The chart's crds/ holds byte-identical copies of the top-level crds/, whatever files that holds."""

from __future__ import annotations

from tests import conftest
from tests.chart import helm as chart_helm

TOP_LEVEL = conftest.ROOT / "crds"
IN_CHART = chart_helm.CHART / "crds"
FIX = f"fix: rm {IN_CHART}/*.yaml && cp {TOP_LEVEL}/*.yaml {IN_CHART}/"


def _files(directory):
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.yaml"))}


def test_the_chart_ships_the_same_crd_files_as_the_repository():
    assert sorted(_files(IN_CHART)) == sorted(_files(TOP_LEVEL)), FIX


def test_every_chart_crd_is_byte_identical_to_its_top_level_source():
    top_level = _files(TOP_LEVEL)
    drifted = [name for name, content in _files(IN_CHART).items() if top_level.get(name) != content]
    assert drifted == [], f"{drifted} drifted from crds/; {FIX}"


def test_the_chart_holds_no_other_files_in_crds():
    assert sorted(path.name for path in IN_CHART.iterdir()) == sorted(_files(TOP_LEVEL)), FIX


def test_helm_installs_every_crd_with_include_crds(helm):
    rendered = chart_helm.find(helm.template(), "CustomResourceDefinition")
    assert len(rendered) == len(_files(TOP_LEVEL))
