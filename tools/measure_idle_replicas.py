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
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from superpod_sandbox.commands import bench_cluster


async def measure(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="superpod-idle-"))
    async with bench_cluster.running(args, workdir, args.replicas, leased=args.replicas > 1) as cluster:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="atlas-950-supercluster")
    parser.add_argument("--superpods", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--heartbeat-seconds", type=float, help="default: bench e2e's (60 s, 300 s above 4,096 nodes)"
    )
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after the setup before measuring")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for each step of the setup"
    )
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
