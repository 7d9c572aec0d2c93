"""A small simulated fleet on the sandbox, and a poller (no sleeps: wait for the condition, with a deadline)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from superpod.cluster import client
from superpod_sandbox.sim import simulator

FAST = simulator.Options(
    heartbeat_seconds=0.5, refresh_seconds=0.5, plugin_sync_seconds=0.1, resync_seconds=0.2, metrics_port=0
)


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """The first truthy result of `probe`; fails with the last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last result: {result!r}")


@pytest_asyncio.fixture
async def api(sandbox) -> AsyncIterator[client.KubeClient]:
    async with client.KubeClient(client.credentials_from_kubeconfig(sandbox.kubeconfig)) as kube:
        await kube.create("/api/v1/namespaces", {"metadata": {"name": "train"}})
        yield kube


@pytest_asyncio.fixture
async def a3(sandbox, api) -> AsyncIterator[simulator.Fleet]:
    """Four CloudMatrix 384 nodes (64 dies) with fast heartbeats and refreshes and an exporter."""
    async with simulator.Fleet(
        "cloudmatrix-384", kubeconfig=sandbox.kubeconfig, nodes=4, options=FAST
    ) as simulated:
        yield simulated


def pod(name: str, devices: int, *, annotations=None, node_name=None, labels=None, **spec: Any) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "train",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"limits": {"huawei.com/Ascend910": str(devices)}},
                }
            ],
            **spec,
        },
    }
    if node_name:
        body["spec"]["nodeName"] = node_name
    return body
