"""The cluster one round of `superpod bench e2e` runs against: processes as in a cluster, set up and waited for.

The sandbox API server and each operator replica (`superpod run`) are subprocesses, each in a session of its own
(`interrupt`: the bench stops them, on Ctrl-C too); this process runs the
simulated fleets (one per SuperPoD: its Nodes and device-plugin ConfigMaps) and, in `bench_e2e`, the load. One
replica runs standalone (`--standalone`) unless `leased`; several share the SuperPods on Leases
(`--coordination leases`, named r0, r1, ...), and the round starts once every SuperPod is owned and the owners'
counts differ by one at most. Setup (registration, the isolation taint on every member node) is timed and
reported apart, never charged to the measured phases.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superpod.api import common, crd, inusepolicy
from superpod.api import superpod as api_superpod

from superpod_sandbox.commands import interrupt

if TYPE_CHECKING:  # imported where used: `superpod --help` loads every command module, and aiohttp is slow
    from superpod.cluster import client

    from superpod_sandbox.sim import simulator as sim_fleet

JSON = dict[str, Any]
NAMESPACE = "bench"
IN_USE_POLICY = "superpod-in-use"  # the chart names it <release>-superpod-operator-in-use
SHARD_LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
PAGE = 500  # the bench's lists of partitions in pages, as a reflector's (a page per request timeout)


HEARTBEAT_SECONDS = 60.0
"""Heartbeat and device-info refresh period of fleets up to LARGE_FLEET nodes (the simulator's default)."""
LARGE_FLEET = 4096
LARGE_FLEET_HEARTBEAT_SECONDS = 300.0
"""Above LARGE_FLEET nodes: the kubelet's node status report and the device plugin's refresh, 5 minutes."""


def heartbeat_seconds(args: argparse.Namespace) -> float:
    """`--heartbeat-seconds`, else 60 s, or 300 s (the real components' period) for a fleet above 4,096 nodes."""
    if getattr(args, "heartbeat_seconds", None):
        return float(args.heartbeat_seconds)
    return LARGE_FLEET_HEARTBEAT_SECONDS if nodes_of(args) > LARGE_FLEET else HEARTBEAT_SECONDS


def nodes_of(args: argparse.Namespace) -> int:
    from superpod_sandbox.sim import hardware

    return hardware.describe(args.profile).default_nodes * int(args.superpods)


def isolation_taint(superpod: str) -> dict[str, str]:
    """The taint the operator puts on a member node of `superpod` (spec.isolation Partitions)."""
    return {"key": api_superpod.ISOLATION_TAINT, "value": superpod, "effect": "NoSchedule"}


def progress(line: str) -> None:
    """A step of the setup, on stderr as it happens (a long run shows where it is; the report is stdout)."""
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def superpod_names(count: int) -> list[str]:
    """`bench` for one SuperPod (the name earlier runs used), `bench-0`... for several."""
    return ["bench"] if count == 1 else [f"bench-{index}" for index in range(count)]


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


@dataclasses.dataclass
class Cluster:
    api: client.KubeClient
    sandbox_pid: int
    operator_pids: list[int]
    superpods: list[str]
    setup: JSON
    killed: set[int] = dataclasses.field(default_factory=set)  # replicas' indexes
    _last: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)

    def operator_status(self, index: int) -> dict[str, float]:
        """`proc_status` of replica `index`; for a killed replica, the last one read before it died."""
        if index not in self.killed:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self._last[index] = proc_status(self.operator_pids[index])
        return self._last[index]

    def operators_cpu(self) -> list[float]:
        return [self.operator_status(index)["cpu"] for index in range(len(self.operator_pids))]

    def kill(self, index: int) -> None:
        """`kill -9` replica `index`: no Lease given back, no last write."""
        self.operator_status(index)
        os.kill(self.operator_pids[index], signal.SIGKILL)
        self.killed.add(index)

    def sandbox_cpu(self) -> float:
        return proc_status(self.sandbox_pid)["cpu"]


