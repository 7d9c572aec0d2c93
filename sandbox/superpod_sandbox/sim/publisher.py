"""Writes the fleet's Nodes and device-info ConfigMaps: registration, heartbeats and periodic refreshes.

Like the kubelet and the device plugin, it registers each Node (status included) and creates each ConfigMap
once, then keeps them fresh: the Ready condition's `lastHeartbeatTime` every `heartbeat_seconds` and the
ConfigMap (new `UpdateTime`, the free list recomputed from the pods) every `refresh_seconds`, and at once when
a pod on the node takes or frees devices. Writes carry the resourceVersion they were computed from, so a fault
written meanwhile by another process is never overwritten: on 409 the object is read again and recomputed. Work
is spread evenly over each interval in small concurrent batches (bounded by `concurrency`) at most
`SLICE_SECONDS` apart, each fleet's loops out of step with the others', so 2,000 nodes (or 65,536) cost a
steady trickle of writes, not bursts. A node taken down (`sim fault --kind node-down`) gets neither.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from superpod.cluster import client, deviceinfo

from superpod_sandbox.sim import clusterview, layout, nodes, plugin_state, wire

JSON = dict[str, Any]
T = TypeVar("T")
logger = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reraise_if_cancelling() -> None:
    """Raise CancelledError if this task is being cancelled.

    A library (aiohttp's timers, asyncio.wait_for on 3.11) may turn a cancellation into a TimeoutError; a loop
    that logs and carries on after errors would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def bounded(limit: int, action: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
    """`action(item)` for every item, at most `limit` at once; failures are logged, not raised.

    The coroutine is created only once a place is free, so a cancelled batch leaves none un-awaited.
    """
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        async with semaphore:
            try:
                await action(item)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one node's failure must not stop the fleet
                reraise_if_cancelling()
                logger.warning("simulator write failed: %s", error)

    await asyncio.gather(*(one(item) for item in items))


SLICE_SECONDS = 0.05
"""The finest step of `spread`: a SuperCluster's 65,536 kubelets report at independent moments, not in step.
A step of a second sent 64 fleets' writes of each second together (437 at 64 SuperPoDs, 0.3 s of the API
server's CPU), and every other request of that second queued behind them."""


def batch_size(interval: float, count: int) -> int:
    """Names per batch of `spread`: one, unless there are more names than steps of `SLICE_SECONDS`."""
    return math.ceil(count / max(1, min(count, math.ceil(interval / SLICE_SECONDS))))


def slice_seconds(interval: float, count: int) -> float:
    """The time between two batches of `spread` for `count` names over `interval` seconds."""
    return interval / max(1, math.ceil(count / batch_size(interval, count)))


async def spread(
    interval: float, names: Sequence[str], action: Callable[[str], Awaitable[None]], limit: int
) -> None:
    """Apply `action` to every name once, spread evenly over `interval` seconds in batches `slice_seconds`
    apart (a name each, unless there are more names than steps of `SLICE_SECONDS`)."""
    if not names:
        await asyncio.sleep(interval)
        return
    step, size = slice_seconds(interval, len(names)), batch_size(interval, len(names))
    for start in range(0, len(names), size):
        began = time.monotonic()
        await bounded(limit, action, names[start : start + size])
        await asyncio.sleep(max(0.0, step - (time.monotonic() - began)))


async def out_of_step(interval: float, count: int) -> None:
    """Wait a random part of one step of `spread`: loops started together (every fleet's, at registration) then
    write at their own moments, as independent kubelets and device plugins do, not all at once."""
    await asyncio.sleep(random.random() * slice_seconds(interval, count))


class Publisher:
    """Registers and refreshes one fleet's Nodes and ConfigMaps."""

    def __init__(
        self,
        api: client.KubeClient | wire.Connections,
        fleet: layout.Layout,
        view: clusterview.Mirror,
        *,
        concurrency: int = 32,
        exclude_used: bool = True,
        taints: tuple[JSON, ...] = (),
    ) -> None:
        self.api = api
        self.taints = taints  # registered with every Node (kubelet --register-with-taints)
        self.exclude_used = exclude_used  # the real plugin's free list leaves out devices pods use
        self.fleet = fleet
        self.view = view
        self.concurrency = concurrency
        self.publishes = 0  # ConfigMap writes so far, for tests and the demo

    # registration

    async def register(self) -> None:
        """Create (or adopt) every Node and ConfigMap of the fleet."""
        await bounded(self.concurrency, self._register, self.fleet.nodes)

    async def _register(self, node: layout.SimNode) -> None:
        now = now_rfc3339()
        body = nodes.node_object(self.fleet, node, now, self.taints)
        try:
            created = await self.api.create("/api/v1/nodes", body)
        except client.ApiError as error:
            if error.status != 409:
                raise
            await self.api.patch(
                f"/api/v1/nodes/{node.name}",
                {
                    "metadata": {
                        "labels": body["metadata"]["labels"],
                        "annotations": body["metadata"]["annotations"],
                    }
                },
            )
            created = {}
        if not created.get("status", {}).get("conditions") or not created.get("status", {}).get("capacity"):
            existing = await self.api.get(f"/api/v1/nodes/{node.name}")
            status = body["status"]
            if nodes.is_down(existing):  # a node left down by an earlier run stays down
                status = {**status, "conditions": existing["status"]["conditions"]}
            await self.api.patch(f"/api/v1/nodes/{node.name}/status", {"status": status})
        if self.fleet.hardware.facts.publishes_deviceinfo:
            await self._create_configmap(node)

    async def _create_configmap(self, node: layout.SimNode) -> None:
        body = self._mark(
            plugin_state.configmap(
                self.fleet, node, plugin_state.PluginState(), int(time.time()), fleet_label=nodes.FLEET_LABEL
            )
        )
        try:
            await self.api.create(client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE), body)
        except client.ApiError as error:
            if error.status != 409:
                raise
            await self.publish(node.name)  # keep the faults an earlier run left in it

    def _mark(self, configmap: JSON) -> JSON:
        """Record the free-list mode on the ConfigMap, so `sim fault` from another process keeps it."""
        if not self.exclude_used:
            configmap["metadata"]["annotations"] = {
                plugin_state.FREE_LIST_ANNOTATION: plugin_state.FREE_LIST_ALL
            }
        return configmap

    # heartbeats

    async def heartbeat(self, name: str) -> None:
        """Refresh the Ready condition's lastHeartbeatTime unless the node is down."""
        for _ in range(3):
            node = self.view.node(name) or await self.api.get(f"/api/v1/nodes/{name}")
            if nodes.is_down(node):
                return
            now = now_rfc3339()
            conditions = []
            for condition in (node.get("status") or {}).get("conditions") or []:
                conditions.append({**condition, "lastHeartbeatTime": now})
            if not conditions:
                conditions = nodes.ready_conditions(now)
            body = {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "status": {"conditions": conditions},
            }
            try:
                await self.api.patch(f"/api/v1/nodes/{name}/status", body)
                return
            except client.ApiError as error:
                if error.status != 409:
                    raise
                fresh = await self.api.get(f"/api/v1/nodes/{name}")
                self.view.nodes.objects[name] = fresh

    # device-info ConfigMaps

    async def publish(self, name: str) -> None:
        """Rewrite the node's ConfigMap: current faults (as stored), free list from the pods, new UpdateTime."""
        if not self.fleet.hardware.facts.publishes_deviceinfo or self.view.is_down(name):
            return
        node = self.fleet.node(name)
        path = client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE, deviceinfo.configmap_name(name))
        current = self.view.configmap(name)
        for _ in range(5):
            if current is None:
                current = await self.api.get_or_none(path)
                if current is None:
                    await self._create_configmap(node)
                    return
            try:
                state = plugin_state.read(current, self.fleet.hardware.resource)
            except (deviceinfo.DeviceInfoError, ValueError, KeyError):
                state = plugin_state.PluginState()  # the plugin rewrites a ConfigMap it cannot read
            in_use = self.view.in_use(name) if self.exclude_used else {}
            body = self._mark(
                plugin_state.configmap(
                    self.fleet, node, state, int(time.time()), in_use, fleet_label=nodes.FLEET_LABEL
                )
            )
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                written = await self.api.replace(path, body)
                self.view.configmaps.objects[f"{deviceinfo.NAMESPACE}/{deviceinfo.configmap_name(name)}"] = (
                    written
                )
                self.publishes += 1
                return
            except client.ApiError as error:
                if error.status != 409:
                    raise
                current = None

    # loops

    def live_names(self) -> list[str]:
        return [node.name for node in self.fleet.nodes if not self.view.is_down(node.name)]

    async def heartbeat_loop(self, interval: float) -> None:
        await out_of_step(interval, len(self.fleet.nodes))
        while True:
            await spread(interval, self.live_names(), self.heartbeat, self.concurrency)

    async def refresh_loop(self, interval: float) -> None:
        await out_of_step(interval, len(self.fleet.nodes))
        while True:
            await spread(interval, self.live_names(), self.publish, self.concurrency)
