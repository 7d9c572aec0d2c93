"""`superpod bench e2e`: partitions through the sandbox API server and the real operator, timed as a user sees them.

Three processes, as in a cluster: the sandbox API server and the operator (`superpod run`) each run as a
subprocess; this process runs the simulated fleet (Nodes and device-plugin ConfigMaps of one SuperPoD) and the
load. Apply-to-Allocated is measured from just before the partition's POST to the watch event that shows it
Allocated, on one watch of the partitions (what `kubectl wait` would see).

1. paced: `--partitions` partitions applied at `--rate` per second -> apply-to-Allocated p50/p99, throughput;
2. burst: `--burst` more partitions applied at once -> time until all are Allocated (and their p50/p99);
3. memory: the operator's RSS (VmRSS, and its peak VmHWM, from /proc/<pid>/status) holding both sets.

Before the first phase the operator has tainted every member node (`spec.isolation: Partitions`, the default):
setup, timed and reported apart (its seconds and the CPU it cost each process), not charged to the phases.

With the defaults these are the targets of docs/design.md section 8: an Atlas 960 SuperPoD (15,488 devices on 1,936 nodes), 1,000
partitions at 50/s, a burst of 1,000, and 2,000 partitions held. Partition sizes are drawn (seeded) from 1, 2,
4, 8 and 16 devices. The CPU time of the operator and of the API server per partition is reported too, so figures
from a busy machine can be told apart from the operator's own cost.

`--superpods K` simulates K SuperPoDs (partitions spread over them in turn), and `--replicas N` (N > 1) runs the
same load twice in one invocation, each on a fresh cluster: one replica, then N replicas sharing the SuperPods
on Leases (`bench_cluster`), and reports both, the ownership balance, and their medians and CPU per partition
side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from superpod.api import common
from superpod.api import partition as api_partition

from superpod_sandbox.commands import bench_cluster

if TYPE_CHECKING:  # imported where used: `superpod --help` loads every command module, and aiohttp is slow
    from superpod.cluster import client

JSON = dict[str, Any]
NAMESPACE = bench_cluster.NAMESPACE
SIZES = (1, 2, 4, 8, 16)
WEIGHTS = (2, 2, 3, 3, 1)  # mean 5.3 devices: 2,000 partitions take about 70% of an Atlas 960
TARGETS = {"paced_p99_ms": 250.0, "burst_seconds": 15.0, "rss_mb": 300.0}  # docs/design.md section 8
PLACED = (api_partition.Phase.ALLOCATED.value, api_partition.Phase.BOUND.value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="atlas-960", help="simulated fleet (default atlas-960)")
    parser.add_argument("--partitions", type=int, default=1000, help="paced partitions (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="paced applies per second (default 50)")
    parser.add_argument("--burst", type=int, default=1000, help="partitions applied at once (default 1000)")
    parser.add_argument(
        "--superpods", type=int, default=1, help="simulated SuperPoDs of the profile (default 1)"
    )
    parser.add_argument(
        "--replicas", type=int, default=1,
        help="operator replicas sharing the SuperPods on Leases; above 1 the run is repeated with 1 replica first, "
        "on a fresh cluster, and both are reported (default 1: one standalone operator)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1, help="seed of the partition sizes")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each phase")
    parser.add_argument("--dir", type=Path, help="where the kubeconfig and logs go (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


@dataclasses.dataclass
class Timings:
    """When each partition was applied and when the watch first showed it placed."""

    applied: dict[str, float] = dataclasses.field(default_factory=dict)
    placed: dict[str, float] = dataclasses.field(default_factory=dict)
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    expected: int = 0

    def latencies_ms(self, names: list[str]) -> list[float]:
        return sorted((self.placed[n] - self.applied[n]) * 1000.0 for n in names if n in self.placed)

    def on_event(self, event: JSON) -> None:
        obj = event.get("object") or {}
        name = (obj.get("metadata") or {}).get("name")
        phase = (obj.get("status") or {}).get("phase")
        if name and phase in PLACED and name not in self.placed:
            self.placed[name] = time.monotonic()
            if len(self.placed) >= self.expected:
                self.done.set()


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _partition(name: str, npus: int, superpod: str) -> JSON:
    return {
        "apiVersion": common.API_VERSION,
        "kind": api_partition.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"superPod": superpod, "npus": npus},
    }


async def _apply(
    api: client.KubeClient,
    timings: Timings,
    names: list[str],
    sizes: list[int],
    rate: float,
    superpods: list[str],
) -> None:
    """POST the partitions, `rate` per second (0: all at once, as fast as the connection pool allows)."""
    from superpod.cluster import client

    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)
    began = time.monotonic()

    async def one(index: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
        timings.applied[names[index]] = time.monotonic()
        superpod = superpods[int(names[index][1:]) % len(superpods)]  # p00012 -> the 13th, in turn
        await api.create(path, _partition(names[index], sizes[index], superpod))

    await asyncio.gather(*(one(i) for i in range(len(names))))


async def _phase(
    cluster: bench_cluster.Cluster,
    timings: Timings,
    names: list[str],
    sizes: list[int],
    rate: float,
    timeout: float,
) -> JSON:
    timings.expected = len(timings.placed) + len(names)
    timings.done.clear()
    began = time.monotonic()
    await _apply(cluster.api, timings, names, sizes, rate, cluster.superpods)
    await asyncio.wait_for(timings.done.wait(), timeout)
    finished = max(timings.placed[n] for n in names)
    latencies = timings.latencies_ms(names)
    return {
        "partitions": len(names),
        "devices": sum(sizes),
        "p50Ms": round(percentile(latencies, 0.50), 1),
        "p99Ms": round(percentile(latencies, 0.99), 1),
        "maxMs": round(latencies[-1], 1),
        "allPlacedSeconds": round(finished - began, 3),  # ms resolution, as the latencies
        "throughputPerSecond": round(len(names) / (finished - began), 1),
    }


async def bench(args: argparse.Namespace) -> JSON:
    """One round (one operator), or with `--replicas N` two: 1 replica, then N, both on Leases."""
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="superpod-bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.replicas <= 1:
        return await _round(args, workdir, 1, leased=False)
    rounds = [await _round(args, workdir, count, leased=True) for count in (1, args.replicas)]
    return {"rounds": rounds, "comparison": compare(rounds[0], rounds[1]), "targets": TARGETS}


async def _round(args: argparse.Namespace, workdir: Path, replicas: int, *, leased: bool) -> JSON:
    load_before = os.getloadavg()
    async with bench_cluster.running(args, workdir, replicas, leased=leased) as cluster:
        result = await _measure(cluster, args)
        result["setup"] = cluster.setup
        if leased:
            result["ownership"] = await bench_cluster.owners(cluster.api, cluster.superpods, replicas)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "loadAverageBefore": [round(x, 2) for x in load_before],
        "loadAverageAfter": [round(x, 2) for x in os.getloadavg()],
    }
    result["targets"] = TARGETS
    return result


def compare(one: JSON, many: JSON) -> JSON:
    """The N-replica round against the 1-replica one: medians, all-placed times and CPU per partition."""
    figures = {}
    for phase in ("paced", "burst"):
        for key in (
            "p50Ms",
            "p99Ms",
            "allPlacedSeconds",
            "operatorCpuMsPerPartition",
            "sandboxCpuMsPerPartition",
        ):
            figures[f"{phase}.{key}"] = {
                "1": one[phase][key],
                str(many["setup"]["replicas"]): many[phase][key],
            }
    return figures


async def _measure(cluster: bench_cluster.Cluster, args: argparse.Namespace) -> JSON:
    from superpod.cluster import client

    api = cluster.api
    rng = random.Random(args.seed)
    total = args.partitions + args.burst
    names = [f"p{index:05d}" for index in range(total)]
    sizes = rng.choices(SIZES, WEIGHTS, k=total)
    timings = Timings()
    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)

    async def follow() -> None:
        while True:  # resume if the stream ends
            with contextlib.suppress(OSError, client.ApiError):
                async for event in api.watch(path, timeoutSeconds="3600"):
                    timings.on_event(event)

    watcher = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.5)  # the watch is open before the first apply
        cpu_before, api_before = cluster.operators_cpu(), cluster.sandbox_cpu()
        paced = await _phase(
            cluster, timings, names[: args.partitions], sizes[: args.partitions], args.rate, args.timeout
        )
        cpu_paced, api_paced = cluster.operators_cpu(), cluster.sandbox_cpu()
        burst = await _phase(
            cluster, timings, names[args.partitions :], sizes[args.partitions :], 0.0, args.timeout
        )
        cpu_held, api_held = cluster.operators_cpu(), cluster.sandbox_cpu()
        held = [bench_cluster.proc_status(pid) for pid in cluster.operator_pids]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    def per_partition(after: list[float], before: list[float], count: int) -> float:
        return round((sum(after) - sum(before)) * 1000.0 / max(1, count), 2)

    paced["rate"] = args.rate
    paced["operatorCpuMsPerPartition"] = per_partition(cpu_paced, cpu_before, args.partitions)
    burst["operatorCpuMsPerPartition"] = per_partition(cpu_held, cpu_paced, args.burst)
    paced["sandboxCpuMsPerPartition"] = round((api_paced - api_before) * 1000.0 / max(1, args.partitions), 2)
    burst["sandboxCpuMsPerPartition"] = round((api_held - api_paced) * 1000.0 / max(1, args.burst), 2)
    memory = {
        "partitions": total,
        "rssMb": round(max(status["VmRSS"] for status in held), 1),  # the largest replica's
        "peakRssMb": round(max(status["VmHWM"] for status in held), 1),
    }
    result: JSON = {"paced": paced, "burst": burst, "memory": memory}
    if len(held) > 1:
        result["perReplica"] = [
            {
                "replica": f"r{index}",
                "pacedCpuSeconds": round(cpu_paced[index] - cpu_before[index], 2),
                "burstCpuSeconds": round(cpu_held[index] - cpu_paced[index], 2),
                "rssMb": round(held[index]["VmRSS"], 1),
            }
            for index in range(len(held))
        ]
    return result


def verdicts(result: JSON) -> dict[str, bool]:
    return {
        "paced_p99_ms": result["paced"]["p99Ms"] <= TARGETS["paced_p99_ms"],
        "burst_seconds": result["burst"]["allPlacedSeconds"] <= TARGETS["burst_seconds"],
        "rss_mb": result["memory"]["rssMb"] <= TARGETS["rss_mb"],
    }


def print_table(result: JSON, out: TextIO) -> None:
    setup, paced, burst, memory = result["setup"], result["paced"], result["burst"], result["memory"]
    verdict = {key: "met" if ok else "MISSED" for key, ok in verdicts(result).items()}
    if setup.get("superpods", 1) > 1 or setup.get("coordination") == "leases":
        out.write(
            f"{setup['replicas']} operator replica(s), {setup['coordination']}, {setup['superpods']} SuperPods"
            + (f"; SuperPods owned: {result['ownership']}" if result.get("ownership") else "")
            + "\n"
        )
    out.write(
        f"fleet {setup['profile']}: {setup['nodes']} nodes, {setup['devices']} devices "
        f"(registered in {setup['registrationSeconds']} s); machine: {result['machine']['cpus']} CPUs, "
        f"load {result['machine']['loadAverageBefore'][0]} -> {result['machine']['loadAverageAfter'][0]}\n"
    )
    isolation = setup["isolation"]
    out.write(
        f"isolation taint on all {setup['nodes']} member nodes within {isolation['seconds']} s of the operator "
        f"being ready (CPU: operator {isolation['operatorCpuSeconds']} s, API server "
        f"{isolation['sandboxCpuSeconds']} s); measured after it\n"
    )
    rows = [
        ("scenario", "partitions", "p50 ms", "p99 ms", "max ms", "all placed s", "per s", "op cpu ms/p",
         "api cpu ms/p", "target"),
        (
            f"paced {paced['rate']:g}/s", paced["partitions"], paced["p50Ms"], paced["p99Ms"], paced["maxMs"],
            paced["allPlacedSeconds"], paced["throughputPerSecond"], paced["operatorCpuMsPerPartition"],
            paced["sandboxCpuMsPerPartition"], f"p99 <= {TARGETS['paced_p99_ms']:g} ms: {verdict['paced_p99_ms']}",
        ),
        (
            "burst", burst["partitions"], burst["p50Ms"], burst["p99Ms"], burst["maxMs"],
            burst["allPlacedSeconds"], burst["throughputPerSecond"], burst["operatorCpuMsPerPartition"],
            burst["sandboxCpuMsPerPartition"], f"all placed <= {TARGETS['burst_seconds']:g} s: {verdict['burst_seconds']}",
        ),
    ]  # fmt: skip
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    out.write(
        f"operator memory with {memory['partitions']} partitions: RSS {memory['rssMb']} MB "
        f"(peak {memory['peakRssMb']} MB, idle {setup['operatorIdleRssMb']} MB); "
        f"target <= {TARGETS['rss_mb']:g} MB: {verdict['rss_mb']}\n"
    )


def print_replicas(result: JSON, out: TextIO) -> None:
    """Both rounds of `--replicas N`, then their figures side by side."""
    for round_ in result["rounds"]:
        print_table(round_, out)
        for replica in round_.get("perReplica") or []:
            out.write(
                f"  {replica['replica']}: CPU {replica['pacedCpuSeconds']} s paced, {replica['burstCpuSeconds']} s "
                f"burst; RSS {replica['rssMb']} MB\n"
            )
        out.write("\n")
    counts = list(next(iter(result["comparison"].values())))
    out.write(f"{'figure':<36}" + "".join(f"{count + ' replica(s)':>16}" for count in counts) + "\n")
    for figure, values in result["comparison"].items():
        out.write(f"{figure:<36}" + "".join(f"{values[count]!s:>16}" for count in counts) + "\n")


def run(args: argparse.Namespace) -> int:
    from superpod.cluster import client

    try:
        result = asyncio.run(bench(args))
    except (TimeoutError, client.ApiError, OSError) as error:
        print(f"superpod bench e2e: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    elif "rounds" in result:
        print_replicas(result, sys.stdout)
    else:
        print_table(result, sys.stdout)
    return 0
