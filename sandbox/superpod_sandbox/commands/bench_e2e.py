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

from superpod.api import common, reasons
from superpod.api import partition as api_partition

from superpod_sandbox.commands import bench_cluster, bench_failover, interrupt

if TYPE_CHECKING:  # imported where used: `superpod --help` loads every command module, and aiohttp is slow
    from superpod.cluster import client

JSON = dict[str, Any]
NAMESPACE = bench_cluster.NAMESPACE
SIZES = (1, 2, 4, 8, 16)
WEIGHTS = (2, 2, 3, 3, 1)  # mean 5.3 devices: 2,000 partitions take about 70% of an Atlas 960
TARGETS = {"paced_p99_ms": 250.0, "burst_seconds": 15.0, "rss_mb": 300.0}  # docs/design.md section 8
FAILOVER_TARGET_SECONDS = 20.0
"""A killed replica's SuperPods owned again and their waiting partitions placed (lease duration included)."""
SUPERCLUSTER_TARGETS = {"paced_p99_ms": 250.0, "burst_seconds": 10.0, "rss_mb": 1000.0}
"""A SuperCluster's (several SuperPoDs sharded over replicas; docs/performance.md): RSS per replica."""


def targets(args: argparse.Namespace) -> dict[str, float]:
    return SUPERCLUSTER_TARGETS if args.superpods > 1 and default_superpods(args.profile) > 1 else TARGETS


