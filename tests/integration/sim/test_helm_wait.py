"""`helm install --wait` of the operator's chart finishes on the sandbox: the controllers and the simulated
kubelet bring its Deployment to Available, as a cluster would (nothing runs the operator itself, so its webhooks
are installed with failurePolicy Ignore: the API server cannot reach them)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator

import pytest_asyncio
from superpod_sandbox.sim import simulator

from tests.chart import helm as chart_helm
from tests.conftest import TOOLS_BIN
from tests.integration.sim.conftest import FAST

NAMESPACE = "superpod-system"


@pytest_asyncio.fixture
async def fleet(sandbox, api) -> AsyncIterator[simulator.Fleet]:
    options = dataclasses.replace(FAST, controllers=True, metrics_port=None)
    async with simulator.Fleet(
        "cloudmatrix-384", kubeconfig=sandbox.kubeconfig, nodes=2, options=options
    ) as sim:
        yield sim


async def _run(*command: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_helm_install_wait_of_the_chart_finishes_once_the_operator_deployment_is_available(
    fleet, api, sandbox, tmp_path
):
    env = {
        **os.environ,
        "KUBECONFIG": sandbox.kubeconfig,
        "HELM_CACHE_HOME": str(tmp_path / "cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "config"),
        "HELM_DATA_HOME": str(tmp_path / "data"),
    }
    code, out, err = await _run(
        str(chart_helm.BINARY), "install", "superpod-operator", str(chart_helm.CHART),
        "--namespace", NAMESPACE, "--create-namespace", "--wait", "--timeout", "180s",
        "--set", "webhook.failurePolicy=Ignore",
        env=env,
    )  # fmt: skip
    assert code == 0, err
    assert "STATUS: deployed" in out
    deployment = await api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/superpod-operator")
    status = deployment["status"]
    assert status["availableReplicas"] == status["readyReplicas"] == deployment["spec"]["replicas"] == 2
    pods = await api.list(f"/api/v1/namespaces/{NAMESPACE}/pods")
    assert len(pods) == 2 and all(pod["status"]["phase"] == "Running" for pod in pods)
    assert {pod["spec"]["serviceAccountName"] for pod in pods} == {"superpod-operator"}
    code, out, err = await _run(
        str(TOOLS_BIN / "helm"), "status", "superpod-operator", "-n", NAMESPACE, "-o", "json", env=env
    )
    assert code == 0, err
    assert json.loads(out)["info"]["status"] == "deployed"
