"""An operator (the real kopf runtime, in-process) against a sandbox API server, with helpers to drive it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import yaml
from superpod.cluster import client
from superpod_sandbox.apiserver import server

from tests.builders import objects
from tests.conftest import ROOT
from tests.integration.operator import forked

JSON = dict[str, Any]
SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"


def partition(name: str, npus: int, **spec: Any) -> JSON:
    """A partition of `npus` on the SuperPod `cm384-a`, in namespace team-a, with any other spec fields."""
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": npus, **spec},
    }


async def status_of(api: client.KubeClient, name: str) -> JSON:
    """A team-a partition's status ({} when it has none or is gone)."""
    obj = await api.get_or_none(f"{SPP}/{name}")
    return dict((obj or {}).get("status") or {})


async def phase_is(api: client.KubeClient, name: str, phase: str) -> JSON | None:
    """The partition's status when it is in `phase` (for `eventually`), else None."""
    status = await status_of(api, name)
    return status if status.get("phase") == phase else None


def devices_of(status: JSON) -> set[tuple[str, str]]:
    """The (node, device) pairs a partition status allocates."""
    return {(slot["node"], device) for slot in status.get("allocation") or [] for device in slot["devices"]}


async def apply_crds(api: client.KubeClient) -> None:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns a truthy value; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def add_a3_nodes(
    api: client.KubeClient, count: int, superpod_id: int = 0, *, first: int = 0
) -> list[str]:
    """`count` CloudMatrix 384 nodes of 16 dies (server indexes from `first`) with their device-info
    ConfigMaps, Ready."""
    names = []
    for index in range(first, first + count):
        name = f"a3-{superpod_id}-{index:02d}"
        node = (
            objects.node(name).superpod(superpod_id, rack=index // 4, server=index).devices(16).ready().obj()
        )
        await api.create("/api/v1/nodes", node)
        await api.create(
            "/api/v1/namespaces/kube-system/configmaps",
            objects.deviceinfo_configmap(
                name, superpod_id=superpod_id, server_index=index, rack_id=index // 4
            ),
        )
        names.append(name)
    return names


class Operator:
    """`superpod run` as a process of its own, as it runs in a pod (forked from a server that has imported it:
    see `forked`); `kill()` is `kill -9`, `stop()` a SIGTERM."""

    def __init__(self, kubeconfig: str, *extra: str, standalone: bool = True) -> None:
        self.kubeconfig = kubeconfig
        self.extra = extra
        self.standalone = standalone
        self.health_port = 0
        self.process: forked.Process | asyncio.subprocess.Process | None = None
        self.log = Path(tempfile.mkdtemp(prefix="superpod-operator-")) / "operator.log"

    async def start(self, timeout: float = 60.0) -> None:  # generous: 20 s was too short at load 14
        self.health_port = free_port()
        self.process = forked.Process(
            [
                "run",
                "--kubeconfig", self.kubeconfig,
                *(["--standalone"] if self.standalone else []),
                "--bind-address", "127.0.0.1",
                "--health-port", str(self.health_port),
                "--metrics-port", "0",
                "--webhook-port", "0",
                "--status-interval", "0.05",
                "--inventory-debounce", "0.02",
                *self.extra,
            ],
            self.log,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(f"operator exited: {self.log.read_text()[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{self.health_port}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"operator not healthy within {timeout}s: {self.log.read_text()[-3000:]}")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def sandbox_cluster() -> AsyncIterator[tuple[server.Sandbox, client.KubeClient]]:
    """A sandbox with the project's CRDs and the namespace team-a, and a client of it (tests and tools/)."""
    async with server.Sandbox() as sandbox:
        credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
        async with client.KubeClient(credentials) as api:
            await apply_crds(api)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
            await api.create("/api/v1/namespaces", namespace)
            yield sandbox, api


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[tuple[server.Sandbox, client.KubeClient]]:
    async with sandbox_cluster() as pair:
        yield pair


@pytest_asyncio.fixture
async def running(cluster: tuple[server.Sandbox, client.KubeClient]) -> AsyncIterator[Operator]:
    sandbox, _ = cluster
    op = Operator(sandbox.kubeconfig)
    await op.start()
    yield op
    await op.stop()


def manifest(path: str) -> JSON:
    return yaml.safe_load((ROOT / "examples" / path).read_text())


def example_path(path: str) -> Path:
    return ROOT / "examples" / path


async def books_balance(api: client.KubeClient, superpod: str = "cm384-a") -> JSON | None:
    """The SuperPod's device counts once they balance against its partitions (for `eventually`), else None.

    No device is ever held by two partitions (asserted at once); the SuperPod's `allocated` equals the devices
    its partitions hold (none leaked), and its states add up to its total.
    """
    items = (await api.get("/apis/superpod.dev/v1alpha1/superpodpartitions"))["items"]
    held = [
        (slot["node"], device)
        for item in items
        if item["spec"]["superPod"] == superpod
        for slot in (item.get("status") or {}).get("allocation") or []
        for device in slot["devices"]
    ]
    assert len(held) == len(set(held)), f"devices held twice: {sorted(d for d in held if held.count(d) > 1)}"
    counts = ((await api.get(f"{SPOD}/{superpod}")).get("status") or {}).get("devices") or {}
    if counts.get("allocated") != len(held):
        return None
    states = ("free", "allocated", "unhealthy", "reserved")
    assert sum(counts.get(state, 0) for state in states) == counts["total"], counts
    return dict(counts)