PLACED = (api_partition.Phase.ALLOCATED.value, api_partition.Phase.BOUND.value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="atlas-960", help="simulated fleet (default atlas-960)")
    parser.add_argument("--partitions", type=int, default=1000, help="paced partitions (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="paced applies per second (default 50)")
    parser.add_argument("--burst", type=int, default=1000, help="partitions applied at once (default 1000)")
    parser.add_argument(
        "--fill",
        type=int,
        default=0,
        help="partitions applied (as fast as they go) and placed before the measured phases, so these run "
        "with that many more held (default 0)",
    )
    parser.add_argument(
        "--superpods",
        type=int,
        help="simulated SuperPoDs of the profile (default 1; for a SuperCluster profile, all of its SuperPoDs: "
        "64 for atlas-950-supercluster)",
    )
    parser.add_argument(
        "--heartbeat-seconds",
        type=float,
        help="the simulated kubelets' status and device plugins' ConfigMap refresh period (default 60 s; 300 s, "
        "the real components' period, for fleets above 4,096 nodes)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="with --replicas N: run only the N-replica round, not the 1-replica round before it",
    )
    parser.add_argument(
        "--replicas", type=int, default=1,
        help="operator replicas sharing the SuperPods on Leases; above 1 the run is repeated with 1 replica first, "
        "on a fresh cluster, and both are reported (default 1: one standalone operator)",
    )  # fmt: skip
    parser.add_argument(
        "--failover",
        action="store_true",
        help="with --replicas N: kill -9 the last replica halfway through the paced applies, and time until its "
        "SuperPods are owned again and their waiting partitions placed",
    )
    parser.add_argument(
        "--no-in-use-policy",
        dest="in_use_policy",
        action="store_false",
        help="leave out the chart's MutatingAdmissionPolicy (Kubernetes 1.36+) that adds the in-use finalizer "
        "at creation: the operator writes it itself, as on clusters before 1.36",
    )
    parser.add_argument(
        "--operator-from",
        type=Path,
        metavar="CHECKOUT",
        help="run the operators from another checkout of this repository (its operator/ and sandbox/ first on "
        "their PYTHONPATH), to measure a baseline in the same runs as this code: alternate the two",
    )
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
    rank_tables: dict[str, str] = dataclasses.field(default_factory=dict)  # partition -> its status.rankTable
    tables: set[str] = dataclasses.field(default_factory=set)  # ConfigMaps of the namespace seen written
    announced: set[str] = dataclasses.field(default_factory=set)  # partitions with their Allocated Event

    def latencies_ms(self, names: list[str]) -> list[float]:
        return sorted((self.placed[n] - self.applied[n]) * 1000.0 for n in names if n in self.placed)

    def on_kube_event(self, event: JSON) -> None:
        """An event of the namespace's core/v1 Events: note the partitions whose Allocated Event was posted."""
        obj = event.get("object") or {}
        involved = obj.get("involvedObject") or {}
        if (
            event.get("type") == "ADDED"
            and obj.get("reason") == reasons.EventReason.ALLOCATED
            and involved.get("kind") == api_partition.KIND
        ):
            self.announced.add(involved.get("name", ""))

    def on_event(self, event: JSON) -> None:
        obj = event.get("object") or {}
        name = (obj.get("metadata") or {}).get("name")
        status = obj.get("status") or {}
        phase = status.get("phase")
        if name and status.get("rankTable"):
            self.rank_tables[name] = status["rankTable"]
        if name and phase in PLACED and name not in self.placed:
            self.placed[name] = time.monotonic()
            if len(self.placed) >= self.expected:
                self.done.set()


def default_superpods(profile_name: str) -> int:
    """1, or for a profile whose widest tier joins SuperPoDs (a SuperCluster) how many it joins: 64 for the 950's."""
    from superpod.topology import profiles, tiers

    profile = profiles.BUILTIN.get(profile_name)
    if profile is None:
        return 1
    sizes = {tier.name: tier.domain_size for tier in profile.tiers}
    if tiers.CLUSTER in sizes and tiers.SUPERPOD in sizes:
        return max(1, sizes[tiers.CLUSTER] // sizes[tiers.SUPERPOD])
    return 1


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def partition_body(name: str, npus: int, superpod: str) -> JSON:
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
    """POST the partitions, `rate` per second (0: all at once, as fast as `IN_FLIGHT` requests go).

    A partition's apply time is taken before it waits for its turn, so a burst's latencies include the queue."""
    from superpod.cluster import client

    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)
    began = time.monotonic()
    turns = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
        timings.applied[names[index]] = time.monotonic()
        superpod = superpods[int(names[index][1:]) % len(superpods)]  # p00012 -> the 13th, in turn
        async with turns:
            await create_patiently(api, path, partition_body(names[index], sizes[index], superpod))

    await asyncio.gather(*(one(i) for i in range(len(names))))


IN_FLIGHT = 64
"""The bench's creates in flight at once. Thousands at once (a fill) would queue on the client's connection pool,
and the client's request timeout counts that wait: under load the last of 8,000 timed out before being sent."""
CREATE_ATTEMPTS = 6
CREATE_BACKOFF = 1.0  # seconds before the first retry; doubled each time


async def create_patiently(api: client.KubeClient, path: str, body: JSON) -> None:
    """POST `body`, retried on a timeout, a broken connection or a transient answer (429, 5xx): the bench waits
    for the system under test rather than fail on one slow answer. A retry answered 409 AlreadyExists means the
    attempt that timed out created it."""
    import aiohttp
    from superpod.cluster import client

    for attempt in range(CREATE_ATTEMPTS):
        try:
            await api.create(path, body)
            return
        except client.ApiError as error:
            if attempt and error.status == 409 and error.reason == "AlreadyExists":
                return
            if error.status not in client.TRANSIENT or attempt == CREATE_ATTEMPTS - 1:
                raise
        except (TimeoutError, aiohttp.ClientConnectionError):
            if attempt == CREATE_ATTEMPTS - 1:
                raise
        await asyncio.sleep(CREATE_BACKOFF * 2**attempt * (0.5 + random.random()))


SETTLE_MOST = 300.0  # seconds to wait for the last phase's rank tables, then time the next anyway
EVENTS_MOST = 30.0
"""Seconds to wait for the last phase's Allocated Events once its rank tables are written. An Event is the one
write the operator does not retry (kube's Events are best effort), and a replica killed between a status and
its Event (`--failover`) leaves that Event unposted for good: waiting for it could not end early."""


async def settle(timings: Timings, names: list[str]) -> float | None:
    """Wait until the rank table ConfigMap and the Allocated Event of every one of `names` have been written, so
    the next phase is timed on a system that finished the last, not on the work it left: a partition is placed
    (its status) before its Event and rank table are written, and a 20,000 fill's last placements are seen while
    many thousand of those are still to come at 64 SuperPoDs (the Events last: a paced phase started once the
    rank tables alone were written met hundreds of the fill's Events still queued, and its first seconds waited
    behind them). Seconds waited; None when the rank tables were not all written within `SETTLE_MOST` or the
    Events within `EVENTS_MOST` after them (the next phase starts anyway)."""
    began = time.monotonic()
    wanted = {timings.rank_tables[name] for name in names if name in timings.rank_tables}
    while not wanted <= timings.tables:
        if time.monotonic() - began >= SETTLE_MOST:
            return None
        await asyncio.sleep(0.2)
    tables_written = time.monotonic()
    while not timings.announced.issuperset(names):
        if time.monotonic() - tables_written >= EVENTS_MOST:
            return None
        await asyncio.sleep(0.2)
    return round(time.monotonic() - began, 1)


async def _phase(
    cluster: bench_cluster.Cluster,
    timings: Timings,
    names: list[str],
    sizes: list[int],
    rate: float,
    timeout: float,
) -> JSON:
    if not names:  # `--burst 0` (or `--partitions 0` with a burst): nothing to wait for
        return {"partitions": 0, "devices": 0, "p50Ms": 0.0, "p99Ms": 0.0, "maxMs": 0.0, "allPlacedSeconds": 0.0,
                "throughputPerSecond": 0.0, "bySecond": []}  # fmt: skip
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
        "bySecond": by_second(timings, names, began),
    }


