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

from tests.conftest import TOOLS_BIN
from tests.integration.operator.conftest import (
    SPOD,
    Operator,
    add_a3_nodes,
    eventually,
    manifest,
    partition,
    phase_is,
    sandbox_cluster,
)


async def main(count: int) -> None:
    async with sandbox_cluster() as (sandbox, api):
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
                path.write_text(yaml.safe_dump(partition(name, [2, 4, 8, 16][i % 4])))
                started = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    str(TOOLS_BIN / "kubectl"), "apply", "-f", str(path),
                    env={**os.environ, "KUBECONFIG": sandbox.kubeconfig},
                    stdout=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                await process.wait()
                applied = time.perf_counter()
                await eventually(
                    lambda name=name: phase_is(api, name, "Allocated"), timeout=30, interval=0.005
                )
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    asyncio.run(main(parser.parse_args().count))
