"""A simulated Ascend fleet, started and stopped from Python: `async with Fleet("cloudmatrix-384", ...) as fleet`.

Starting registers the Nodes and device-info ConfigMaps (bounded concurrency), starts the watches (`clusterview`),
the kubelet/device-plugin stand-in (`kubelet`), with `Options.controllers` the workload controllers
(`controllers`), the heartbeat and ConfigMap refresh loops (`publisher`) and,
when `metrics_port` is not None, the NPU-Exporter endpoint (`npu_exporter`). Stopping cancels them and leaves the
objects in place (`superpod sim down`, or `await fleet.remove()`, deletes them), like servers that keep
existing when their agents stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from superpod.cluster import client

from superpod_sandbox.sim import (
    clusterview,
    control,
    devicefaults,
    hardware,
    kubelet,
    layout,
    npu_exporter,
    publisher,
    wire,
)
from superpod_sandbox.sim.controllers import manager

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Options:
    """How the simulated fleet behaves; the defaults suit a demo on the sandbox."""

    bind_pods: bool = True  # act as the scheduler for pending pods (there is none in the sandbox)
    heartbeat_seconds: float = (
        60.0  # Ready condition lastHeartbeatTime refresh (kubelet: 10 s lease + 5 min status)
    )
    refresh_seconds: float = (
        60.0  # ConfigMap rewrite with a new UpdateTime (device plugin: on change, else 5 min)
    )
    plugin_sync_seconds: float = (
        1.0  # delay before a node's ConfigMap follows a pod taking or freeing devices
    )
    resync_seconds: float = 1.0  # kubelet pass over all pods even without events
    concurrency: int = 32  # API calls in flight at once
    metrics_port: int | None = None  # None: no exporter; 0: a free port on 127.0.0.1
    telemetry_tick_seconds: float = 5.0  # counter integration between scrapes
    free_list_excludes_used: bool = True  # as the real plugin; False lists used devices too (older consumers)
    controllers: bool = False  # run the Deployment, ReplicaSet and Job controllers (sim.controllers)
    # taints on every Node from its registration (the kubelet's --register-with-taints)
    register_taints: tuple[dict[str, str], ...] = ()
    sync_seconds: float = 60.0  # how long the fleet's watches may take to list what they follow


class Fleet:
    """One simulated SuperPoD (or group of servers) of a hardware profile, against one API server."""

    def __init__(
        self,
        profile: str = "cloudmatrix-384",
        *,
        kubeconfig: str | None = None,
        api: client.KubeClient | None = None,
        superpod_id: int = 0,
        nodes: int | None = None,
        options: Options = Options(),
        connections: wire.Connections | None = None,
    ) -> None:
        """`connections`: where the fleet's kubelets and device plugins write (several fleets may share one);
        by default the fleet opens its own, `options.concurrency` of them, to the API server of `api`."""
        self.layout = layout.build(hardware.describe(profile), superpod_id, nodes)
        self.options = options
        self._kubeconfig = kubeconfig
        self._own_api = api is None
        self._api = api
        self._connections = connections
        self._own_connections = connections is None
        self.mirror: clusterview.Mirror | None = None
        self.publisher: publisher.Publisher | None = None
        self.kubelet: kubelet.Kubelet | None = None
        self.exporter: npu_exporter.Exporter | None = None
        self.controllers: manager.ControllerManager | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._dirty: set[str] = set()
        self.registration_seconds = 0.0

    @property
    def api(self) -> client.KubeClient:
        if self._api is None:
            raise RuntimeError("the fleet is not started")
        return self._api

    @property
    def metrics_url(self) -> str | None:
        return self.exporter.url if self.exporter is not None else None

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.layout.nodes)

    def _devices_changed(self, node_name: str) -> None:
        self._dirty.add(node_name)

    async def register(self) -> None:
        """Create (or adopt) the fleet's Nodes and device-info ConfigMaps; `start` does it unless done before.

        Many fleets in one process register first and start after, so no fleet's watches see the others'
        registration go by.
        """
        if self.publisher is not None:
            return
        if self._api is None:
            self._api = wire.kube_client(client.credentials_from_kubeconfig(self._kubeconfig))
            await self._api.__aenter__()
        began = time.monotonic()
        if self._connections is None:
            self._connections = wire.Connections(self.api.credentials, size=self.options.concurrency)
        self.mirror = clusterview.Mirror(self.api, self.layout, on_pod=self._on_pod)
        self.publisher = publisher.Publisher(
            self._connections,
            self.layout,
            self.mirror,
            concurrency=self.options.concurrency,
            exclude_used=self.options.free_list_excludes_used,
            taints=self.options.register_taints,
        )
        await self.publisher.register()  # before the watches start, so they begin with the whole fleet
        self.registration_seconds = time.monotonic() - began

    async def start(self) -> None:
        await self.register()
        assert self.mirror is not None and self.publisher is not None
        self.kubelet = kubelet.Kubelet(
            self.api, self.layout, self.mirror, self._devices_changed, bind_pods=self.options.bind_pods
        )
        await self.mirror.start(self.options.sync_seconds)
        self._spawn(self.kubelet.run(self.options.resync_seconds), "sim-kubelet")
        self._spawn(self.publisher.heartbeat_loop(self.options.heartbeat_seconds), "sim-heartbeat")
        self._spawn(self.publisher.refresh_loop(self.options.refresh_seconds), "sim-refresh")
        self._spawn(self._plugin_sync_loop(), "sim-plugin-sync")
        if self.options.controllers:
            self.controllers = manager.ControllerManager(self.api, self.options.resync_seconds)
            await self.controllers.start()
        if self.options.metrics_port is not None:
            self.exporter = npu_exporter.Exporter(
                self.layout,
                self.mirror,
                self.options.metrics_port,
                tick_seconds=self.options.telemetry_tick_seconds,
            )
            await self.exporter.start()
        logger.info(
            "simulated fleet %s: %d nodes registered in %.1f s",
            self.layout.fleet,
            len(self.layout.nodes),
            self.registration_seconds,
        )

    def _on_pod(self, key: str, old: Any, new: Any) -> None:
        if self.kubelet is not None:
            self.kubelet.on_pod(key, old, new)

    def _spawn(self, coroutine: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def _plugin_sync_loop(self) -> None:
        assert self.publisher is not None
        while True:
            await asyncio.sleep(self.options.plugin_sync_seconds)
            if not self._dirty:
                continue
            names, self._dirty = sorted(self._dirty), set()
            await publisher.bounded(self.options.concurrency, self.publisher.publish, names)

    async def stop(self) -> None:
        if self.controllers is not None:
            await self.controllers.stop()
            self.controllers = None
        await clusterview.cancel(self._tasks)
        self._tasks.clear()
        if self.exporter is not None:
            await self.exporter.stop()
            self.exporter = None
        if self.mirror is not None:
            await self.mirror.stop()
        if self._own_connections and self._connections is not None:
            await self._connections.close()
            self._connections = None
        if self._own_api and self._api is not None:
            await self._api.__aexit__(None, None, None)
            self._api = None

    async def inject(
        self, node: str, kind: str | devicefaults.Kind, device: str | None = None, *, switch_port: int = 0
    ) -> str:
        """`superpod sim fault` from Python; returns what changed."""
        return await control.inject(self.api, node, devicefaults.Kind(kind), device, switch_port=switch_port)

    async def heal(
        self, node: str, kind: str | devicefaults.Kind | None = None, device: str | None = None
    ) -> str:
        """`superpod sim heal` from Python; returns what changed."""
        return await control.heal(self.api, node, devicefaults.Kind(kind) if kind else None, device)

    async def remove(self) -> dict[str, int]:
        """Delete this fleet's Nodes, ConfigMaps and the pods bound to its nodes."""
        return await control.down(self.api, self.layout.fleet)

    async def __aenter__(self) -> Fleet:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
