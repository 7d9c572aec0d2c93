"""Latency of the pod admission webhook under bursts of concurrent admissions, and the CPU they cost.

Runs the operator (`superpod run`, a subprocess, webhook on HTTPS with a managed configuration) against a
sandbox with a CloudMatrix 384's 48 nodes. Each round places a fresh partition of `--pods` x
`--devices-per-pod` dies and sends its `--pods` admissions at once, two ways:

- through the sandbox: the pods are created with its pods API, which calls the webhook over TLS as
  kube-apiserver does (the path the integration tests take). The sandbox is one Python process that also
  serves the creates, the operator's slot claims and its watches, so its own backlog shows in the latency;
- straight to the webhook, from a separate caller process (this file run with `--caller`) using the sandbox's
  webhook caller (TLS checked against the configuration's caBundle, connections pooled), as a kube-apiserver
  with cores to spare would; the claims still go to the sandbox. These pods are never created; each round's
  partition is deleted after it.

Each webhook call is timed by its caller (POST to answer, as kube-apiserver's
`apiserver_admission_webhook_admission_duration_seconds`). The first round of each way opens the caller's TLS
connections; later rounds reuse them, as kube-apiserver keeps its connections. Then pods are created one after
the other through the sandbox (each as the previous one is answered, while the operator and the sandbox still
process it), and admissions are sent alone, 0.3 s apart (a call alone). CPU per admission is the user+system
CPU time over the bursts of the operator, of this process (the sandbox) and of the caller process (from /proc),
divided by the admissions; it includes all they did meanwhile (watch events, rank tables). The load average is
printed before and after: the processes share this machine with whatever else runs on it.

Last, pods that are none of the operator's business (`--unrelated`, four kinds: plain, asking for NPUs with
no toleration or node constraint, tolerating every taint with no device, a nodeSelector with no device) are
created one after the other with the ValidatingWebhookConfiguration in place (its matchCondition keeps them
from the webhook: the number of calls is printed, and should be 0) and without it, and their reviews are sent
straight to `/validate-pods` as if no matchCondition kept them away: what each costs per pod.

    PYTHONPATH=. .venv/bin/python tools/measure_webhook.py [--pods 32] [--rounds 5] [--devices-per-pod 2]
        [--ways both|sandbox|direct] [--unrelated 200] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from superpod.cluster import client
from superpod_sandbox.apiserver.admission import dispatcher

from tests.integration.admission.conftest import WebhookOperator, admission_review, webhook_configuration
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    eventually,
    manifest,
    partition,
    sandbox_cluster,
)

PODS = "/api/v1/namespaces/team-a/pods"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
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


MUTATING = "pods.superpod.dev"
REAL_CALL = dispatcher._call


def timed_calls(samples: list[float], others: list[float] | None = None) -> Callable[..., Awaitable[Any]]:
    """The sandbox's webhook call, timing each call of the mutating webhook into `samples`, of any other
    (the validating ones) into `others`."""

    async def call(hook: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await REAL_CALL(hook, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            if hook.get("name") == MUTATING:
                samples.append(elapsed)
            elif others is not None:
                others.append(elapsed)

    return call


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
    await api.create(SPP, partition(name, pods * per_pod, devicesPerPod=per_pod))

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
    """The webhook calls of one burst (seconds each) and the CPU each process spent meanwhile (seconds)."""

    calls: list[float]
    operator_cpu: float
    sandbox_cpu: float  # this process: the sandbox, and the pod creates' client
    caller_cpu: float  # the separate caller process (straight to the webhook only)


class Caller:
    """A separate process that sends AdmissionReviews straight to the webhook, as kube-apiserver would.

    It runs this file with `--caller CONFIGURATION`: it reads a JSON list of pods per line, sends their
    reviews at once over its pool of TLS connections, and answers with a JSON line of the calls' seconds.
    """

    def __init__(self, configuration: dict[str, Any]) -> None:
        self.configuration = configuration
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        path = Path(tempfile.mkdtemp(prefix="measure-webhook-")) / "configuration.json"
        path.write_text(json.dumps(self.configuration))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--caller", str(path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await self.send([])  # answered once it has started: its start-up is not measured

    async def send(self, pods: list[dict[str, Any]]) -> list[float]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(pods).encode() + b"\n")
        await self.process.stdin.drain()
        answer = json.loads(await self.process.stdout.readline())
        assert not answer["refused"], answer["refused"]
        return [float(seconds) for seconds in answer["calls"]]

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) if self.process else 0.0

    async def stop(self) -> None:
        if self.process is not None and self.process.stdin:
            self.process.stdin.close()
            await self.process.wait()


async def serve_as_caller(configuration_file: str) -> None:
    """The caller process (see `Caller`): reviews for each line of pods on stdin, their timings on stdout."""
    configuration = json.loads(Path(configuration_file).read_text())
    samples: list[float] = []
    dispatcher._call = timed_calls(samples)  # type: ignore[assignment]  # a measuring tool, not product code
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            samples.clear()
            outcomes = await asyncio.gather(
                *(admission_review(session, configuration, obj) for obj in json.loads(line))
            )
            refused = [outcome.status for outcome in outcomes if not (outcome.allowed and outcome.patched)]
            sys.stdout.write(json.dumps({"calls": samples, "refused": refused}) + "\n")
            sys.stdout.flush()


class Bench:
    """The sandbox, the operator, the caller, and the ways to send pods."""

    def __init__(
        self, api: client.KubeClient, operator: WebhookOperator, caller: Caller, pods: int, per_pod: int
    ) -> None:
        self.api = api
        self.operator = operator
        self.caller = caller
        self.pods = pods
        self.per_pod = per_pod
        self.samples: list[float] = []
        self.validations: list[float] = []  # the validating webhook's calls for the same pods
        dispatcher._call = timed_calls(self.samples, self.validations)  # type: ignore[assignment]  # a tool

    async def burst(self, name: str, send: Callable[[str, range], Awaitable[list[float]]]) -> Burst:
        """`pods` admissions for a fresh partition at once, through `send(partition, indexes)`."""
        assert self.operator.process is not None
        await placed(self.api, name, self.pods, self.per_pod)
        operator, sandbox, caller = (
            cpu_seconds(self.operator.process.pid),
            time.process_time(),
            self.caller.cpu(),
        )
        calls = await send(name, range(self.pods))
        burst = Burst(
            calls,
            cpu_seconds(self.operator.process.pid) - operator,
            time.process_time() - sandbox,
            self.caller.cpu() - caller if send == self.direct else 0.0,
        )
        assert len(burst.calls) == self.pods, f"{len(burst.calls)} webhook calls for {self.pods} pods"
        await remove(self.api, name, self.pods)
        return burst

    async def create(self, name: str, indexes: range) -> list[float]:
        """Pods created through the sandbox's API: it calls the webhook as kube-apiserver does."""
        self.samples.clear()
        await asyncio.gather(*(self.api.create(PODS, pod(f"{name}-{i}", name)) for i in indexes))
        return list(self.samples)

    async def direct(self, name: str, indexes: range) -> list[float]:
        """AdmissionReviews for pods sent straight to the webhook by the caller (the pods are never created)."""
        return await self.caller.send([pod(f"{name}-{i}", name) for i in indexes])


