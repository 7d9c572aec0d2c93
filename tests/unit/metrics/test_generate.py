"""The chart's monitoring files are generated from operator/superpod/metrics and must not drift."""

from __future__ import annotations

import json
import shutil

import yaml
from superpod.metrics import dashboard, generate, rules

from tests.conftest import ROOT


def test_the_committed_chart_files_are_what_the_generator_writes():
    assert generate.stale(ROOT) == [], "run: python -m superpod.metrics.generate"
    assert generate.main(["--root", str(ROOT), "--check"]) == 0


def test_the_check_names_a_file_edited_by_hand(tmp_path):
    shutil.copytree(ROOT / generate.CHART_FILES, tmp_path / generate.CHART_FILES)
    edited = tmp_path / generate.CHART_FILES / "dashboard.json"
    edited.write_text(edited.read_text().replace("SuperPod operator", "Edited by hand", 1))
    assert generate.stale(tmp_path) == ["dashboard.json"]
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1
    generate.main(["--root", str(tmp_path)])
    assert generate.stale(tmp_path) == []


def test_the_files_hold_the_rules_and_the_dashboard():
    files = ROOT / generate.CHART_FILES
    alerts = yaml.safe_load((files / "alerts.yaml").read_text())["groups"][0]["rules"]
    assert [rule["alert"] for rule in alerts] == [alert.name for alert in rules.ALERTS]
    assert all(rule["annotations"]["runbook"] for rule in alerts)
    records = yaml.safe_load((files / "recording-rules.yaml").read_text())["groups"][0]["rules"]
    assert [rule["record"] for rule in records] == [rule.record for rule in rules.RECORDINGS]
    assert json.loads((files / "dashboard.json").read_text()) == dashboard.dashboard()
