"""Latency of the pod admission webhook under bursts of concurrent pod creates, and the operator's CPU for it.

Runs the operator (`superpod run`, a subprocess, webhook on HTTPS with a managed configuration) against a
sandbox with a CloudMatrix 384's 48 nodes. Each round places a fresh partition of `--pods` x
`--devices-per-pod` dies, then creates its `--pods` pods at once through the sandbox's pods API, which calls
the webhook over TLS as kube-apiserver does. Each webhook call is timed on the caller's side (POST to answer,
as kube-apiserver's `apiserver_admission_webhook_admission_duration_seconds` does). Then the same number of
pods of another partition is created one after the other (the single-call latency). The first round also opens
the caller's TLS connections; later rounds reuse them, as kube-apiserver keeps its connections.

Operator CPU per admission is the operator process's user+system CPU time over the bursts (from /proc)
divided by the admissions; it includes everything the operator did meanwhile (pod watch events, rank tables).
The load average is printed before and after: the caller (sandbox) and the operator share this machine.

    PYTHONPATH=. .venv/bin/python tools/measure_webhook.py [--pods 32] [--rounds 5] [--devices-per-pod 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from superpod.cluster import client
from superpod.sandbox import admission, server

from tests.integration.admission.conftest import WebhookOperator, webhook_configuration
from tests.integration.operator.conftest import add_a3_nodes, apply_crds, eventually, manifest

SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"
PODS = "/api/v1/namespaces/team-a/pods"
NODES = 48
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def summary(label: str, samples: list[float]) -> str:
    return (
        f"{label}: n={len(samples)} p50 {statistics.median(samples) * 1000:.1f} ms, "
        f"p99 {percentile(samples, 0.99) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms"
    )


def timed_calls(samples: list[float]) -> Callable[..., Awaitable[Any]]:
    """The sandbox's webhook call, timing each call into `samples`."""
    real_call = admission._call

    async def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await real_call(*args, **kwargs)
        finally:
            samples.append(time.perf_counter() - started)

    return call


def partition(name: str, npus: int, per_pod: int) -> dict[str, Any]:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": npus, "devicesPerPod": per_pod},
    }


def pod(name: str, partition_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": {"superpod.dev/partition": partition_name},
        },
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


async def placed(api: client.KubeClient, name: str, pods: int, per_pod: int) -> None:
    await api.create(SPP, partition(name, pods * per_pod, per_pod))

    async def allocated() -> bool:
        status = (await api.get(f"{SPP}/{name}")).get("status") or {}
        return status.get("phase") == "Allocated"

    await eventually(allocated, timeout=30)


async def remove(api: client.KubeClient, name: str, pods: int) -> None:
    """Delete a round's pods and partition, so the next round finds the devices free."""
    await asyncio.gather(*(api.delete(f"{PODS}/{name}-{i}") for i in range(pods)))
    await api.delete(f"{SPP}/{name}")

    async def gone() -> bool:
        return await api.get_or_none(f"{SPP}/{name}") is None

    await eventually(gone, timeout=30)


async def main(pods: int, rounds: int, per_pod: int, verbose: bool) -> None:
    if pods * per_pod > (NODES - 2) * 16:
        raise SystemExit(f"{pods} pods of {per_pod} dies do not fit in {NODES - 2} nodes of 16")
    samples: list[float] = []
    admission._call = timed_calls(samples)  # type: ignore[assignment]  # a measuring tool, not product code
    bursts: list[list[float]] = []
    sequential: list[float] = []
    async with server.Sandbox() as sandbox:
        credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
        async with client.KubeClient(credentials) as api:
            await apply_crds(api)
            await api.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
            )
            await add_a3_nodes(api, NODES)
            operator = WebhookOperator(sandbox.kubeconfig, *(["--verbose"] if verbose else []))
            await operator.start()
            print(f"operator pid {operator.process.pid if operator.process else '?'}, log {operator.log}")
            try:
                assert operator.process is not None
                await webhook_configuration(api)
                await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
                print(f"load average before: {load()}")
                cpu = caller_cpu = 0.0
                for round_number in range(rounds):
                    name = f"burst-{round_number}"
                    await placed(api, name, pods, per_pod)
                    samples.clear()
                    before, caller_before = cpu_seconds(operator.process.pid), time.process_time()
                    await asyncio.gather(*(api.create(PODS, pod(f"{name}-{i}", name)) for i in range(pods)))
                    cpu += cpu_seconds(operator.process.pid) - before
                    caller_cpu += time.process_time() - caller_before
                    assert len(samples) == pods, f"{len(samples)} webhook calls for {pods} pods"
                    bursts.append(list(samples))
                    await remove(api, name, pods)
                await placed(api, "one-by-one", pods, per_pod)
                samples.clear()
                for i in range(pods):
                    await api.create(PODS, pod(f"one-by-one-{i}", "one-by-one"))
                sequential = list(samples)
                print(f"load average after: {load()}")
            finally:
                await operator.stop()
    print(f"{pods} pods created at once, {rounds} rounds ({pods * rounds} admissions):")
    print("  " + summary("first round (new TLS connections)", bursts[0]))
    if rounds > 1:
        print("  " + summary("later rounds (connections reused)", [s for b in bursts[1:] for s in b]))
    print("  " + summary("all rounds", [s for b in bursts for s in b]))
    print(f"  operator CPU per admission over the bursts: {cpu / (pods * rounds) * 1000:.2f} ms")
    print(
        "  caller CPU per pod create over the bursts (sandbox API server and this client, one process): "
        f"{caller_cpu / (pods * rounds) * 1000:.2f} ms"
    )
    print(summary(f"{pods} pods created one after the other", sequential))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=32, help="pods created at once per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices-per-pod", type=int, default=2)
    parser.add_argument("--verbose", action="store_true", help="run the operator with --verbose (debug log)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.pods, arguments.rounds, arguments.devices_per_pod, arguments.verbose))