@contextlib.asynccontextmanager
async def running(
    args: argparse.Namespace, workdir: Path, replicas: int, *, leased: bool
) -> AsyncIterator[Cluster]:
    """The sandbox, `args.superpods` simulated SuperPoDs of `args.profile` and `replicas` operators, ready."""
    from superpod.cluster import client

    from superpod_sandbox.sim import simulator as sim_fleet
    from superpod_sandbox.sim import wire

    tag = f"{replicas}-replica{'s' if replicas > 1 else ''}"
    kubeconfig = workdir / f"kubeconfig-{tag}"
    kubeconfig.unlink(missing_ok=True)
    port = _free_port()
    processes: list[asyncio.subprocess.Process] = []
    try:
        sandbox = await _spawn(workdir / f"sandbox-{tag}.log", "sandbox", "--port", str(port),
                               "--kubeconfig", str(kubeconfig))  # fmt: skip
        processes.append(sandbox)
        await _until(lambda: _exists(kubeconfig), 60, "the sandbox's kubeconfig")
        async with (
            wire.kube_client(
                client.credentials_from_kubeconfig(str(kubeconfig)),
                timeout=120,
                # every fleet's three watches keep a connection each, beside the 64 for requests
                connections=64 + 3 * args.superpods,
            ) as api,
            wire.Connections(api.credentials, size=64) as writes,
            contextlib.AsyncExitStack() as stack,
        ):
            await _until(lambda: api.get("/version"), 60, "the sandbox")
            for definition in crd.all_crds().values():
                await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", definition)
            # what the chart installs on Kubernetes 1.36+ (tools/ that start a cluster have no such option: on)
            in_use_policy = getattr(args, "in_use_policy", True)
            if in_use_policy:
                for kind, body in (
                    ("mutatingadmissionpolicies", inusepolicy.policy(IN_USE_POLICY)),
                    ("mutatingadmissionpolicybindings", inusepolicy.binding(IN_USE_POLICY)),
                ):
                    await api.create(f"/apis/{inusepolicy.API_VERSION}/{kind}", body)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            await api.create("/api/v1/namespaces", namespace)
            registering = time.monotonic()
            sandbox_cpu, own_cpu = proc_status(sandbox.pid)["cpu"], proc_status(os.getpid())["cpu"]
            names = superpod_names(args.superpods)
            options = sim_fleet.Options(
                heartbeat_seconds=heartbeat_seconds(args),
                refresh_seconds=heartbeat_seconds(args),
                sync_seconds=args.timeout,
            )
            # a large fleet registers its nodes already tainted for isolation (the kubelet's
            # --register-with-taints, as one would provision a SuperCluster), so the operator finds nothing to
            # patch; a small one is tainted by the operator, timed below
            tainted = nodes_of(args) > LARGE_FLEET
            fleets = [
                sim_fleet.Fleet(
                    args.profile,
                    api=api,
                    superpod_id=index,
                    connections=writes,  # the fleets' kubelets and device plugins write on 64 connections
                    options=dataclasses.replace(options, register_taints=(isolation_taint(name),))
                    if tainted
                    else options,
                )
                for index, name in enumerate(names)
            ]
            # every fleet registers at once, as a real fleet's kubelets do: each node still makes its own
            # requests (a Node POST, a ConfigMap POST), the client's connection pool bounds them
            await asyncio.gather(*(fleet.register() for fleet in fleets))
            posted = time.monotonic() - registering
            creating = (
                proc_status(sandbox.pid)["cpu"] - sandbox_cpu,
                proc_status(os.getpid())["cpu"] - own_cpu,
            )
            progress(f"{len(names)} fleets registered in {posted:.1f} s")
            await asyncio.gather(*(stack.enter_async_context(fleet) for fleet in fleets))  # their watches
            nodes = sum(len(fleet.node_names) for fleet in fleets)
            for index, name in enumerate(names):
                body = {
                    "apiVersion": common.API_VERSION,
                    "kind": api_superpod.KIND,
                    "metadata": {"name": name},
                    "spec": {"profile": args.profile, "superPodID": index},
                }
                await api.create(client.resource_path(common.API_VERSION, api_superpod.PLURAL), body)
            registered = time.monotonic() - registering
            objects = 2 * nodes  # a Node and a device-info ConfigMap each
            registration = {
                "seconds": round(posted, 1),  # every Node and ConfigMap created
                "watchesSyncedSeconds": round(registered, 1),  # and the simulator's watches listed them
                "objects": objects,
                # CPU per object of the creates alone (the figures below add the watches' lists)
                "sandboxCpuMsPerCreate": round(creating[0] * 1000 / objects, 3),
                "simulatorCpuMsPerCreate": round(creating[1] * 1000 / objects, 3),
                "sandboxRssMb": round(proc_status(sandbox.pid)["VmRSS"], 1),
                "simulatorRssMb": round(proc_status(os.getpid())["VmRSS"], 1),
                "sandboxCpuSeconds": round(proc_status(sandbox.pid)["cpu"] - sandbox_cpu, 2),
                "simulatorCpuSeconds": round(proc_status(os.getpid())["cpu"] - own_cpu, 2),
            }
            progress(
                f"registered {nodes} nodes in {posted:.1f} s, watches synced at {registered:.1f} s: {registration}"
            )
            healths = []
            for index in range(replicas):
                health = _free_port()
                coordination = (
                    ["--coordination", "leases", "--identity", f"r{index}"] if leased else ["--standalone"]
                )
                operator = await _spawn(
                    workdir / f"operator-{tag}-r{index}.log", "run", "--kubeconfig", str(kubeconfig),
                    *coordination, "--bind-address", "127.0.0.1", "--health-port", str(health),
                    "--metrics-port", "0", "--webhook-port", "0", checkout=getattr(args, "operator_from", None),
                )  # fmt: skip
                processes.append(operator)
                healths.append(health)
            for health in healths:
                await _until(
                    lambda h=health: _healthy(h), max(120.0, args.timeout), "the operators to be healthy"
                )
            progress("operators healthy")
            devices = await _until(lambda: _total_devices(api, names), args.timeout, "the SuperPods' devices")
            if leased:
                await _until(lambda: owners(api, names, replicas), args.timeout, "every SuperPod to be owned")
            progress("every SuperPod owned")
            # the isolation taint on every member node is setup too, not load: waited for, timed apart
            tainting = time.monotonic()
            pids = [process.pid for process in processes[1:]]
            before = sum(proc_status(pid)["cpu"] for pid in pids), proc_status(sandbox.pid)["cpu"]
            await _until(lambda: _tainted(fleets), args.timeout, "the member nodes' isolation taint")
            isolation = {
                "seconds": round(time.monotonic() - tainting, 1),
                "operatorCpuSeconds": round(sum(proc_status(pid)["cpu"] for pid in pids) - before[0], 2),
                "sandboxCpuSeconds": round(proc_status(sandbox.pid)["cpu"] - before[1], 2),
            }
            progress(f"isolation taint: {isolation}")  # the load starts now (a profiler attaches here)
            setup = {
                "profile": args.profile,
                "superpods": len(names),
                "replicas": replicas,
                "coordination": "leases" if leased else "standalone",
                "nodes": nodes,
                "devices": devices,
                "registrationSeconds": round(posted, 1),
                "registration": registration,
                "heartbeatSeconds": heartbeat_seconds(args),
                "registeredWithTaint": tainted,
                "inUsePolicy": in_use_policy,
                # the operators' code: another checkout's (`--operator-from`), or this one's (None)
                "operatorFrom": str(args.operator_from) if getattr(args, "operator_from", None) else None,
                "operatorIdleRssMb": round(max(proc_status(pid)["VmRSS"] for pid in pids), 1),
                "isolation": isolation,
            }
            yield Cluster(api, sandbox.pid, pids, names, setup)
    finally:
        # the operators at once (SIGTERM, SIGKILL after a grace), then the API server they were talking to
        await interrupt.stop(processes[1:])
        await interrupt.stop(processes[:1])