def by_second(timings: Timings, names: list[str], began: float) -> list[JSON]:
    """The phase's partitions grouped by the second (since `began`) they were applied in: how many, and their
    median and slowest apply-to-Allocated. A phase's p99 can come from a few slow seconds (work left by the last
    phase, writes arriving together) or from all of them (a machine that is too slow): this tells which."""
    groups: dict[int, list[float]] = {}
    for name in names:
        if name in timings.placed:
            latency = (timings.placed[name] - timings.applied[name]) * 1000.0
            groups.setdefault(int(timings.applied[name] - began), []).append(latency)
    return [
        {
            "second": second,
            "applied": len(latencies),
            "p50Ms": round(percentile(sorted(latencies), 0.50), 1),
            "maxMs": round(max(latencies), 1),
        }
        for second, latencies in sorted(groups.items())
    ]


def _summary(phase: JSON) -> JSON:
    """A phase's figures for a progress line: without the per-second breakdown."""
    return {key: value for key, value in phase.items() if key != "bySecond"}


async def bench(args: argparse.Namespace) -> JSON:
    """One round (one operator), or with `--replicas N` two: 1 replica, then N, both on Leases."""
    if args.superpods is None:
        args.superpods = default_superpods(args.profile)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="superpod-bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.replicas <= 1:
        return await _round(args, workdir, 1, leased=False)
    if args.no_baseline:
        return await _round(args, workdir, args.replicas, leased=True)
    rounds = [await _round(args, workdir, count, leased=True) for count in (1, args.replicas)]
    return {"rounds": rounds, "comparison": compare(rounds[0], rounds[1]), "targets": targets(args)}


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
    result["targets"] = targets(args)
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

    from superpod_sandbox.sim import publisher

    api = cluster.api
    rng = random.Random(args.seed)
    measured = args.partitions + args.burst
    total = measured + args.fill  # the fill's names and sizes come after, so the measured ones stay the same
    names = [f"p{index:05d}" for index in range(total)]
    sizes = rng.choices(SIZES, WEIGHTS, k=total)
    timings = Timings()
    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)
    if not total:  # `--partitions 0 --burst 0`: the fleet's registration and the idle operators alone
        idle = [bench_cluster.proc_status(pid) for pid in cluster.operator_pids]
        return {
            "memory": {
                "partitions": 0,
                "rssMb": round(max(status["VmRSS"] for status in idle), 1),
                "peakRssMb": round(max(status["VmHWM"] for status in idle), 1),
            },
            "perReplica": [
                {"replica": f"r{index}", "rssMb": round(status["VmRSS"], 1)}
                for index, status in enumerate(idle)
            ],
        }

    async def follow() -> None:
        while True:  # resume if the stream ends
            with contextlib.suppress(OSError, client.ApiError):
                async for event in api.watch(path, timeoutSeconds="3600"):
                    timings.on_event(event)
            publisher.reraise_if_cancelling()  # a cancellation turned into a TimeoutError must end the loop

    async def follow_tables() -> None:
        configmaps = client.resource_path("v1", "configmaps", NAMESPACE)
        while True:
            with contextlib.suppress(OSError, client.ApiError):
                async for event in api.watch(configmaps, timeoutSeconds="3600"):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        timings.tables.add(
                            ((event.get("object") or {}).get("metadata") or {}).get("name", "")
                        )
            publisher.reraise_if_cancelling()

    async def follow_events() -> None:
        kube_events = client.resource_path("v1", "events", NAMESPACE)
        while True:
            with contextlib.suppress(OSError, client.ApiError):
                async for event in api.watch(kube_events, timeoutSeconds="3600"):
                    timings.on_kube_event(event)
            publisher.reraise_if_cancelling()

    superpod_of = {name: cluster.superpods[int(name[1:]) % len(cluster.superpods)] for name in names}
    watcher = asyncio.create_task(follow())
    tables = asyncio.create_task(follow_tables())
    announcements = asyncio.create_task(follow_events())
    failover: asyncio.Task[JSON] | None = None
    try:
        await asyncio.sleep(0.5)  # the watch is open before the first apply
        settled: JSON = {}
        filled = None
        if args.fill:  # held before the measured phases, applied as fast as they go
            filled = await _phase(cluster, timings, names[measured:], sizes[measured:], 0.0, args.timeout)
            bench_cluster.progress(f"fill: {_summary(filled)}")
            settled["afterFillSeconds"] = await settle(timings, names[measured:])
            bench_cluster.progress(f"settled after the fill in {settled['afterFillSeconds']} s")
        cpu_before, api_before = cluster.operators_cpu(), cluster.sandbox_cpu()
        if args.failover and len(cluster.operator_pids) > 1:  # halfway through the paced applies
            failover = asyncio.create_task(
                bench_failover.kill_and_follow(
                    cluster, timings.applied, timings.placed, superpod_of,
                    args.partitions / args.rate / 2, args.timeout,
                )
            )  # fmt: skip
        paced = await _phase(
            cluster, timings, names[: args.partitions], sizes[: args.partitions], args.rate, args.timeout
        )
        bench_cluster.progress(f"paced: {_summary(paced)}")
        failed_over = await failover if failover is not None else None
        if failed_over is not None:
            bench_cluster.progress(f"failover: {failed_over}")
        settled["afterPacedSeconds"] = await settle(timings, names[: args.partitions])
        cpu_settled, api_settled = cluster.operators_cpu(), cluster.sandbox_cpu()
        burst = await _phase(
            cluster,
            timings,
            names[args.partitions : measured],
            sizes[args.partitions : measured],
            0.0,
            args.timeout,
        )
        settled["afterBurstSeconds"] = await settle(timings, names[args.partitions : measured])
        cpu_held, api_held = cluster.operators_cpu(), cluster.sandbox_cpu()
        held = [cluster.operator_status(index) for index in range(len(cluster.operator_pids))]
    finally:
        for task in (watcher, tables, announcements, failover):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def per_partition(after: list[float], before: list[float], count: int) -> float:
        return round((sum(after) - sum(before)) * 1000.0 / max(1, count), 2)

    paced["rate"] = args.rate
    # each phase's CPU runs until its partitions' rank tables and Events were all written: the work its
    # placements left
    paced["operatorCpuMsPerPartition"] = per_partition(cpu_settled, cpu_before, args.partitions)
    burst["operatorCpuMsPerPartition"] = per_partition(cpu_held, cpu_settled, args.burst)
    paced["sandboxCpuMsPerPartition"] = round(
        (api_settled - api_before) * 1000.0 / max(1, args.partitions), 2
    )
    burst["sandboxCpuMsPerPartition"] = round((api_held - api_settled) * 1000.0 / max(1, args.burst), 2)
    memory = {
        "partitions": total,
        "rssMb": round(max(status["VmRSS"] for status in held), 1),  # the largest replica's
        "peakRssMb": round(max(status["VmHWM"] for status in held), 1),
    }
    result: JSON = {"paced": paced, "burst": burst, "memory": memory, "settled": settled}
    if filled is not None:
        result["fill"] = filled
    if failed_over is not None:
        result["failover"] = failed_over
    if len(held) > 1:
        result["invariants"] = await bench_failover.settled_books(api, cluster.superpods, 60.0)
        holder = await bench_cluster.holders(api)
        paced_names, burst_names = names[: args.partitions], names[args.partitions : measured]
        replicas = []
        for index in range(len(held)):
            identity = f"r{index}"
            mine = {name for name in names if holder.get(superpod_of[name]) == identity}
            paced_ms = timings.latencies_ms([name for name in paced_names if name in mine])
            burst_ms = timings.latencies_ms([name for name in burst_names if name in mine])
            cpu = cpu_held[index] - cpu_before[index]
            replicas.append({
                "replica": identity,
                "superpods": sum(1 for name in cluster.superpods if holder.get(name) == identity),
                "partitions": len(mine),
                "pacedP50Ms": round(percentile(paced_ms, 0.50), 1),
                "pacedP99Ms": round(percentile(paced_ms, 0.99), 1),
                "burstP99Ms": round(percentile(burst_ms, 0.99), 1),
                "pacedCpuSeconds": round(cpu_settled[index] - cpu_before[index], 2),
                "burstCpuSeconds": round(cpu_held[index] - cpu_settled[index], 2),
                "cpuMsPerPartition": round(cpu * 1000.0 / max(1, len(mine)), 2),
                "rssMb": round(held[index]["VmRSS"], 1),
            })  # fmt: skip
        result["perReplica"] = replicas
    return result


