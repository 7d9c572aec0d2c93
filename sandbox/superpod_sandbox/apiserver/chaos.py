"""API faults on demand, for chaos tests: 5xx answers, 409 conflicts, dropped watches and latency.

kube-apiserver fails in a few well-known ways, and a controller must survive each of them:

| fault | what the client sees | when kube does it |
|---|---|---|
| `error_rate` | 500 InternalError, 503 ServiceUnavailable or 504 Timeout, the request not served | etcd unavailable, overload, restart |
| `lost_reply_rate` | 504 Timeout for a write that *was* applied | the request deadline passed after etcd committed |
| `conflict_rate` | 409 Conflict on PUT, or on a PATCH carrying `metadata.resourceVersion`, not served | another writer got there first (kube retries other patches itself) |
| `watch_cut` | a watch stream that breaks mid-chunk after a random time | apiserver restart, load balancer idle cut |
| `latency` | every answer delayed by a random time | a busy server |

`Faults` is an aiohttp middleware the `Sandbox` always installs; it does nothing until a `Plan` is set, and a
plan may be set and cleared while the server runs (set up a cluster cleanly, then break it; watches opened
before the plan are cut as well, so long-lived clients feel it too). A plan may aim at
one client only, by the bearer token of its kubeconfig (the sandbox accepts any token), so a test can break the
operator's view of the API while its own requests and the simulator's go through. `injected` counts what was
done, per fault, so a test can prove the faults happened.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import random
from collections.abc import Awaitable, Callable

from aiohttp import web

from superpod_sandbox.apiserver import errors

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which faults to inject, as shares of the requests they apply to."""

    error_rate: float = 0.0  # any request: a 5xx instead of an answer
    lost_reply_rate: float = 0.0  # writes: served, then answered 504 Timeout
    conflict_rate: float = 0.0  # PUT, and PATCH with a resourceVersion: 409 Conflict instead of an answer
    watch_cut: tuple[float, float] | None = None  # watches: broken after uniform(low, high) seconds
    latency: tuple[float, float] = (0.0, 0.0)  # every request: uniform(low, high) seconds before serving
    token: str | None = None  # only requests with `Authorization: Bearer <token>`; None: every request
    seed: int | None = None  # the random draws, for a reproducible run


class Faults:
    """The middleware and its current plan."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.injected: collections.Counter[str] = collections.Counter()
        self._random = random.Random()
        # watches being served (by id: requests are unhashable), so a plan set later can cut them too
        self._watches: dict[int, web.Request] = {}
        self._cuts: dict[int, asyncio.TimerHandle] = {}

    def set(self, plan: Plan | None) -> None:
        """Start injecting `plan`'s faults (None: stop); watches already open are cut as new ones will be."""
        self.plan = plan
        if plan is not None and plan.seed is not None:
            self._random.seed(plan.seed)
        for timer in self._cuts.values():
            timer.cancel()
        self._cuts.clear()
        if plan is not None and plan.watch_cut is not None:
            for request in self._watches.values():
                if self._applies(plan, request):
                    self._schedule_cut(request, self._random.uniform(*plan.watch_cut))

    def _applies(self, plan: Plan, request: web.Request) -> bool:
        if plan.token is None:
            return True
        return request.headers.get("Authorization", "") == f"Bearer {plan.token}"

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_watch(request):
            self._watches[id(request)] = request
            try:
                return await self._inject(request, handler)
            finally:
                del self._watches[id(request)]
                cut = self._cuts.pop(id(request), None)
                if cut is not None:
                    cut.cancel()
        return await self._inject(request, handler)

    async def _inject(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        plan = self.plan
        if plan is None or not self._applies(plan, request):
            return await handler(request)
        low, high = plan.latency
        if high > 0:
            self.injected["latency"] += 1
            await asyncio.sleep(self._random.uniform(low, high))
        if self._draw(plan.error_rate):
            failure = self._random.choice(_SERVER_ERRORS)()
            self.injected[f"error{failure.code}"] += 1
            return _answer(failure)
        if await _guarded_write(request) and self._draw(plan.conflict_rate):
            self.injected["conflict"] += 1
            return _answer(_conflict(request.path))
        if plan.watch_cut is not None and _is_watch(request):
            self._schedule_cut(request, self._random.uniform(*plan.watch_cut))
        if request.method in WRITES and self._draw(plan.lost_reply_rate):
            response = await handler(request)
            if response.status < 300:
                self.injected["lost_reply"] += 1
                return _answer(errors.timeout(_DEADLINE))
            return response
        return await handler(request)

    def _schedule_cut(self, request: web.Request, after: float) -> None:
        """Close the watch's connection under it after `after` seconds: the stream ends without its last chunk,
        as when a server goes away, and the handler notices and unsubscribes."""

        def cut() -> None:
            self._cuts.pop(id(request), None)
            if request.transport is not None and not request.transport.is_closing():
                self.injected["watch_cut"] += 1
                request.transport.close()

        self._cuts[id(request)] = asyncio.get_running_loop().call_later(after, cut)


_DEADLINE = "Timeout: request did not complete within requested timeout - context deadline exceeded"

_SERVER_ERRORS: tuple[Callable[[], errors.ApiError], ...] = (
    lambda: errors.internal("rpc error: code = Unavailable desc = etcdserver: leader changed"),
    lambda: errors.ApiError(
        errors.status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
    ),
    lambda: errors.timeout(_DEADLINE),
)


def _answer(failure: errors.ApiError) -> web.Response:
    return web.json_response(failure.status, status=failure.code)


async def _guarded_write(request: web.Request) -> bool:
    """A write kube can refuse with 409 Conflict: a PUT (it always carries a resourceVersion), or a PATCH whose
    body names one; kube-apiserver retries unguarded patches on its own, so their clients never see a 409."""
    if request.method == "PUT":
        return True
    if request.method != "PATCH":
        return False
    try:
        body = json.loads(await request.read())  # aiohttp keeps the bytes for the handler
    except ValueError:
        return False
    metadata = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(metadata, dict) and bool(metadata.get("resourceVersion"))


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch") in ("true", "1") or "/watch/" in request.path


def _conflict(path: str) -> errors.ApiError:
    """409 Conflict naming the object of `path` (`/api[s]/.../<plural>/<name>[/<subresource>]`)."""
    parts = [part for part in path.split("/") if part]
    group = parts[1] if parts[:1] == ["apis"] else ""
    body = parts[3:] if group else parts[2:]
    if len(body) > 2 and body[0] == "namespaces":
        body = body[2:]
    resource = body[0] if body else ""
    name = body[1] if len(body) > 1 else ""
    return errors.stale(group, resource, name)
