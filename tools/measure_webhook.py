"""Latency of the pod admission webhook under bursts of concurrent admissions, and the CPU they cost.

Runs the operator (`superpod run`, a subprocess, webhook on HTTPS with a managed configuration) against a
sandbox with a CloudMatrix 384's 48 nodes. Each round places a fresh partition of `--pods` x
`--devices-per-pod` dies and sends its `--pods` admissions at once, two ways:

- through the sandbox: the pods are created with its pods API, which calls the webhook over TLS as
  kube-apiserver does (the path the integration tests take). The sandbox is one Python process that also
  serves the creates, the operator's slot claims and its watches, so its own backlog shows in the latency;
- straight to the webhook: this process POSTs the AdmissionReviews with the sandbox's webhook caller (TLS checked
  against the configuration's caBundle, connections pooled), as a kube-apiserver with cores to spare would;
  the claims still go to the sandbox. These pods are never created; each round's partition is deleted after.

Each webhook call is timed by its caller (POST to answer, as kube-apiserver's
`apiserver_admission_webhook_admission_duration_seconds`). The first round of each way opens the caller's TLS
connections; later rounds reuse them, as kube-apiserver keeps its connections. Then pods are created one after
the other through the sandbox (each starts as the previous one is answered, while the operator and the
sandbox still process it), and admissions are sent alone, 0.3 s apart (a call alone). CPU per admission is the user+system CPU time of
the operator process (from /proc) and of this process (sandbox and caller) over the bursts, divided by the
admissions; it includes all they did meanwhile (watch events, rank tables). The load average is printed
before and after: the sandbox, the operator and whatever else runs share this machine.

    PYTHONPATH=. .venv/bin/python tools/measure_webhook.py [--pods 32] [--rounds 5] [--devices-per-pod 2] \\
        [--ways both|sandbox|direct] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from superpod.cluster import client
from superpod.sandbox import admission, server

from tests.integration.admission.conftest import WebhookOperator, webhook_configuration
from tests.integration.operator.conftest import add_a3_nodes, apply_crds, eventually, manifest

SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"
PODS = "/api/v1/namespaces/team-a/pods"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
NODES = 48
ALONE_PAUSE = 0.3  # seconds between two admissions measured alone
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
    """Delete a round's pods (those that exist) and partition, so the next round finds the devices free."""
    await asyncio.gather(*(api.delete(f"{PODS}/{name}-{i}") for i in range(pods)))  # None when absent
    await api.delete(f"{SPP}/{name}")

    async def gone() -> bool:
        return await api.get_or_none(f"{SPP}/{name}") is None

    await eventually(gone, timeout=30)


@dataclasses.dataclass
class Burst:
    """The webhook calls of one burst (seconds each) and the CPU the two processes spent meanwhile."""

    calls: list[float]
    operator_cpu: float
    caller_cpu: float


class Bench:
    """The sandbox, the operator and the ways to send it pods."""

    def __init__(self, api: client.KubeClient, operator: WebhookOperator, pods: int, per_pod: int) -> None:
        self.api = api
        self.operator = operator
        self.pods = pods
        self.per_pod = per_pod
        self.samples: list[float] = []
        admission._call = timed_calls(self.samples)  # type: ignore[assignment]  # a tool, not product code

    session: aiohttp.ClientSession  # the direct caller's, with its pool of TLS connections
    configuration: dict[str, Any]  # the MutatingWebhookConfiguration the operator wrote

    async def burst(self, name: str, send: Callable[[str, int], Awaitable[Any]]) -> Burst:
        """`pods` admissions for a fresh partition at once, through `send(partition, index)`."""
        assert self.operator.process is not None
        await placed(self.api, name, self.pods, self.per_pod)
        self.samples.clear()
        operator_before, caller_before = cpu_seconds(self.operator.process.pid), time.process_time()
        await asyncio.gather(*(send(name, i) for i in range(self.pods)))
        burst = Burst(
            list(self.samples),
            cpu_seconds(self.operator.process.pid) - operator_before,
            time.process_time() - caller_before,
        )
        assert len(burst.calls) == self.pods, f"{len(burst.calls)} webhook calls for {self.pods} pods"
        await remove(self.api, name, self.pods)
        return burst

    async def create(self, name: str, index: int) -> None:
        """A pod created through the sandbox's API: it calls the webhook as kube-apiserver does."""
        await self.api.create(PODS, pod(f"{name}-{index}", name))

    async def direct(self, name: str, index: int) -> None:
        """An AdmissionReview for a pod sent straight to the webhook (the pod itself is never created)."""
        request = admission.AdmissionRequestInfo(
            operation="CREATE",
            group="",
            version="v1",
            kind="Pod",
            resource="pods",
            name=f"{name}-{index}",
            namespace="team-a",
            object=pod(f"{name}-{index}", name),
            namespace_labels={},
        )
        outcome = await admission.admit(
            mutating=[self.configuration],
            validating=[],
            request=request,
            service_resolver=lambda *_: f"https://127.0.0.1:{self.operator.webhook_port}/mutate-pods",
            session=self.session,
        )
        assert outcome.allowed and outcome.patched, outcome.status


