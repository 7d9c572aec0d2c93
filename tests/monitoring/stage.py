"""The monitored scene served for a real Prometheus: the operator's exporter and the simulated NPU-Exporters.

`Stage(world)` serves, on an event loop in a background thread, the operator's `/metrics`
(`superpod.metrics.exporter.Exporter` with `instruments.REGISTRY`, collector fed by `world.capture`) and one
NPU-Exporter endpoint per SuperPoD (`/superpods/<name>/metrics`, `superpod_sandbox.sim.telemetry` exposition), then
starts Prometheus scraping them every second with the chart's alert and recording rules loaded.

`python -m tests.monitoring.stage --png docs/dashboard.png` (what `make dashboard-png` runs) plays the scene
for a while (partitions arrive, faults happen), renders the dashboard from Prometheus with
`superpod.metrics.render_dashboard`, then stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from superpod.metrics import exporter, generate, instruments, render_dashboard

from tests.monitoring import prometheus, scene

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULE_FILES = tuple(ROOT / generate.CHART_FILES / name for name in ("alerts.yaml", "recording-rules.yaml"))
NPU_JOB = "npu-exporter"


class Stage:
    def __init__(self, world: scene.World) -> None:
        self.world = world
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="monitoring-stage", daemon=True)
        self.exporter = exporter.Exporter(world.capture, registry=instruments.REGISTRY)
        self.npu_runner: web.AppRunner | None = None
        self.npu_port = 0
        self.prometheus: prometheus.Prometheus | None = None

    async def _npu_metrics(self, request: web.Request) -> web.Response:
        name = request.match_info["superpod"]
        if name not in self.world.superpods:
            raise web.HTTPNotFound()
        text = await asyncio.to_thread(self.world.exposition, name)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def _start_servers(self) -> None:
        await self.exporter.start()
        app = web.Application()
        app.router.add_get("/superpods/{superpod}/metrics", self._npu_metrics)
        self.npu_runner = web.AppRunner(app, access_log=None)
        await self.npu_runner.setup()
        site = web.TCPSite(self.npu_runner, "127.0.0.1", 0, shutdown_timeout=0.5)
        await site.start()
        self.npu_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop_servers(self) -> None:
        await self.exporter.stop()
        if self.npu_runner is not None:
            await self.npu_runner.cleanup()
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def scrape_configs(self) -> list[dict[str, Any]]:
        return [
            {
                "job_name": "superpod-operator",
                "static_configs": [{"targets": [f"127.0.0.1:{self.exporter.port}"]}],
            },
            {
                "job_name": NPU_JOB,
                # NPU-Exporter collects every 5 s by default; 768 devices make 25k series per SuperPoD
                "scrape_interval": "5s",
                "scrape_timeout": "4s",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{self.npu_port}"],
                        "labels": {"__metrics_path__": f"/superpods/{name}/metrics"},
                    }
                    for name in self.world.superpods
                ],
            },
        ]

    def __enter__(self) -> Stage:
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_servers(), self.loop).result(timeout=30)
            self.prometheus = prometheus.Prometheus(self.scrape_configs(), RULE_FILES)
            self.prometheus.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop_servers(), self.loop).result(timeout=30)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.loop.close()


def play(world: scene.World, stage: Stage, seconds: float) -> None:
    """Let the scene evolve: partitions arrive over time, then faults, so the graphs have a shape."""
    assert stage.prometheus is not None
    stage.prometheus.wait_for('up{job="npu-exporter"} == 1', timeout=30)
    steps = list(scene.ASKS)
    started = time.monotonic()
    pause = seconds / (len(steps) + 4)
    for ask in steps:
        world.create(ask)
        world.bind_pods()
        world.refresh_superpods()
        time.sleep(pause)
    scene.fault(world)
    while time.monotonic() - started < seconds:
        world.refresh_superpods()
        time.sleep(1.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.monitoring.stage", description=__doc__)
    parser.add_argument(
        "--png", type=pathlib.Path, required=True, help="where to write the dashboard picture"
    )
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the scene plays")
    args = parser.parse_args(argv)
    world = scene.World(scene.FULL)
    with Stage(world) as stage:
        assert stage.prometheus is not None
        play(world, stage, args.seconds)
        return render_dashboard.main(
            [
                "--prometheus",
                stage.prometheus.url,
                "--out",
                str(args.png),
                "--seconds",
                str(int(args.seconds)),
                "--var",
                "superpod=cm384-a",
                "--title",
                "SuperPod operator: simulated CloudMatrix 384 SuperPoD cm384-a (tests/monitoring/scene.py)",
            ]
        )


if __name__ == "__main__":
    sys.exit(main())
