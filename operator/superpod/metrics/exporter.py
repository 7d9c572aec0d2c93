"""The operator's `/metrics` endpoint: an aiohttp site on the operator's event loop.

It serves `instruments.REGISTRY` (timings, errors, process metrics) plus a `FleetCollector` registered for the
exporter's lifetime. Scrapes run on the event loop that mutates the fleet, so a snapshot never sees a
half-applied change and needs no lock (a threaded server would race the reflectors). Port 0 binds a free port
(`port` tells which after `start()`).

Secure serving (`superpod run --metrics-secure`): HTTPS with the given TLS context, and every request first
passes `admit`, which answers who may read (`cluster.accessreview`: TokenReview and SubjectAccessReview); a
refusal is answered with its status and reason and nothing of the fleet.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import prometheus_client
from aiohttp import web

from superpod.metrics import collector, instruments
from superpod.metrics import snapshot as fleet_snapshot

Admit = Callable[[web.Request], Awaitable[tuple[int, str]]]
"""(HTTP status, reason) for a request: 200 serves it, anything else refuses it with that status."""


class Exporter:
    """Start with `await start()`, stop with `await stop()`."""

    def __init__(
        self,
        capture: Callable[[], fleet_snapshot.FleetSnapshot],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        registry: prometheus_client.CollectorRegistry = instruments.REGISTRY,
        tls: ssl.SSLContext | None = None,
        admit: Admit | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.tls = tls
        self.admit = admit
        self.collector = collector.FleetCollector(capture)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}/metrics"

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.admit is not None:
            status, reason = await self.admit(request)
            if status != 200:
                return web.Response(status=status, text=reason + "\n")
        body = prometheus_client.generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        self.registry.register(self.collector)
        try:
            app = web.Application()
            app.router.add_get("/metrics", self._metrics)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock, shutdown_timeout=0.5, ssl_context=self.tls).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(KeyError):  # never registered
            self.registry.unregister(self.collector)


@contextlib.asynccontextmanager
async def serving(
    capture: Callable[[], fleet_snapshot.FleetSnapshot],
    *,
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    admit: Admit | None = None,
) -> AsyncIterator[Exporter | None]:
    """An exporter on `host:port` for the duration of the block; port 0 serves nothing (yields None)."""
    if not port:
        yield None
        return
    served = Exporter(capture, host=host, port=port, tls=tls, admit=admit)
    await served.start()
    try:
        yield served
    finally:
        await served.stop()
