"""helm 4 against the sandbox: install, upgrade and uninstall of a chart with a CRD, a CR and a Deployment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TOOLS_BIN
from tests.integration.sandbox import widgets

CHART = Path(__file__).parent / "tiny_chart"


@pytest.fixture
def chart(tmp_path):
    copy = tmp_path / "chart"
    shutil.copytree(CHART, copy)
    (copy / "crds").mkdir()
    (copy / "crds" / "widgets.yaml").write_text(yaml.safe_dump(widgets.crd()))
    return copy


@pytest.fixture
def tools(sandbox_thread, tmp_path):
    env = {
        **os.environ,
        "KUBECONFIG": sandbox_thread.kubeconfig,
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }

    def run(tool, *args):
        command = [str(TOOLS_BIN / tool), *args]
        if tool == "kubectl":
            command[1:1] = ["--cache-dir", str(tmp_path / "kube-cache")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stderr}"
        return done.stdout

    return run


def test_helm_installs_upgrades_and_uninstalls_a_chart(tools, chart, sandbox_thread):
    tools("helm", "install", "demo", str(chart), "--wait=false")
    deployment = json.loads(
        tools("kubectl", "get", "deployment", "demo-web", "-o", "json", "--show-managed-fields")
    )
    assert deployment["spec"]["replicas"] == 1
    managers = {(m["manager"], m["operation"]) for m in deployment["metadata"]["managedFields"]}
    assert ("helm", "Apply") in managers, "helm 4 applies server-side"
    assert json.loads(tools("kubectl", "get", "widget", "demo-widget", "-o", "json"))["spec"]["size"] == 1

    tools("helm", "upgrade", "demo", str(chart), "--set", "replicas=3", "--set", "image=nginx:2")
    deployment = json.loads(tools("kubectl", "get", "deployment", "demo-web", "-o", "json"))
    assert deployment["spec"]["replicas"] == 3 and deployment["metadata"]["generation"] == 2
    assert json.loads(tools("kubectl", "get", "widget", "demo-widget", "-o", "json"))["spec"]["size"] == 3
    releases = json.loads(tools("helm", "list", "-o", "json"))
    assert [(r["name"], r["revision"], r["status"]) for r in releases] == [("demo", "2", "deployed")]

    tools("helm", "uninstall", "demo")
    assert tools("kubectl", "get", "deployments,widgets", "-o", "name").strip() == ""
    assert json.loads(tools("helm", "list", "-o", "json")) == []
    assert "widgets.example.dev" in tools("kubectl", "get", "crd", "-o", "name"), (
        "helm keeps CRDs on uninstall"
    )
