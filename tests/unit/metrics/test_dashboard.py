"""The dashboard's shape: variables, panels that each query something, a layout without overlaps."""

from __future__ import annotations

import pytest
from superpod.metrics import dashboard


def test_the_dashboard_declares_the_datasource_superpod_namespace_and_partition_variables():
    variables = {v["name"]: v for v in dashboard.dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "superpod", "namespace", "partition"]
    assert all(
        variables[name]["multi"] and variables[name]["includeAll"]
        for name in ("superpod", "namespace", "partition")
    )


@pytest.mark.parametrize(
    "topic",
    [
        "Devices by state",
        "Fragmentation",
        "Partitions",
        "Occupancy by rack",
        "Occupancy by node",
        "Link",
        "Interconnect traffic",
        "Latency",
        "Reconciles",
        "Quota use per tenant",
        "Tenants starved",
        "Pending partitions per tenant",
        "Preemptions",
    ],
)
def test_the_dashboard_has_a_panel_for_each_topic_the_issue_lists(topic):
    assert any(panel.title.startswith(topic) for panel in dashboard.PANELS)


def test_panels_tile_the_24_column_grid_without_overlapping():
    cells: set[tuple[int, int]] = set()
    for panel in dashboard.dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_every_query_filtering_partitions_uses_all_three_variables():
    for expr in dashboard.queries():
        if "superpod_partition_" in expr and "$partition" in expr:
            assert "$superpod" in expr and "$namespace" in expr


@pytest.mark.parametrize(
    ("expr", "variables", "expected"),
    [
        pytest.param(
            'x{a=~"$superpod"}', {"superpod": "sp"}, 'x{a=~"sp"}', id="a variable becomes its value"
        ),
        pytest.param(
            'x{a=~"$partition", b=~"$part"}',
            {"partition": "p", "part": "q"},
            'x{a=~"p", b=~"q"}',
            id="longer names are replaced first",
        ),
    ],
)
def test_fill_replaces_variables(expr, variables, expected):
    assert dashboard.fill(expr, variables) == expected