def unrelated_pod(name: str, kind: int) -> dict[str, Any]:
    """Pods that are none of the operator's business, of four kinds in turn: a plain pod; one asking for NPUs
    with no toleration or node constraint (the taint keeps it off member nodes); a DaemonSet-like pod that
    tolerates every taint but asks for no device; one with a nodeSelector and no device."""
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    spec: dict[str, Any] = {"containers": [container]}
    if kind == 1:
        container["resources"] = {"limits": {"huawei.com/Ascend910": "16"}}
    elif kind == 2:
        spec["tolerations"] = [{"operator": "Exists"}]
    elif kind == 3:
        spec["nodeSelector"] = {"kubernetes.io/os": "linux"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": spec,
    }


async def unrelated(api: client.KubeClient, count: int) -> list[str]:
    """Pods that are none of our business: created one after the other with the validating configuration
    (the API server evaluates its matchCondition and calls nobody) and without it, and, as if no matchCondition
    kept them away, their reviews sent straight to `/validate-pods`. Returns the report's lines."""
    path = f"{VALIDATING}/superpod-operator"
    configuration = await eventually(lambda: api.get_or_none(path), timeout=15)
    calls: list[float] = []
    dispatcher._call = timed_calls(calls, calls)  # type: ignore[assignment]  # a measuring tool

    async def creates(label: str) -> list[float]:
        times = []
        for i in range(count):
            started = time.perf_counter()
            await api.create(PODS, unrelated_pod(f"{label}-{i}", i % 4))
            times.append(time.perf_counter() - started)
        await asyncio.gather(*(api.delete(f"{PODS}/{label}-{i}") for i in range(count)))
        return times

    with_conditions = await creates("with")
    sent = len(calls)
    await api.delete(path)
    without = await creates("without")
    await api.create(
        f"{VALIDATING}",
        {k: v for k, v in configuration.items() if k != "metadata"}
        | {"metadata": {"name": "superpod-operator"}},
    )
    (hook,) = [h for h in configuration["webhooks"] if h["name"] == "validate-pods.superpod.dev"]
    hook = {k: v for k, v in hook.items() if k != "matchConditions"}
    straight: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            obj = unrelated_pod(f"straight-{i}", i % 4)
            request = dispatcher.AdmissionRequestInfo(
                operation="CREATE", group="", version="v1", kind="Pod", resource="pods", name=obj["metadata"]["name"],
                namespace="team-a", object=obj, uid=f"u{i}",
            )  # fmt: skip
            started = time.perf_counter()
            answer = await REAL_CALL(hook, request, lambda *_: "unused: a URL", session)
            straight.append(time.perf_counter() - started)
            assert answer["allowed"], answer
    return [
        f"{count} pods that are none of our business, created one after the other through the sandbox:",
        "  " + summary(f"with the validating configuration ({sent} webhook calls)", with_conditions),
        "  " + summary("without any validating configuration", without),
        "  " + summary("their reviews straight to /validate-pods, were they sent", straight),
    ]


