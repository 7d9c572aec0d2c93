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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from superpod.api import common, crd
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod

if TYPE_CHECKING:  # imported where used: `superpod --help` loads every command module, and aiohttp is slow
    from superpod.cluster import client

JSON = dict[str, Any]
NAMESPACE = "bench"
SUPERPOD = "bench"
SIZES = (1, 2, 4, 8, 16)
WEIGHTS = (2, 2, 3, 3, 1)  # mean 5.3 devices: 2,000 partitions take about 70% of an Atlas 960
TARGETS = {"paced_p99_ms": 250.0, "burst_seconds": 15.0, "rss_mb": 300.0}  # docs/design.md section 8
PLACED = (api_partition.Phase.ALLOCATED.value, api_partition.Phase.BOUND.value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="atlas-960", help="simulated fleet (default atlas-960)")
    parser.add_argument("--partitions", type=int, default=1000, help="paced partitions (default 1000)")
    parser.add_argument("--rate", type=float, default=50.0, help="paced applies per second (default 50)")
    parser.add_argument("--burst", type=int, default=1000, help="partitions applied at once (default 1000)")
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


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB, and CPU seconds (user + system), of a process."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    values["cpu"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return values


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _spawn(log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "superpod.cli", *args, stdout=sink, stderr=asyncio.subprocess.STDOUT
        )


async def _until(check: Any, timeout: float, what: str) -> Any:
    from superpod.cluster import client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, client.ApiError):
            value = await check()
            if value:
                return value
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


async def _healthy(port: int) -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as answer:
        return answer.status == 200


def _partition(name: str, npus: int) -> JSON:
    return {
        "apiVersion": common.API_VERSION,
        "kind": api_partition.KIND,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"superPod": SUPERPOD, "npus": npus},
    }


