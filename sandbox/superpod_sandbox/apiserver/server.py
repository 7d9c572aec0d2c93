"""`Sandbox`: start and stop the API server in the running event loop, and write a kubeconfig for it.

    async with Sandbox() as api:
        subprocess.run(["kubectl", "--kubeconfig", api.kubeconfig, "get", "ns"])

The server binds 127.0.0.1 on a free port (or the one asked for); `api.calls` counts every served request as
(verb, group, resource, subresource, namespace) for RBAC checks; `api.state` is the server's state itself.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web

from superpod_sandbox.apiserver import chaos, routes, tls
from superpod_sandbox.apiserver.admission import webhooks
from superpod_sandbox.apiserver.identity import authn
from superpod_sandbox.apiserver.registry import deletion, expiry
from superpod_sandbox.apiserver.registry.semantics import State


class Sandbox:
    def __init__(
        self,
        port: int = 0,
        *,
        use_tls: bool = False,
        kubeconfig: Path | str | None = None,
        history_size: int = 10_000,
        history_seconds: float = 75.0,
        bookmark_interval: float = 60.0,
        event_ttl: float = 3600.0,
        strict_authentication: bool = False,
    ) -> None:
        self.port = port
        self.use_tls = use_tls
        self.history_size = history_size
        self.bookmark_interval = bookmark_interval
        self.event_ttl = event_ttl
        self._expiry: asyncio.Task[None] | None = None
        self._kubeconfig_path = Path(kubeconfig) if kubeconfig is not None else None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._collector: asyncio.Task[None] | None = None
        self.state = State(history_size, history_seconds)
        self.identities = authn.Authenticator(self.state.store, strict=strict_authentication)
        self.router = routes.Router(self.state, bookmark_interval, self.identities)
        self.client_ca: tls.ClientAuthority | None = None
        self.webhooks = webhooks.Webhooks(self.state)
        self.state.admission = self.webhooks
        self.certificate: tls.ServingCertificate | None = None
        self.faults = chaos.Faults()  # API faults for chaos tests; none until a plan is set
        # told of every request as it arrives (tests record who wrote what, and when)
        self.request_observers: list[Callable[[web.Request], None]] = []
        self.url = ""

    @property
    def kubeconfig(self) -> str:
        assert self._kubeconfig_path is not None, "the sandbox is not started"
        return str(self._kubeconfig_path)

    @property
    def calls(self) -> collections.Counter[routes.Call]:
        """Every request served so far, counted by (verb, group, resource, subresource, namespace)."""
        return self.router.calls

    requests_log = calls

    async def start(self) -> None:
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._observe, self.faults.middleware]
        )
        app.router.add_route("*", "/{tail:.*}", self.router.handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        context = None
        if self.use_tls:
            self.certificate = tls.generate()
            self.client_ca = tls.ClientAuthority()
            context = self.certificate.server_context(self.client_ca.ca_pem)
        site = web.SockSite(self._runner, sock, ssl_context=context, shutdown_timeout=0.5)
        await site.start()
        self.url = f"{'https' if self.use_tls else 'http'}://127.0.0.1:{self.port}"
        self._collector = asyncio.create_task(deletion.run_collector(self.state), name="sandbox-collector")
        self._expiry = asyncio.create_task(
            expiry.run(self.state, self.event_ttl), name="sandbox-event-expiry"
        )
        self._write_kubeconfig()

    @web.middleware
    async def _observe(self, request: web.Request, handler: Any) -> web.StreamResponse:
        for observer in self.request_observers:
            observer(request)
        response: web.StreamResponse = await handler(request)
        return response

    def _write_kubeconfig(self) -> None:
        if self._kubeconfig_path is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="superpod-sandbox-")
            self._kubeconfig_path = Path(self._tempdir.name) / "kubeconfig"
        self._write_config(self._kubeconfig_path, {"token": "sandbox"}, "default")

    def _write_config(self, path: Path, user: dict[str, str], namespace: str) -> None:
        cluster: dict[str, object] = {"server": self.url}
        if self.certificate is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.certificate.ca_pem).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sandbox", "cluster": cluster}],
            "users": [{"name": "sandbox", "user": user}],
            "contexts": [
                {
                    "name": "sandbox",
                    "context": {"cluster": "sandbox", "user": "sandbox", "namespace": namespace},
                }
            ],
            "current-context": "sandbox",
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def user_kubeconfig(
        self,
        user: str,
        groups: tuple[str, ...] = (),
        path: Path | str | None = None,
        namespace: str = "default",
    ) -> str:
        """A kubeconfig for `user` in `groups`: a client certificate under --tls, a static token otherwise."""
        target = Path(path) if path is not None else Path(self.kubeconfig).with_name(f"kubeconfig-{user}")
        if self.client_ca is not None:
            cert, key = self.client_ca.issue(user, groups)
            credentials = {
                "client-certificate-data": base64.b64encode(cert).decode(),
                "client-key-data": base64.b64encode(key).decode(),
            }
        else:
            credentials = {"token": self.identities.new_user_token(user, groups)}
        self._write_config(target, credentials, namespace)
        return str(target)

    def service_account_kubeconfig(
        self, namespace: str, name: str, path: Path | str | None = None, expiration_seconds: float = 3600
    ) -> str:
        """A kubeconfig with a token for the (existing) ServiceAccount `namespace/name`, as a pod's would be."""
        account = self.state.store.get(authn.SERVICE_ACCOUNTS, namespace, name)
        if account is None:
            raise LookupError(f"no ServiceAccount {namespace}/{name}")
        issued = self.identities.issue(
            namespace, name, account["metadata"]["uid"], expiration_seconds=expiration_seconds
        )
        target = (
            Path(path)
            if path is not None
            else Path(self.kubeconfig).with_name(f"kubeconfig-sa-{namespace}-{name}")
        )
        self._write_config(target, {"token": issued.token}, namespace)
        return str(target)

    async def stop(self) -> None:
        for task in (self._collector, self._expiry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._collector = self._expiry = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.webhooks.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()


@contextlib.contextmanager
def in_thread(**options: object) -> Iterator[Sandbox]:
    """A started Sandbox whose event loop runs in a background thread (for synchronous clients and tools)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Sandbox] = {}
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            holder["api"] = Sandbox(**options)  # type: ignore[arg-type]
            loop.run_until_complete(holder["api"].start())
        except BaseException as error:  # reported to the caller's thread below
            failure.append(error)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(holder["api"].stop())
        loop.close()

    thread = threading.Thread(target=serve, name="sandbox", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield holder["api"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
