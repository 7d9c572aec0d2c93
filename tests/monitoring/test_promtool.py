"""`promtool check rules` accepts the chart's rule files and `promtool test rules` covers every alert."""

from __future__ import annotations

import pathlib
import subprocess

import pytest
import yaml
from superpod.metrics import dashboard, generate, rules

from tests.conftest import ROOT

ALERT_TESTS = pathlib.Path(__file__).with_name("alerts_test.yaml")
RULE_FILES = [ROOT / generate.CHART_FILES / name for name in ("alerts.yaml", "recording-rules.yaml")]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, cwd=ROOT)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda path: path.name)
def test_promtool_accepts_the_rule_file(promtool, path):
    result = _run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load(path.read_text())["groups"]
    assert f"SUCCESS: {sum(len(group['rules']) for group in groups)} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass(promtool):
    result = _run(promtool, "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_where_it_fires():
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {
        check["alertname"]
        for case in cases
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert firing == {alert.name for alert in rules.ALERTS}


def test_the_alert_tests_fail_when_an_alert_never_fires(promtool, tmp_path):
    alerts = yaml.safe_load((ROOT / generate.CHART_FILES / "alerts.yaml").read_text())
    for rule in alerts["groups"][0]["rules"]:
        if rule["alert"] == "SuperPodDeviceUnhealthy":
            rule["expr"] = rule["expr"].replace("> 0", "> 1000")
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump(alerts))
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    tests["rule_files"] = [str(tmp_path / "alerts.yaml")]
    (tmp_path / "alerts_test.yaml").write_text(yaml.safe_dump(tests))
    result = _run(promtool, "test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert result.returncode != 0
    assert "SuperPodDeviceUnhealthy" in result.stdout + result.stderr


def test_the_dashboards_starved_tenants_query_counts_the_unused_share_of_quotas_that_wait(promtool, tmp_path):
    """Dashboard "Tenants starved below their share", evaluated by promtool on two replicas' series: team-b
    waits 16 devices below its share; team-a borrows; team-c is below its share but nothing of it waits."""
    labels = 'job="superpod-operator",superpod="cm384-a"'

    def series(name: str, quota: str, value: int, extra: str = "", instance: str = "op-0") -> dict[str, str]:
        return {
            "series": f'{name}{{{labels},instance="{instance}",quota="{quota}"{extra}}}',
            "values": f"{value}x10",
        }

    inputs = [
        series("superpod_quota_nominal_devices", "team-b", 32),
        series("superpod_quota_used_devices", "team-b", 16),
        series("superpod_quota_pending_partitions", "team-b", 1, ',reason="Preempted"'),
        series("superpod_quota_pending_partitions", "team-b", 1, ',reason="Preempted"', instance="op-1"),
        series("superpod_quota_nominal_devices", "team-a", 32),
        series("superpod_quota_used_devices", "team-a", 48),
        series("superpod_quota_pending_partitions", "team-a", 2, ',reason="QuotaExceeded"'),
        series("superpod_quota_nominal_devices", "team-c", 32),
        series("superpod_quota_used_devices", "team-c", 0),
        series("superpod_quota_pending_partitions", "team-c", 0, ',reason="InsufficientCapacity"'),
    ]
    expr = dashboard.fill(dashboard.STARVED, {"superpod": "cm384-a"})
    expected = [
        {"labels": f'{{superpod="cm384-a",quota="{quota}"}}', "value": value}
        for quota, value in (("team-a", 0), ("team-b", 16), ("team-c", 0))
    ]
    case = {
        "rule_files": [str(RULE_FILES[0])],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [{"expr": expr, "eval_time": "5m", "exp_samples": expected}],
            }
        ],
    }
    path = tmp_path / "starved_test.yaml"
    path.write_text(yaml.safe_dump(case))
    result = _run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