async def _apply(
    api: client.KubeClient, timings: Timings, names: list[str], sizes: list[int], rate: float
) -> None:
    """POST the partitions, `rate` per second (0: all at once, as fast as the connection pool allows)."""
    from superpod.cluster import client

    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)
    began = time.monotonic()

    async def one(index: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
        timings.applied[names[index]] = time.monotonic()
        await api.create(path, _partition(names[index], sizes[index]))

    await asyncio.gather(*(one(i) for i in range(len(names))))


async def _phase(
    api: client.KubeClient, timings: Timings, names: list[str], sizes: list[int], rate: float, timeout: float
) -> JSON:
    timings.expected = len(timings.placed) + len(names)
    timings.done.clear()
    began = time.monotonic()
    await _apply(api, timings, names, sizes, rate)
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
    from superpod.cluster import client

    from superpod_sandbox.sim import simulator as sim_fleet

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="superpod-bench-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    port, health = _free_port(), _free_port()
    load_before = os.getloadavg()
    processes: list[asyncio.subprocess.Process] = []
    try:
        sandbox = await _spawn(
            workdir / "sandbox.log", "sandbox", "--port", str(port), "--kubeconfig", str(kubeconfig)
        )
        processes.append(sandbox)
        await _until(lambda: _exists(kubeconfig), 60, "the sandbox's kubeconfig")
        async with client.KubeClient(client.credentials_from_kubeconfig(str(kubeconfig)), timeout=120) as api:
            await _until(lambda: api.get("/version"), 60, "the sandbox")
            for definition in crd.all_crds().values():
                await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", definition)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            await api.create("/api/v1/namespaces", namespace)
            registering = time.monotonic()
            async with sim_fleet.Fleet(args.profile, api=api) as fleet:
                registered = time.monotonic() - registering
                superpod = {
                    "apiVersion": common.API_VERSION,
                    "kind": api_superpod.KIND,
                    "metadata": {"name": SUPERPOD},
                    "spec": {"profile": args.profile, "superPodID": 0},
                }
                await api.create(client.resource_path(common.API_VERSION, api_superpod.PLURAL), superpod)
                operator = await _spawn(
                    workdir / "operator.log", "run", "--kubeconfig", str(kubeconfig), "--standalone",
                    "--bind-address", "127.0.0.1", "--health-port", str(health), "--metrics-port", "0",
                    "--webhook-port", "0",
                )  # fmt: skip
                processes.append(operator)
                await _until(lambda: _healthy(health), 120, "the operator to be healthy")
                devices = await _until(lambda: _total_devices(api), args.timeout, "the SuperPod's devices")
                # the isolation taint on every member node is setup too, not load: waited for, timed apart
                tainting = time.monotonic()
                before = proc_status(operator.pid)["cpu"], proc_status(sandbox.pid)["cpu"]
                count = len(fleet.node_names)
                await _until(lambda: _tainted(api, count), args.timeout, "the member nodes' isolation taint")
                isolation = {
                    "seconds": round(time.monotonic() - tainting, 1),
                    "operatorCpuSeconds": round(proc_status(operator.pid)["cpu"] - before[0], 2),
                    "sandboxCpuSeconds": round(proc_status(sandbox.pid)["cpu"] - before[1], 2),
                }
                idle = proc_status(operator.pid)
                result = await _measure(api, args, operator.pid, sandbox.pid)
                result["setup"] = {
                    "profile": args.profile,
                    "nodes": len(fleet.node_names),
                    "devices": devices,
                    "registrationSeconds": round(registered, 1),
                    "operatorIdleRssMb": round(idle["VmRSS"], 1),
                    "isolation": isolation,
                }
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
    result["machine"] = {
        "cpus": os.cpu_count(),
        "loadAverageBefore": [round(x, 2) for x in load_before],
        "loadAverageAfter": [round(x, 2) for x in os.getloadavg()],
    }
    result["targets"] = TARGETS
    return result


async def _exists(path: Path) -> bool:
    return path.exists()


async def _tainted(api: client.KubeClient, count: int) -> bool:
    """Whether `count` nodes carry the isolation taint (every member of the SuperPod: the whole fleet)."""
    nodes = await api.list("/api/v1/nodes")
    return count <= sum(
        any(t.get("key") == api_superpod.ISOLATION_TAINT for t in (n.get("spec") or {}).get("taints") or [])
        for n in nodes
    )


async def _total_devices(api: client.KubeClient) -> int:
    from superpod.cluster import client

    path = client.resource_path(common.API_VERSION, api_superpod.PLURAL, name=SUPERPOD)
    status = (await api.get(path)).get("status") or {}
    return int((status.get("devices") or {}).get("total", 0))


async def _measure(api: client.KubeClient, args: argparse.Namespace, pid: int, sandbox_pid: int) -> JSON:
    from superpod.cluster import client

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
        cpu_before, api_before = proc_status(pid)["cpu"], proc_status(sandbox_pid)["cpu"]
        paced = await _phase(
            api, timings, names[: args.partitions], sizes[: args.partitions], args.rate, args.timeout
        )
        cpu_paced, api_paced = proc_status(pid)["cpu"], proc_status(sandbox_pid)["cpu"]
        burst = await _phase(
            api, timings, names[args.partitions :], sizes[args.partitions :], 0.0, args.timeout
        )
        held, api_held = proc_status(pid), proc_status(sandbox_pid)["cpu"]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    paced["rate"] = args.rate
    paced["operatorCpuMsPerPartition"] = round((cpu_paced - cpu_before) * 1000.0 / max(1, args.partitions), 2)
    burst["operatorCpuMsPerPartition"] = round((held["cpu"] - cpu_paced) * 1000.0 / max(1, args.burst), 2)
    paced["sandboxCpuMsPerPartition"] = round((api_paced - api_before) * 1000.0 / max(1, args.partitions), 2)
    burst["sandboxCpuMsPerPartition"] = round((api_held - api_paced) * 1000.0 / max(1, args.burst), 2)
    memory = {"partitions": total, "rssMb": round(held["VmRSS"], 1), "peakRssMb": round(held["VmHWM"], 1)}
    return {"paced": paced, "burst": burst, "memory": memory}


def verdicts(result: JSON) -> dict[str, bool]:
    return {
        "paced_p99_ms": result["paced"]["p99Ms"] <= TARGETS["paced_p99_ms"],
        "burst_seconds": result["burst"]["allPlacedSeconds"] <= TARGETS["burst_seconds"],
        "rss_mb": result["memory"]["rssMb"] <= TARGETS["rss_mb"],
    }


def print_table(result: JSON, out: TextIO) -> None:
    setup, paced, burst, memory = result["setup"], result["paced"], result["burst"], result["memory"]
    verdict = {key: "met" if ok else "MISSED" for key, ok in verdicts(result).items()}
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


def run(args: argparse.Namespace) -> int:
    from superpod.cluster import client

    try:
        result = asyncio.run(bench(args))
    except (TimeoutError, client.ApiError, OSError) as error:
        print(f"superpod bench e2e: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result, sys.stdout)
    return 0