def verdicts(result: JSON) -> dict[str, bool]:
    targets = result["targets"]
    found = {"rss_mb": result["memory"]["rssMb"] <= targets["rss_mb"]}
    if "paced" in result:
        found["paced_p99_ms"] = result["paced"]["p99Ms"] <= targets["paced_p99_ms"]
        found["burst_seconds"] = result["burst"]["allPlacedSeconds"] <= targets["burst_seconds"]
    return found


def _write_rows(rows: list[tuple[Any, ...]], out: TextIO) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def print_table(result: JSON, out: TextIO) -> None:
    setup, memory, targets = result["setup"], result["memory"], result["targets"]
    verdict = {key: "met" if ok else "MISSED" for key, ok in verdicts(result).items()}
    if setup.get("superpods", 1) > 1 or setup.get("coordination") == "leases":
        out.write(
            f"{setup['replicas']} operator replica(s), {setup['coordination']}, {setup['superpods']} SuperPods"
            + (f"; SuperPods owned: {result['ownership']}" if result.get("ownership") else "")
            + "\n"
        )
    registration = setup["registration"]
    out.write(
        f"fleet {setup['profile']}: {setup['nodes']} nodes, {setup['devices']} devices "
        f"(registered in {setup['registrationSeconds']} s: {registration['objects']} objects, the simulator's "
        f"watches synced at {registration['watchesSyncedSeconds']} s; CPU per create: API server "
        f"{registration['sandboxCpuMsPerCreate']} ms, simulator {registration['simulatorCpuMsPerCreate']} ms; "
        f"CPU with the watches' lists: API server "
        f"{registration['sandboxCpuSeconds']} s, simulator {registration['simulatorCpuSeconds']} s; RSS API server "
        f"{registration['sandboxRssMb']} MB, simulator {registration['simulatorRssMb']} MB; heartbeats every "
        f"{setup['heartbeatSeconds']:g} s); machine: {result['machine']['cpus']} CPUs, "
        f"load {result['machine']['loadAverageBefore'][0]} -> {result['machine']['loadAverageAfter'][0]}\n"
    )
    isolation = setup["isolation"]
    out.write(
        f"isolation taint on all {setup['nodes']} member nodes within {isolation['seconds']} s of the operator "
        f"being ready (CPU: operator {isolation['operatorCpuSeconds']} s, API server "
        f"{isolation['sandboxCpuSeconds']} s); measured after it\n"
    )
    if "paced" in result:
        paced, burst = result["paced"], result["burst"]
        _write_rows([
            ("scenario", "partitions", "p50 ms", "p99 ms", "max ms", "all placed s", "per s", "op cpu ms/p",
             "api cpu ms/p", "target"),
            (
                f"paced {paced['rate']:g}/s", paced["partitions"], paced["p50Ms"], paced["p99Ms"], paced["maxMs"],
                paced["allPlacedSeconds"], paced["throughputPerSecond"], paced["operatorCpuMsPerPartition"],
                paced["sandboxCpuMsPerPartition"],
                f"p99 <= {targets['paced_p99_ms']:g} ms: {verdict['paced_p99_ms']}",
            ),
            (
                "burst", burst["partitions"], burst["p50Ms"], burst["p99Ms"], burst["maxMs"],
                burst["allPlacedSeconds"], burst["throughputPerSecond"], burst["operatorCpuMsPerPartition"],
                burst["sandboxCpuMsPerPartition"],
                f"all placed <= {targets['burst_seconds']:g} s: {verdict['burst_seconds']}",
            ),
        ], out)  # fmt: skip
    out.write(
        f"operator memory with {memory['partitions']} partitions: RSS {memory['rssMb']} MB "
        f"(peak {memory['peakRssMb']} MB, idle {setup['operatorIdleRssMb']} MB); "
        f"target <= {targets['rss_mb']:g} MB: {verdict['rss_mb']}\n"
    )
    filled = result.get("fill")
    if filled:
        out.write(
            f"held before the measured phases: {filled['partitions']} partitions ({filled['devices']} devices), "
            f"all placed in {filled['allPlacedSeconds']} s ({filled['throughputPerSecond']}/s)\n"
        )
    settled = result.get("settled")
    if settled:
        shown = [("paced", settled.get("afterPacedSeconds")), ("burst", settled.get("afterBurstSeconds"))]
        if "afterFillSeconds" in settled:
            shown.insert(0, ("fill", settled["afterFillSeconds"]))
        waits = ", ".join(
            f"after the {phase} "
            + (
                f"{seconds} s"
                if seconds is not None
                else f"gave up (rank tables not within {SETTLE_MOST:g} s, or Events {EVENTS_MOST:g} s after)"
            )
            for phase, seconds in shown
        )
        out.write(
            f"each phase timed once the last one's rank tables and Allocated Events were all written: {waits}; "
            "a phase's CPU runs until then\n"
        )
    failover = result.get("failover")
    if failover and failover["placedSeconds"] is None:
        out.write(f"failover: {failover}\n")
    elif failover:
        out.write(
            f"failover: {failover['killed']} killed (kill -9) halfway through the paced applies, holding "
            f"{len(failover['superPods'])} SuperPods; owned again after {failover['ownedAgainSeconds']} s, their "
            f"{failover['waitingPartitions']} waiting partitions placed after {failover['placedSeconds']} s "
            f"(target <= {FAILOVER_TARGET_SECONDS:g} s: "
            f"{'met' if failover['placedSeconds'] <= FAILOVER_TARGET_SECONDS else 'MISSED'}); "
            f"SuperPods held now: {failover['holders']}\n"
        )
    books = result.get("invariants")
    if books:
        out.write(
            f"invariants over {books['partitions']} partitions ({books['placed']} placed, {books['devicesHeld']} "
            f"devices held): {'hold' if books['ok'] else 'BROKEN'}"
            + (
                ""
                if books["ok"]
                else f"; held twice {books['devicesHeldTwice']}, wrong count {books['partitionsWithWrongCount']}, "
                f"unbalanced {books['superPodsUnbalanced']}"
            )
            + "\n"
        )
    replicas = result.get("perReplica") or []
    if len(replicas) > 1:
        columns = [key for key in REPLICA_COLUMNS if key in replicas[0]]
        _write_rows(
            [tuple(REPLICA_COLUMNS[key] for key in columns)]
            + [tuple(replica[key] for key in columns) for replica in replicas],
            out,
        )


