"""A tiny aiohttp stand-in for kube-apiserver, so the real kubectl can exercise one module at a time.

It serves legacy discovery for the resources it is given, answers the routes a test adds, records every
request (method, path, query, headers, body) and writes a kubeconfig pointing at itself. It binds 127.0.0.1 on
a free port and stops when the `async with` block ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import TOOLS_BIN

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")


class FakeApiServer:
    def __init__(self, resources: list[Resource], tmp_path: Path) -> None:
        self.resources = resources
        self.requests: list[Recorded] = []
        self.kubeconfig = tmp_path / "kubeconfig"
        self._routes: list[tuple[str, str, Handler]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def route(self, method: str, path: str, handler: Handler) -> None:
        self._routes.append((method, path, handler))

    async def __aenter__(self) -> FakeApiServer:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/api", self._core_versions)
        app.router.add_get("/apis", self._groups)
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)
        for group, version in {(r.group, r.version) for r in self.resources}:
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            app.router.add_get(prefix, self._resource_list(group, version))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{self.port}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n"
            "users:\n- name: fake\n  user:\n    token: fake\n"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def kubectl(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent)}
        process = await asyncio.create_subprocess_exec(
            str(TOOLS_BIN / "kubectl"),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        return process.returncode or 0, out.decode(), err.decode()

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return await handler(request)

    async def _core_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        )

    async def _groups(self, request: web.Request) -> web.Response:
        groups: dict[str, list[str]] = {}
        for resource in self.resources:
            if resource.group:
                groups.setdefault(resource.group, [])
                if resource.version not in groups[resource.group]:
                    groups[resource.group].append(resource.version)
        items = [
            {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
            for group, versions in groups.items()
        ]
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": items})

    def _resource_list(self, group: str, version: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            listed: list[dict[str, Any]] = [
                {
                    "name": r.plural,
                    "singularName": r.kind.lower(),
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": list(r.verbs),
                    "shortNames": list(r.short_names),
                }
                for r in self.resources
                if (r.group, r.version) == (group, version)
            ]
            group_version = f"{group}/{version}" if group else version
            return web.json_response(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": listed,
                }
            )

        return handler
