"""WATCH over HTTP: a chunked stream of `{"type": ..., "object": ...}` lines, as kube-apiserver sends.

Without a resourceVersion (or with "0") the stream starts with an ADDED event per existing object; with one,
it replays the resource's history after it, or sends a single ERROR event holding a 410 Expired Status when
that history is gone. Bookmarks (allowWatchBookmarks=true) carry the current resourceVersion every
`bookmark_interval` seconds while the stream is idle and at its end; `sendInitialEvents=true` ends the initial
events with a bookmark annotated `k8s.io/initial-events-end`. The stream ends after timeoutSeconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from superpod_sandbox import codec
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.listwatch import listing, selectorparser
from superpod_sandbox.apiserver.registry import semantics
from superpod_sandbox.apiserver.registry.semantics import State, Target

Object = dict[str, Any]
DEFAULT_TIMEOUT = 1800.0
_LIVENESS = 30.0  # aiohttp cancels the handler when a client goes; this only catches silent peers
_CHUNK_BYTES = 256 * 1024  # events written at once at most (about): queued ones, or the initial ones


def _line(event_type: str, obj: Object) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + encoded(obj) + b"}\n"


# Stored objects never change, so one encoding serves every watcher of an event and the answer to the write
# that made it (`routes.respond(..., stored=True)`). Entries keep their object alive, so an id() is never
# reused while cached.
_CACHE_SIZE = 1024
_cache: dict[int, tuple[Object, bytes]] = {}


def encoded(obj: Object) -> bytes:
    hit = _cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    encoded = codec.dumps(obj)
    if len(_cache) >= _CACHE_SIZE:
        del _cache[next(iter(_cache))]
    _cache[id(obj)] = (obj, encoded)
    return encoded


async def _write_together(response: web.StreamResponse, lines: Iterable[bytes]) -> None:
    """Write `lines` in as few writes as `_CHUNK_BYTES` allows."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= _CHUNK_BYTES:
            await response.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        await response.write(b"".join(batch))


async def serve(
    request: web.Request,
    api: State,
    target: Target,
    bookmark_interval: float,
    name_selector: str | None = None,
) -> web.StreamResponse:
    query = request.query
    resource = target.resource
    predicate = selectorparser.both(
        selectorparser.labels(query.get("labelSelector")),
        selectorparser.fields(query.get("fieldSelector"), resource.key),
        selectorparser.fields(name_selector, resource.key),
    )
    bookmarks = query.get("allowWatchBookmarks") == "true"
    initial_end = query.get("sendInitialEvents") == "true"
    try:
        timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    except ValueError:
        raise errors.bad_request("timeoutSeconds must be a number") from None
    as_table = listing.wants_table(request.headers.get("Accept", ""))
    include_object = query.get("includeObject", "Metadata")
    version = query.get("resourceVersion", "")
    namespace = target.namespace or None
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )
    try:
        since = int(version) if version not in ("", "0") else None
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {version}") from None
    initial: list[Object] = []
    try:
        if since is None:
            initial = listing.candidates(api.store, resource, target.namespace, query.get("labelSelector"))
            if predicate is not None:
                initial = [o for o in initial if predicate(o)]
        watcher = api.store.hub.subscribe(
            resource.storage_key,
            since,
            namespace,
            predicate,
            selectorparser.label_values(query.get("labelSelector")),
        )
    except errors.ApiError as failure:
        await response.prepare(request)
        await response.write(_line("ERROR", failure.status))
        await response.write_eof()
        return response

    def shown(obj: Object) -> Object:
        obj = semantics.present(obj, target.version, resource)
        if as_table:
            return listing.table(
                resource,
                target.version,
                [obj],
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                include_object,
            )
        return obj

    def bookmark(extra: Object | None = None) -> bytes:
        meta: Object = {"resourceVersion": str(api.store.resource_version)}
        if extra:
            meta["annotations"] = extra
        return _line(
            "BOOKMARK",
            {"kind": resource.kind, "apiVersion": resource.api_version(target.version), "metadata": meta},
        )

    try:
        await response.prepare(request)
        await _write_together(response, (_line("ADDED", shown(obj)) for obj in initial))
        if initial_end and bookmarks:
            await response.write(bookmark({"k8s.io/initial-events-end": "true"}))
        deadline = time.monotonic() + timeout
        last_write = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Wake now and then to notice a peer that vanished silently (no write would fail otherwise).
            wait = min(remaining, bookmark_interval, _LIVENESS) if bookmarks else min(remaining, _LIVENESS)
            try:
                if watcher.queue.empty():
                    async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                        event_type, obj = await watcher.queue.get()
                else:
                    event_type, obj = watcher.queue.get_nowait()
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    break
                if bookmarks and time.monotonic() - last_write >= bookmark_interval:
                    await response.write(bookmark())
                    last_write = time.monotonic()
                continue
            last_write = time.monotonic()
            # what is queued behind it goes in the same write, as kube's watch server flushes only once no more
            # events wait (one write per event cost a watcher of a busy resource a syscall each)
            waiting = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
            lines = [_line(event_type, shown(obj)), *(_line(kind, shown(queued)) for kind, queued in waiting)]
            await _write_together(response, lines)
        if bookmarks:
            await response.write(bookmark())
        await response.write_eof()
    except ConnectionResetError:
        pass
    finally:
        api.store.hub.unsubscribe(resource.storage_key, watcher)
    return response