REPLICA_COLUMNS = {
    "replica": "replica",
    "superpods": "SuperPods owned",
    "partitions": "partitions placed",
    "pacedP50Ms": "paced p50 ms",
    "pacedP99Ms": "paced p99 ms",
    "burstP99Ms": "burst p99 ms",
    "pacedCpuSeconds": "cpu s paced",
    "burstCpuSeconds": "cpu s burst",
    "cpuMsPerPartition": "cpu ms/p",
    "rssMb": "RSS MB",
}
"""The per-replica table's columns, as the JSON's keys and the table's headings."""


def print_replicas(result: JSON, out: TextIO) -> None:
    """Both rounds of `--replicas N`, then their figures side by side."""
    for round_ in result["rounds"]:
        print_table(round_, out)
        out.write("\n")
    counts = list(next(iter(result["comparison"].values())))
    out.write(f"{'figure':<36}" + "".join(f"{count + ' replica(s)':>16}" for count in counts) + "\n")
    for figure, values in result["comparison"].items():
        out.write(f"{figure:<36}" + "".join(f"{values[count]!s:>16}" for count in counts) + "\n")


def run(args: argparse.Namespace) -> int:
    import aiohttp
    from superpod import cli
    from superpod.cluster import client

    if args.failover and (args.replicas < 2 or args.partitions < 2):
        print(
            "superpod bench e2e: --failover needs --replicas 2 or more and some paced --partitions",
            file=sys.stderr,
        )
        return 2
    if args.operator_from is not None:
        try:
            bench_cluster.operator_path(args.operator_from)
        except ValueError as error:
            print(f"superpod bench e2e: --operator-from: {error}", file=sys.stderr)
            return 2

    try:
        result = interrupt.run(bench(args), "superpod bench e2e")
    except interrupt.Interrupted as stopped:
        print(stopped, file=sys.stderr)
        return interrupt.EXIT_CODE
    except (TimeoutError, client.ApiError, OSError, aiohttp.ClientError) as error:
        print(f"superpod bench e2e: {cli.error_line(error)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    elif "rounds" in result:
        print_replicas(result, sys.stdout)
    else:
        print_table(result, sys.stdout)
    return 0
