"""Operator replicas' CPU per second while idle, beside the watch events they are sent each second.

The live counterpart of `tools/measure_watch_events.py`: starts what `superpod bench e2e` starts (the sandbox
and its simulated fleets in processes of their own, `--replicas` operators on Leases), waits `--settle`
seconds, then reads each replica's CPU (/proc) over `--seconds` while the simulator's kubelets and device
plugins rewrite every Node and ConfigMap each `--heartbeat-seconds`: 2 x nodes / heartbeat-seconds events a
second on every replica, and nothing else to do. Run it with two periods (one very long: no events): the
difference of CPU per second over the difference of events per second is what an event costs a live replica,
and what is left without events is the rest of an idle replica's fixed cost.

    PYTHONPATH=. .venv/bin/python tools/measure_idle_replicas.py --superpods 4 --heartbeat-seconds 15
    PYTHONPATH=. .venv/bin/python tools/measure_idle_replicas.py --superpods 4 --heartbeat-seconds 100000

`--hold N` first places N partitions (bench e2e's sizes, spread over the SuperPods) and waits until each has its
rank table: what a replica pays each second for the partitions it holds (sweeps, audits) on top of the events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from superpod_sandbox.commands import bench_cluster, bench_e2e


async def measure(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="superpod-idle-"))
    async with bench_cluster.running(args, workdir, args.replicas, leased=args.replicas > 1) as cluster:
        if args.hold:
            await hold(cluster, args.hold, args.timeout)
        await asyncio.sleep(args.settle)
        before, began = cluster.operators_cpu(), time.monotonic()
        sandbox_before = cluster.sandbox_cpu()
        await asyncio.sleep(args.seconds)
        after, elapsed = cluster.operators_cpu(), time.monotonic() - began
        sandbox = (cluster.sandbox_cpu() - sandbox_before) / elapsed
        nodes = cluster.setup["nodes"]
    events = 2 * nodes / bench_cluster.heartbeat_seconds(args)
    load = os.getloadavg()
    for index, (start, end) in enumerate(zip(before, after, strict=True)):
        per_second = (end - start) / elapsed
        print(
            f"r{index}: {per_second * 1000:.1f} ms of CPU a second, {events:.1f} watch events a second sent "
            f"({per_second * 1e6 / events:.0f} us per event if they were all of it)"
        )
    print(
        f"{nodes} nodes of {args.profile}, heartbeats every {bench_cluster.heartbeat_seconds(args):g} s, "
        f"{elapsed:.0f} s measured; API server {sandbox * 1000:.1f} ms a second; load {load[0]:.2f} {load[2]:.2f}"
    )


async def hold(cluster: bench_cluster.Cluster, count: int, timeout: float) -> None:
    """Apply `count` partitions at once and wait until every one is placed and has its rank table."""
    from superpod.cluster import client

    names = [f"h{index:05d}" for index in range(count)]
    sizes = random.Random(1).choices(bench_e2e.SIZES, bench_e2e.WEIGHTS, k=count)
    path = client.resource_path("superpod.dev/v1alpha1", "superpodpartitions", bench_e2e.NAMESPACE)
    configmaps = client.resource_path("v1", "configmaps", bench_e2e.NAMESPACE)
    turns = asyncio.Semaphore(bench_e2e.IN_FLIGHT)

    async def one(index: int) -> None:
        superpod = cluster.superpods[index % len(cluster.superpods)]
        async with turns:
            await bench_e2e.create_patiently(
                cluster.api, path, bench_e2e.partition_body(names[index], sizes[index], superpod)
            )

    began = time.monotonic()
    await asyncio.gather(*(one(index) for index in range(count)))

    async def listed(where: str) -> list[dict[str, object]]:
        items, token = [], None
        while True:
            page = await cluster.api.get(where, limit="500", **({"continue": token} if token else {}))
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    while time.monotonic() - began < timeout:
        partitions = await listed(path)
        tables = {str(o["metadata"]["name"]) for o in await listed(configmaps)}  # type: ignore[index]
        wanted = {str((o.get("status") or {}).get("rankTable") or "") for o in partitions}  # type: ignore[union-attr]
        if len(partitions) == count and "" not in wanted and wanted <= tables:
            bench_cluster.progress(
                f"{count} partitions held, rank tables written, in {time.monotonic() - began:.0f} s"
            )
            return
        await asyncio.sleep(2.0)
    raise TimeoutError(f"{count} partitions not all placed with their rank tables within {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="atlas-950-supercluster")
    parser.add_argument("--superpods", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--heartbeat-seconds", type=float, help="default: bench e2e's (60 s, 300 s above 4,096 nodes)"
    )
    parser.add_argument(
        "--hold", type=int, default=0, help="partitions to place before measuring (default 0)"
    )
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the setup before measuring")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for each step of the setup"
    )
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