async def holders(api: client.KubeClient) -> dict[str, str]:
    """SuperPod -> the replica holding its shard Lease (none for a SuperPod nobody holds)."""
    leases = (await api.get(SHARD_LEASES, labelSelector="superpod.dev/shard-role=superpod"))["items"]
    table = {
        (lease["metadata"].get("annotations") or {}).get("superpod.dev/superpod"): lease["spec"].get(
            "holderIdentity"
        )
        for lease in leases
    }
    return {name: holder for name, holder in table.items() if name and holder}


async def owners(api: client.KubeClient, superpods: list[str], replicas: int) -> dict[str, int] | None:
    """Replica -> SuperPods it owns, once every SuperPod is owned by one of `replicas` replicas, evenly."""
    table = await holders(api)
    if any(not table.get(name) for name in superpods):
        return None
    counts = Counter(table[name] for name in superpods)
    expected = min(replicas, len(superpods))
    if len(counts) != expected or max(counts.values()) - min(counts.values()) > 1:
        return None
    return dict(sorted(counts.items()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _spawn(log: Path, *args: str, checkout: Path | None = None) -> asyncio.subprocess.Process:
    """`superpod <args>` in a session of its own (`interrupt.spawn`: the bench stops it, Ctrl-C too); from
    `checkout`'s code when given (`operator_path`)."""
    env = None if checkout is None else {**os.environ, "PYTHONPATH": operator_path(checkout)}
    with log.open("wb") as sink:
        return await interrupt.spawn(sys.executable, "-m", "superpod.cli", *args, stdout=sink, env=env)


def operator_path(checkout: Path) -> str:
    """The PYTHONPATH that runs `superpod` from another checkout: its operator/ and, since its command line
    loads its own bench commands, its sandbox/; raises ValueError for a directory that is not a checkout."""
    root = checkout.resolve()
    if not (root / "operator" / "superpod" / "cli.py").is_file():
        raise ValueError(f"{checkout} is not a checkout of superpod-operator (no operator/superpod/cli.py)")
    path = [str(root / "operator"), str(root / "sandbox")]
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*path, inherited] if inherited else path)