def report(title: str, bursts: list[Burst]) -> None:
    admissions = sum(len(burst.calls) for burst in bursts)
    print(f"{title}, {len(bursts)} rounds ({admissions} admissions):")
    print("  " + summary("first round (new TLS connections)", bursts[0].calls))
    if len(bursts) > 1:
        print("  " + summary("later rounds (connections reused)", [s for b in bursts[1:] for s in b.calls]))
    print("  " + summary("all rounds", [s for b in bursts for s in b.calls]))
    cpu = [
        f"{label} {sum(getattr(b, field) for b in bursts) / admissions * 1000:.2f} ms"
        for label, field in (
            ("operator", "operator_cpu"),
            ("sandbox", "sandbox_cpu"),
            ("caller", "caller_cpu"),
        )
        if any(getattr(b, field) for b in bursts)
    ]
    print(f"  CPU per admission: {', '.join(cpu)}")


async def main(pods: int, rounds: int, per_pod: int, ways: str, verbose: bool, unrelated_pods: int) -> None:
    if 2 * pods * per_pod > (NODES - 2) * 16:
        raise SystemExit(f"{pods} pods of {per_pod} dies do not fit in {NODES - 2} nodes of 16")
    async with sandbox_cluster() as (sandbox, api):
        await add_a3_nodes(api, NODES)
        operator = WebhookOperator(sandbox.kubeconfig, *(["--verbose"] if verbose else []))
        await operator.start()
        print(f"operator pid {operator.process.pid if operator.process else '?'}, log {operator.log}")
        caller = Caller(await webhook_configuration(api))
        await caller.start()
        try:
            await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
            bench = Bench(api, operator, caller, pods, per_pod)
            print(f"load average before: {load()}")
            created = [
                await bench.burst(f"create-{i}", bench.create) for i in range(rounds) if ways != "direct"
            ]
            validations = list(bench.validations)
            direct = [
                await bench.burst(f"direct-{i}", bench.direct) for i in range(rounds) if ways != "sandbox"
            ]
            await placed(api, "one-by-one", 2 * pods, per_pod)  # pods one after the other, then alone
            sequential = []
            for i in range(pods):
                sequential += await bench.create("one-by-one", range(i, i + 1))
            alone = []
            for i in range(pods, 2 * pods):  # with a pause: the operator and the sandbox have settled
                await asyncio.sleep(ALONE_PAUSE)
                alone += await bench.direct("one-by-one", range(i, i + 1))
            lines = await unrelated(api, unrelated_pods) if unrelated_pods else []
            print(f"load average after: {load()}")
        finally:
            await caller.stop()
            await operator.stop()
    if created:
        report(f"{pods} pods created at once through the sandbox's pods API", created)
        print("  " + summary("the validating webhook's calls for the same pods", validations))
    if direct:
        report(f"{pods} AdmissionReviews sent at once straight to the webhook by the caller process", direct)
    print(summary(f"{pods} pods created one after the other through the sandbox", sequential))
    print(summary(f"{pods} AdmissionReviews alone ({ALONE_PAUSE} s apart) straight to the webhook", alone))
    for line in lines:
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=32, help="pods created at once per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--devices-per-pod", type=int, default=2)
    parser.add_argument("--ways", choices=("both", "sandbox", "direct"), default="both", help="how to send")
    parser.add_argument("--verbose", action="store_true", help="run the operator with --verbose (debug log)")
    parser.add_argument(
        "--unrelated", type=int, default=200, help="pods that are none of our business to create (0: none)"
    )
    parser.add_argument("--caller", metavar="CONFIGURATION", help=argparse.SUPPRESS)  # see `Caller`
    arguments = parser.parse_args()
    if arguments.caller:
        asyncio.run(serve_as_caller(arguments.caller))
    else:
        asyncio.run(
            main(
                arguments.pods,
                arguments.rounds,
                arguments.devices_per_pod,
                arguments.ways,
                arguments.verbose,
                arguments.unrelated,
            )
        )
