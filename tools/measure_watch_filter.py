"""What the label-filtered ConfigMap watch saves: the operator's CPU and memory while kube-system churns.

Runs the operator (`superpod run`, a subprocess) against a sandbox with 16 CloudMatrix 384 nodes and their
device-info ConfigMaps, plus `--others` ConfigMaps of `--size` bytes in kube-system that are not the device
plugin's (kube-proxy's, coredns', an application's data). Once the operator is idle, those are rewritten at
`--rate` per second for `--seconds`; the operator's CPU seconds over that time (/proc/<pid>/stat) and its RSS
after are printed, first with the default `--configmap-selector` (the API server sends only the device plugin's
ConfigMaps), then with `--configmap-selector ""` (every ConfigMap of kube-system, as before), each on a fresh
sandbox.

    PYTHONPATH=. .venv/bin/python tools/measure_watch_filter.py [--others 100 --size 50000 --rate 20 --seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from superpod_sandbox.commands import bench_cluster

from tests.integration.operator.conftest import SPOD, Operator, add_a3_nodes, manifest, sandbox_cluster

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


async def measure(args: argparse.Namespace, selector: list[str]) -> dict[str, float]:
    async with sandbox_cluster() as (sandbox, api):
        await add_a3_nodes(api, 16)
        await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
        for index in range(args.others):
            await api.create(
                CONFIGMAPS, {"metadata": {"name": f"other-{index}"}, "data": {"x": "a" * args.size}}
            )
        operator = Operator(sandbox.kubeconfig, *selector)
        await operator.start(timeout=120)
        try:
            assert operator.process is not None
            await asyncio.sleep(5.0)  # settled: the SuperPod built, its nodes tainted
            before = bench_cluster.proc_status(operator.process.pid)
            began = time.monotonic()
            for step in range(int(args.rate * args.seconds)):
                await asyncio.sleep(max(0.0, began + step / args.rate - time.monotonic()))
                letter = "bc"[step % 2]
                await api.patch(
                    f"{CONFIGMAPS}/other-{step % args.others}", {"data": {"x": letter * args.size}}
                )
            await asyncio.sleep(2.0)  # the last events delivered
            after = bench_cluster.proc_status(operator.process.pid)
        finally:
            await operator.stop()
    return {"cpuSeconds": round(after["cpu"] - before["cpu"], 2), "rssMb": round(after["VmRSS"], 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--others", type=int, default=100, help="ConfigMaps in kube-system not the plugin's")
    parser.add_argument("--size", type=int, default=50_000, help="bytes of each")
    parser.add_argument("--rate", type=float, default=20.0, help="rewrites per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long they are rewritten")
    args = parser.parse_args()
    updates = int(args.rate * args.seconds)
    print(
        f"{args.others} other ConfigMaps of {args.size} bytes in kube-system, {updates} rewrites in {args.seconds:g} s"
    )
    for label, selector in (
        ("filtered (default)", []),
        ('unfiltered (--configmap-selector "")', ["--configmap-selector", ""]),
    ):
        result = await measure(args, selector)
        print(
            f"{label:<38} operator CPU {result['cpuSeconds']:>6} s ({result['cpuSeconds'] * 1000 / updates:.2f} ms "
            f"per rewrite), RSS {result['rssMb']} MB"
        )


if __name__ == "__main__":
    asyncio.run(main())
