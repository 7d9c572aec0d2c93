"""The chart's files/ (recording-rules.yaml, alerts.yaml, dashboard.json: the sources of the PrometheusRule and
the Grafana ConfigMap) are valid for Prometheus: `promtool check rules` on the rule files, and on the
dashboard's queries (variables filled in) wrapped as recording rules, so a PromQL typo fails here, not in Grafana.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.chart import helm as chart_helm

FILES = chart_helm.CHART / "files"
# The alerts issue 9 asks for, by what they watch.
EXPECTED_ALERTS = {
    "SuperPodPartitionDegraded",
    "SuperPodDeviceUnhealthy",
    "SuperPodUBSwitchFault",
    "SuperPodPartitionsPendingWhileFragmented",
    "SuperPodOperatorDown",
    "SuperPodWebhookErrors",
    "SuperPodTenantStarved",  # issue 19: a tenant starved below its nominal share
}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed: run `make tools` (make test does)")
    return found


def _check_rules(promtool: str, path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def _alerts() -> list[dict]:
    return [
        rule
        for group in yaml.safe_load((FILES / "alerts.yaml").read_text())["groups"]
        for rule in group["rules"]
    ]


RULE_FILES = sorted(FILES.glob("*.yaml"))


@pytest.mark.parametrize("path", RULE_FILES, ids=[path.name for path in RULE_FILES])
def test_promtool_accepts_the_rule_file(promtool, path):
    result = _check_rules(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(group["rules"]) for group in yaml.safe_load(path.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in result.stdout


def test_every_alert_the_metrics_issue_lists_is_there_with_a_runbook_line():
    alerts = {rule["alert"]: rule for rule in _alerts()}
    assert set(alerts) == EXPECTED_ALERTS
    for name, rule in alerts.items():
        assert rule["annotations"].get("runbook"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    queries = [re.sub(r"\$\{?\w+\}?", ".*", query) for query in _dashboard_queries()]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = _check_rules(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promql_check_catches_a_broken_query(promtool, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(by (a) b"}]}]})
    )
    assert _check_rules(promtool, path).returncode != 0


def test_the_dashboard_reads_superpod_metrics_and_declares_its_variables():
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "superpod", "namespace"} <= variables
    for query in _dashboard_queries():
        assert re.search(r"\bsuperpod_\w+|\bup\{", query), f"{query} reads no superpod metric"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
