"""A reverse proxy in front of an API server that records each request as Kubernetes RBAC sees it.

The sandbox counts every request it serves, from every client; putting this proxy between the operator and the
sandbox attributes requests to the operator alone, so the chart's roles can be checked against exactly what the
operator did. Requests are turned into RBAC attributes with kube-apiserver's rules (RequestInfoFactory):
`/api/v1/...` is the core group, `/apis/<group>/<version>/...` the others, `namespaces/<ns>/` scopes the rest,
the verb comes from the method, a name and `watch=true`. Non-resource paths (discovery, /version, /openapi)
are passed through unrecorded: every authenticated user may read them (system:discovery).
Responses are streamed, so watches work through the proxy. It binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
from pathlib import Path
from types import TracebackType

import aiohttp
import yaml
from aiohttp import web

from tests.chart import rbac

# Namespace subresources are the only path parts after namespaces/<name> that are not resources.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


def request_attributes(method: str, path: str, query: dict[str, str]) -> rbac.Call | None:
    """The RBAC attributes of a request, or None for a non-resource URL."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # the group-version's discovery document
    watch_prefix = rest[0] == "watch"
    if watch_prefix:
        rest = rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:])
    if resource == "namespaces" and name is not None:
        namespace = ""  # a Namespace object is cluster-scoped
    method = method.upper()
    if method == "GET" or method == "HEAD":
        if watch_prefix or query.get("watch") in ("true", "1"):
            verb = "watch"
        else:
            verb = "get" if name is not None else "list"
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name is not None else "deletecollection"
    else:
        verb = method.lower()
    return rbac.Call(verb, group, resource, subresource, namespace, name)


class RecordingProxy:
    """`async with RecordingProxy(upstream_url) as proxy:` then give clients `proxy.kubeconfig`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: list[rbac.Call] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.kubeconfig = ""

    async def __aenter__(self) -> RecordingProxy:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock, shutdown_timeout=0.5).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._tempdir = tempfile.TemporaryDirectory(prefix="superpod-proxy-")
        path = Path(self._tempdir.name) / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
                    "users": [{"name": "operator", "user": {"token": "operator"}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "operator"}}],
                    "current-context": "proxy",
                }
            )
        )
        self.kubeconfig = str(path)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        call = request_attributes(request.method, request.path, dict(request.query))
        if call is not None:
            self.calls.append(call)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response