async def _until(check: Any, timeout: float, what: str) -> Any:
    from superpod.cluster import client

    from superpod_sandbox.sim import publisher

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, client.ApiError):
            value = await check()
            if value:
                return value
        publisher.reraise_if_cancelling()  # a cancellation aiohttp turned into a TimeoutError (an OSError)
        await asyncio.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


async def _healthy(port: int) -> bool:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as answer:
        return answer.status == 200


async def _exists(path: Path) -> bool:
    return path.exists()


async def _tainted(fleets: list[sim_fleet.Fleet]) -> bool:
    """Whether every simulated node carries the isolation taint (every member of the SuperPods: the fleet).

    Read from the fleets' own watches of their nodes: listing 65,536 Nodes every 0.2 s would be the load.
    """
    for fleet in fleets:
        assert fleet.mirror is not None
        for node in fleet.mirror.nodes.objects.values():
            taints = (node.get("spec") or {}).get("taints") or []
            if not any(taint.get("key") == api_superpod.ISOLATION_TAINT for taint in taints):
                return False
    return True


async def _total_devices(api: client.KubeClient, superpods: list[str]) -> int:
    """The SuperPods' devices once every one reports its total (0 before)."""
    from superpod.cluster import client

    totals = []
    for name in superpods:
        path = client.resource_path(common.API_VERSION, api_superpod.PLURAL, name=name)
        status = (await api.get(path)).get("status") or {}
        totals.append(int((status.get("devices") or {}).get("total", 0)))
    return sum(totals) if all(totals) else 0