def report(title: str, bursts: list[Burst]) -> None:
    admissions = sum(len(burst.calls) for burst in bursts)
    print(f"{title}, {len(bursts)} rounds ({admissions} admissions):")
    print("  " + summary("first round (new TLS connections)", bursts[0].calls))
    if len(bursts) > 1:
        print("  " + summary("later rounds (connections reused)", [s for b in bursts[1:] for s in b.calls]))
    print("  " + summary("all rounds", [s for b in bursts for s in b.calls]))
    operator_cpu = sum(burst.operator_cpu for burst in bursts) / admissions * 1000
    caller_cpu = sum(burst.caller_cpu for burst in bursts) / admissions * 1000
    print(f"  CPU per admission: operator {operator_cpu:.2f} ms, caller {caller_cpu:.2f} ms")


async def main(pods: int, rounds: int, per_pod: int, ways: str, verbose: bool) -> None:
    if 2 * pods * per_pod > (NODES - 2) * 16:
        raise SystemExit(f"{pods} pods of {per_pod} dies do not fit in {NODES - 2} nodes of 16")
    async with server.Sandbox() as sandbox:
        credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
        async with client.KubeClient(credentials) as api, aiohttp.ClientSession() as session:
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
                await webhook_configuration(api)
                await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
                bench = Bench(api, operator, pods, per_pod)
                bench.session = session
                bench.configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
                print(f"load average before: {load()}")
                created = [
                    await bench.burst(f"create-{i}", bench.create) for i in range(rounds) if ways != "direct"
                ]
                direct = [
                    await bench.burst(f"direct-{i}", bench.direct) for i in range(rounds) if ways != "sandbox"
                ]
                await placed(api, "one-by-one", 2 * pods, per_pod)  # pods one after the other, then alone
                bench.samples.clear()
                for i in range(pods):
                    await bench.create("one-by-one", i)
                sequential = list(bench.samples)
                bench.samples.clear()
                for i in range(pods):  # with a pause: the operator and the sandbox have settled each time
                    await asyncio.sleep(ALONE_PAUSE)
                    await bench.direct("one-by-one", pods + i)
                alone = list(bench.samples)
                print(f"load average after: {load()}")
            finally:
                await operator.stop()
    if created:
        report(f"{pods} pods created at once through the sandbox's pods API", created)
    if direct:
        report(f"{pods} AdmissionReviews sent at once straight to the webhook", direct)
    print(summary(f"{pods} pods created one after the other through the sandbox", sequential))
    print(summary(f"{pods} AdmissionReviews alone ({ALONE_PAUSE} s apart) straight to the webhook", alone))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=32, help="pods created at once per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices-per-pod", type=int, default=2)
    parser.add_argument("--ways", choices=("both", "sandbox", "direct"), default="both", help="how to send")
    parser.add_argument("--verbose", action="store_true", help="run the operator with --verbose (debug log)")
    arguments = parser.parse_args()
    asyncio.run(
        main(arguments.pods, arguments.rounds, arguments.devices_per_pod, arguments.ways, arguments.verbose)
    )
