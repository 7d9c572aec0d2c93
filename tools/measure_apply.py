"""Time from `kubectl apply -f partition.yaml` to the partition's Allocated status, one partition at a time.

Runs the operator (`superpod run`, a subprocess) against a sandbox with a CloudMatrix 384's 48 nodes and
applies partitions of 2..16 dies with the real kubectl, polling the status every 5 ms.

    PYTHONPATH=. .venv/bin/python tools/measure_apply.py [--count 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from superpod.cluster import client
from superpod.sandbox import server

from tests.conftest import TOOLS_BIN
from tests.integration.operator.conftest import Operator, add_a3_nodes, apply_crds, eventually, manifest

SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"


async def main(count: int) -> None:
    async with server.Sandbox() as sandbox:
        credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
        async with client.KubeClient(credentials) as api:
            await apply_crds(api)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
            await api.create("/api/v1/namespaces", namespace)
            await add_a3_nodes(api, 48)
            operator = Operator(sandbox.kubeconfig)
            await operator.start()
            samples: list[float] = []
            kubectl: list[float] = []
            try:
                await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
                await eventually(lambda: _ready(api), timeout=30)
                directory = Path(tempfile.mkdtemp())
                for i in range(count):
                    name = f"apply-{i}"
                    path = directory / f"{name}.yaml"
                    path.write_text(yaml.safe_dump(_partition(name, [2, 4, 8, 16][i % 4])))
                    started = time.perf_counter()
                    process = await asyncio.create_subprocess_exec(
                        str(TOOLS_BIN / "kubectl"), "apply", "-f", str(path),
                        env={**os.environ, "KUBECONFIG": sandbox.kubeconfig},
                        stdout=asyncio.subprocess.DEVNULL,
                    )  # fmt: skip
                    await process.wait()
                    applied = time.perf_counter()
                    await eventually(lambda name=name: _allocated(api, name), timeout=30, interval=0.005)
                    samples.append(time.perf_counter() - started)
                    kubectl.append(applied - started)
            finally:
                await operator.stop()
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"kubectl apply -> Allocated: n={len(samples)} median {statistics.median(samples) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms; of which the kubectl process itself: median "
        f"{statistics.median(kubectl) * 1000:.0f} ms"
    )


async def _ready(api: client.KubeClient) -> bool:
    status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
    return bool((status.get("devices") or {}).get("total"))


async def _allocated(api: client.KubeClient, name: str) -> bool:
    obj = await api.get_or_none(f"{SPP}/{name}")
    return ((obj or {}).get("status") or {}).get("phase") == "Allocated"


def _partition(name: str, npus: int) -> dict:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": npus},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    asyncio.run(main(parser.parse_args().count))
