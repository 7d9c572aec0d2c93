"""The simulated NPU-Exporter: an aiohttp `/metrics` endpoint on 127.0.0.1 fed by the cluster's own state.

At every scrape (and every `tick_seconds` in between) it reads the running pods and each device's health from
the mirror (pods' `huawei.com/AscendReal`, the device-info ConfigMaps, the Nodes' Ready condition), turns them
into per-tier rates (`traffic`) and integrates the counters (`telemetry`). Routes:

- `/metrics`: every node of the fleet, with a `node` label;
- `/nodes/<node>/metrics`: one node with NPU-Exporter's exact label set, as a per-node exporter would serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from aiohttp import web
from superpod.cluster import reflector

from superpod_sandbox.sim import clusterview, layout, podstatus, scheduling, telemetry, traffic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Exporter:
    """Serves the fleet's telemetry; start with `await start()`, stop with `await stop()`."""

    def __init__(
        self, fleet: layout.Layout, view: clusterview.Mirror, port: int = 0, *, tick_seconds: float = 5.0
    ) -> None:
        self.fleet = fleet
        self.view = view
        self.port = port
        self.tick_seconds = tick_seconds
        self.telemetry = telemetry.Telemetry(fleet)
        self.bandwidths = traffic.Bandwidths.of(fleet.hardware.profile)
        self._last = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def observe(self) -> None:
        """Advance the counters to now and take the current rates and device status."""
        now = time.monotonic()
        rates, status = self.snapshot()
        self.telemetry.advance(now - self._last, rates, status)
        self._last = now

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str], traffic.Rates], dict[tuple[str, str], telemetry.DeviceStatus]]:
        """Rates and status of every device from the mirror."""
        fleet_id = self.fleet.fleet
        status: dict[tuple[str, str], telemetry.DeviceStatus] = {}
        silent: set[tuple[str, str]] = set()
        no_roce: set[tuple[str, str]] = set()
        for sim in self.fleet.nodes:
            state = self.view.plugin_state(sim.name)
            down = self.view.is_down(sim.name)
            switch_fault = bool(state.switch_faults)
            users: dict[str, tuple[str, str, str]] = {}
            for pod in self.view.active_pods_on(sim.name):
                metadata = pod.get("metadata") or {}
                containers = (pod.get("spec") or {}).get("containers") or [{}]
                for device in podstatus.used_devices(pod):
                    users[device] = (
                        metadata.get("namespace", ""),
                        metadata.get("name", ""),
                        containers[0].get("name", ""),
                    )
            for device in sim.devices:
                key = (sim.name, device)
                healthy = state.chip_healthy(device)
                network_ok = device not in state.network_unhealthy
                namespace, pod_name, container = users.get(device, ("", "", ""))
                status[key] = telemetry.DeviceStatus(
                    healthy=healthy,
                    network_ok=network_ok,
                    switch_fault=switch_fault,
                    node_down=down,
                    namespace=namespace,
                    pod_name=pod_name,
                    container_name=container,
                )
                if down or not healthy:
                    silent.add(key)
                if not network_ok:
                    no_roce.add(key)
        jobs: dict[str, list[traffic.Member]] = {}
        for pod in self.view.pods.objects.values():
            node = (pod.get("spec") or {}).get("nodeName")
            if (
                not node
                or (pod.get("status") or {}).get("phase") != "Running"
                or not scheduling.is_active(pod)
            ):
                continue
            devices = podstatus.used_devices(pod)
            if not devices:
                continue
            superpod = fleet_id if self.view.owns(node) else ""
            metadata = pod.get("metadata") or {}
            members = jobs.setdefault(traffic.job_key(pod), [])
            for device in devices:
                members.append(
                    traffic.Member(
                        node,
                        device,
                        superpod,
                        reflector.object_key(pod),
                        metadata.get("namespace", ""),
                        metadata.get("name", ""),
                        "",
                    )
                )
        rates = traffic.rates(
            jobs,
            self.bandwidths,
            has_superpod=self.fleet.hardware.facts.has_superpod,
            silent=frozenset(silent),
            no_roce=frozenset(no_roce),
        )
        return {key: rate for key, rate in rates.items() if key in status}, status

    async def exposition(self, node_names: list[str] | None = None, *, node_label: bool = True) -> str:
        """The current exposition, built in slices so a 2,000-node fleet does not stall the event loop."""
        self.observe()
        samples: list[list[str]] = [[] for _ in telemetry.METRICS]
        for count, _ in enumerate(self.telemetry.collect(samples, node_names, node_label=node_label)):
            if count % 64 == 63:
                await asyncio.sleep(0)
        return telemetry.render(samples)

    async def _metrics(self, request: web.Request) -> web.Response:
        text = await self.exposition()
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _node_metrics(self, request: web.Request) -> web.Response:
        name = request.match_info["node"]
        if not any(node.name == name for node in self.fleet.nodes):
            raise web.HTTPNotFound(text=f"no simulated node {name}\n")
        text = await self.exposition([name], node_label=False)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            self.observe()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/nodes/{node}/metrics", self._node_metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, shutdown_timeout=0.5).start()
        self._last = time.monotonic()
        self.observe()
        self._ticker = asyncio.create_task(self._tick(), name="sim-exporter-tick")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
