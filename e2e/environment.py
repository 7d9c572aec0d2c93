"""Where the e2e scenarios run: the cluster in `E2E_KUBECONFIG`, or (by default) a sandbox on this machine.

- `E2E_KUBECONFIG` set: a real cluster (kind, see e2e/kind/run.sh) with the chart installed and a simulated
  fleet running (`superpod sim up`). The scenarios use what is installed; they find the simulated nodes by their
  label, the NPU-Exporter at `E2E_EXPORTER_URL` and the operator's metrics at `E2E_OPERATOR_METRICS_URL` (both
  optional: run.sh port-forwards them).
- Otherwise: a sandbox API server in the test's event loop, the CRDs applied with the real kubectl, a simulated
  CloudMatrix 384 (48 nodes, kubelet and device-plugin stand-in, the Job and Deployment controllers,
  NPU-Exporter) and the real operator as a
  subprocess with its HTTPS admission webhook and its metrics endpoint.

Either way the scenarios see a `Target`: an API client, a kubectl bound to the kubeconfig, the fleet's node
names and the two metrics URLs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from superpod.cluster import client
from superpod_sandbox.apiserver import server
from superpod_sandbox.sim import layout, nodes
from superpod_sandbox.sim import simulator as sim_fleet

from tests.conftest import ROOT, TOOLS_BIN
from tests.integration.admission.conftest import WebhookOperator
from tests.integration.operator.conftest import eventually, free_port

JSON = dict[str, Any]
PROFILE = "cloudmatrix-384"
SUPERPOD = "cm384-a"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
KUBECTL = Path(os.environ.get("E2E_KUBECTL") or TOOLS_BIN / "kubectl")  # the real kubectl


@dataclasses.dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclasses.dataclass
class Target:
    """A cluster with the operator and a simulated fleet, as the scenarios see it."""

    kubeconfig: str
    api: client.KubeClient
    nodes: tuple[str, ...]  # the simulated fleet's node names
    exporter_url: str | None  # the simulated NPU-Exporter's /metrics
    operator_metrics_url: str | None  # the operator's /metrics
    operator: WebhookOperator | None = None  # the operator subprocess (sandbox only)
    sandbox: server.Sandbox | None = None
    cache_dir: str = dataclasses.field(default_factory=lambda: tempfile.mkdtemp(prefix="e2e-kubectl-"))

    async def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        """The real kubectl against the target (run without blocking the loop that may serve the sandbox)."""
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL),
            "--kubeconfig",
            self.kubeconfig,
            "--cache-dir",
            self.cache_dir,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        result = Result(int(process.returncode or 0), out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr or result.stdout}")
        return result

    async def apply(self, *documents: JSON) -> Result:
        """`kubectl apply -f -` of the documents, as a user applies manifests."""
        return await self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(documents, sort_keys=False))


def cluster_kubeconfig() -> str | None:
    return os.environ.get("E2E_KUBECONFIG") or None


@asynccontextmanager
async def target() -> AsyncIterator[Target]:
    """The target of this run: the cluster in E2E_KUBECONFIG, or a sandbox started here."""
    kubeconfig = cluster_kubeconfig()
    if kubeconfig:
        async with _cluster(kubeconfig) as found:
            yield found
    else:
        async with sandbox_target() as started:
            yield started


@asynccontextmanager
async def _cluster(kubeconfig: str) -> AsyncIterator[Target]:
    async with client.KubeClient(client.credentials_from_kubeconfig(kubeconfig)) as api:
        listed = await api.list("/api/v1/nodes", labelSelector=nodes.FLEET_LABEL)
        fleets = {(n["metadata"].get("labels") or {})[nodes.FLEET_LABEL] for n in listed}
        profiles = {layout.parse_fleet(fleet)[0] for fleet in fleets}
        if profiles != {PROFILE}:
            raise RuntimeError(
                f"E2E_KUBECONFIG: the scenarios need one simulated {PROFILE} fleet with superPodID 0 "
                f"(superpod sim up --profile {PROFILE}); found {sorted(fleets) or 'none'}"
            )
        yield Target(
            kubeconfig=kubeconfig,
            api=api,
            nodes=tuple(sorted(n["metadata"]["name"] for n in listed)),
            exporter_url=os.environ.get("E2E_EXPORTER_URL") or None,
            operator_metrics_url=os.environ.get("E2E_OPERATOR_METRICS_URL") or None,
        )


@asynccontextmanager
async def sandbox_target(
    *, profile: str = PROFILE, fleet_nodes: int | None = None, operator_token: str = "sandbox"
) -> AsyncIterator[Target]:
    """A sandbox with the CRDs, a simulated fleet and the operator subprocess (webhook and metrics on).

    `operator_token` is the bearer token in the operator's own kubeconfig, so a fault plan can aim at it.
    """
    async with (
        server.Sandbox() as sandbox,
        client.KubeClient(client.credentials_from_kubeconfig(sandbox.kubeconfig)) as api,
    ):
        found = Target(
            kubeconfig=sandbox.kubeconfig, api=api, nodes=(), exporter_url=None, operator_metrics_url=None
        )
        await found.kubectl("apply", "-f", str(ROOT / "crds"))
        options = sim_fleet.Options(
            metrics_port=0, plugin_sync_seconds=0.2, resync_seconds=0.5, controllers=True
        )
        async with sim_fleet.Fleet(profile, api=api, nodes=fleet_nodes, options=options) as fleet:
            metrics_port = free_port()
            operator = WebhookOperator(
                _kubeconfig_with_token(sandbox.kubeconfig, operator_token),
                "--metrics-port",
                str(metrics_port),
            )
            await operator.start()
            try:
                await eventually(lambda: api.get_or_none(f"{WEBHOOKS}/superpod-operator"), timeout=20)
                yield dataclasses.replace(
                    found,
                    nodes=fleet.node_names,
                    exporter_url=fleet.metrics_url,
                    operator_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                    operator=operator,
                    sandbox=sandbox,
                )
            finally:
                await operator.stop()


def _kubeconfig_with_token(kubeconfig: str, token: str) -> str:
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = Path(tempfile.mkdtemp(prefix="e2e-operator-")) / "kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)
