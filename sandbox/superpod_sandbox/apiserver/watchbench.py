"""Benchmark: create-to-watch-event round trips per second through the sandbox, with 1,000 watched objects.

    python -m superpod_sandbox.apiserver.watchbench [--objects 1000] [--round-trips 2000] [--concurrency 1]

Starts `superpod sandbox` as a subprocess (so client and server do not share an interpreter), creates
`--objects` ConfigMaps, opens a watch on ConfigMaps, then creates `--round-trips` more, each counted from the
POST being sent to its ADDED event arriving on the watch. `--concurrency` creates that many at a time. Prints
the throughput and latency percentiles, and the server's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp


async def _start_server(folder: Path) -> tuple[subprocess.Popen[str], str]:
    kubeconfig = folder / "kubeconfig"
    process = subprocess.Popen(
        [sys.executable, "-m", "superpod.cli", "sandbox", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    url = line.split(" at ", 1)[1].split(";", 1)[0]
    return process, url


def _configmap(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"bench": "yes"}},
        "data": {"k": "v"},
    }


async def run(
    objects: int, round_trips: int, concurrency: int, url: str = "", pid: int = 0
) -> dict[str, float]:
    if url:  # a server started elsewhere (for profiling it)
        return await _measure(url, objects, round_trips, concurrency, pid)
    with tempfile.TemporaryDirectory() as folder:
        process, url = await _start_server(Path(folder))
        try:
            return await _measure(url, objects, round_trips, concurrency, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=10)


async def _measure(url: str, objects: int, round_trips: int, concurrency: int, pid: int) -> dict[str, float]:
    base = f"{url}/api/v1/namespaces/default/configmaps"
    connector = aiohttp.TCPConnector(limit=concurrency + 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        for index in range(objects):
            async with session.post(base, json=_configmap(f"seed-{index}")) as response:
                assert response.status == 201, await response.text()
        async with session.get(base) as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        arrived: dict[str, asyncio.Future[float]] = {}

        async def follow() -> None:
            params = {"watch": "true", "resourceVersion": version}
            async with session.get(base, params=params, timeout=aiohttp.ClientTimeout(total=None)) as stream:
                async for line in stream.content:
                    event = json.loads(line)
                    name = event["object"]["metadata"]["name"]
                    waiter = arrived.get(name)
                    if event["type"] == "ADDED" and waiter is not None and not waiter.done():
                        waiter.set_result(time.perf_counter())

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0.2)
        latencies: list[float] = []
        semaphore = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def one(index: int) -> None:
            name = f"probe-{index}"
            async with semaphore:
                arrived[name] = loop.create_future()
                started = time.perf_counter()
                async with session.post(base, json=_configmap(name)) as response:
                    assert response.status == 201, await response.text()
                latencies.append(await arrived[name] - started)

        started, cpu_before, client_before = time.perf_counter(), _cpu_seconds(pid), _cpu_seconds(os.getpid())
        await asyncio.gather(*(one(index) for index in range(round_trips)))
        elapsed, server_cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu_before
        client_cpu = _cpu_seconds(os.getpid()) - client_before
        watcher.cancel()
    latencies.sort()
    rss_kib = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS")
        )
    )
    return {
        "round_trips_per_second": round_trips / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "server_rss_mib": rss_kib / 1024,
        "server_cpu_ms_per_round_trip": 1000 * server_cpu / round_trips,
        "client_cpu_ms_per_round_trip": 1000 * client_cpu / round_trips,
        "load_average": os.getloadavg()[0],
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to tell server cost from client and machine load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", default="", help="use this running sandbox instead of starting one")
    parser.add_argument("--pid", type=int, default=0, help="the running sandbox's process id (with --url)")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(args.objects, args.round_trips, args.concurrency, args.url, args.pid or os.getpid())
    )
    print(
        f"{args.round_trips} create-to-watch-event round trips with {args.objects} watched objects, "
        f"concurrency {args.concurrency}: {result['round_trips_per_second']:.0f}/s, "
        f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, server RSS {result['server_rss_mib']:.0f} MiB, "
        f"CPU per round trip: server {result['server_cpu_ms_per_round_trip']:.2f} ms, "
        f"client {result['client_cpu_ms_per_round_trip']:.2f} ms; machine load average {result['load_average']:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
