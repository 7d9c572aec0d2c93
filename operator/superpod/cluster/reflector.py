"""A reflector: keep a local copy of one kind of object in sync with the API (list, then watch).

Like client-go's reflector: list once, then watch from the list's resourceVersion; on a dropped stream resume from
the last seen resourceVersion; on 410 Gone list again. Each change calls `on_change(key, old, new)` (new is None
when deleted). The operator uses it for Nodes and the device plugin's ConfigMaps, which kopf need not serve as
handler resources: the operator only reads them, so no finalizers or progress annotations are wanted.

With `quiet_unchanged`, an object whose kept form (after `transform`) is the copy held but for its
resourceVersion is not told: a Node's status report that moves only heartbeat times, a device-info ConfigMap's
refresh that moves only its UpdateTime (the transforms drop both). Every replica is sent every one of them (at 64
Atlas 950 SuperPoDs about 440 a second), and nothing downstream has anything to do with them. The copy held
takes the new resourceVersion in place, so every holder of it (the operator's maps keep the reflector's objects,
not copies) sees the current one, and a write guarded by it is not refused for a version long gone.

A mirror that stops following the API is never silent: whatever ends a watch (a broken stream, an error answer,
an event that cannot be read, a bug in a handler) is logged and the watch starts again after a backoff (0.5 s
doubling to 30 s, jittered), and `restart_observers` are told (the operator counts
`superpod_watch_restarts_total`). `out_of_sync` names the mirrors that have not followed the API for longer than
a bound, for the operator's `/healthz`: a mirror counts as following again once a list succeeded, an event was
handled, or a new watch stayed open for `SETTLE` seconds (a watch that dies on the same event at every try
never does).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from superpod.cluster import client

JSON = dict[str, Any]
ChangeHandler = Callable[[str, JSON | None, JSON | None], Awaitable[None] | None]
Transform = Callable[[JSON], JSON]
"""What of an object to keep (client-go's SetTransform): applied to every object listed or watched before it is
kept and told; what it returns must keep `metadata.name`, `metadata.namespace` and `metadata.resourceVersion`."""
RestartObserver = Callable[[str, int], None]
"""Told `(resource, n)`: n = 0 when a mirror starts (so a counter shows it at zero), 1 at each restart."""

RETRY_FIRST = 0.5  # seconds before a failed watch starts again; doubled after each failure in a row
RETRY_MOST = 30.0
SETTLE = 1.0  # seconds a new watch must stay open to count as following the API
PAGE_SIZE = 500
"""Objects per page of a list, as client-go's reflector asks: 65,536 Nodes come in 132 answers that each fit
in a request's timeout, not one of 200 MB."""

logger = logging.getLogger(__name__)

restart_observers: set[RestartObserver] = set()
"""Told of every mirror that starts and every restart after an error (the operator adds its metric here)."""
_running: weakref.WeakSet[Reflector] = weakref.WeakSet()


def object_key(obj: JSON) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])


def resource_of(path: str) -> str:
    """What a collection URL lists, as a label: `nodes`, or `<namespace>/<plural>` for a namespaced one."""
    parts = [part for part in path.split("/") if part]
    if "namespaces" in parts[:-1]:
        at = parts.index("namespaces")
        if at + 2 < len(parts):
            return f"{parts[at + 1]}/{parts[-1]}"
    return parts[-1] if parts else path


def out_of_sync(longer_than: float, now: float | None = None) -> list[tuple[str, float]]:
    """(resource, seconds) of each running mirror that has not followed the API for more than `longer_than`."""
    moment = time.monotonic() if now is None else now
    lagging = [(mirror.resource, mirror.unsynced_for(moment)) for mirror in list(_running)]
    return sorted((resource, seconds) for resource, seconds in lagging if seconds > longer_than)


class Reflector:
    """Mirror of the objects at `path` (a collection URL) matching the optional selectors."""

    def __init__(
        self,
        api: client.KubeClient,
        path: str,
        on_change: ChangeHandler,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        watch_timeout: int = 300,
        retry_delay: float = RETRY_FIRST,
        retry_most: float = RETRY_MOST,
        settle: float = SETTLE,
        resource: str | None = None,
        page_size: int = PAGE_SIZE,
        transform: Transform | None = None,
        quiet_unchanged: bool = False,
    ) -> None:
        self.api = api
        self.transform = transform
        self.quiet_unchanged = quiet_unchanged
        self.page_size = page_size
        self.path = path
        self.resource = resource or resource_of(path)
        self.on_change = on_change
        self.params: dict[str, str] = {}
        if label_selector:
            self.params["labelSelector"] = label_selector
        if field_selector:
            self.params["fieldSelector"] = field_selector
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.retry_most = retry_most
        self.settle = settle
        self.objects: dict[str, JSON] = {}
        self.synced = asyncio.Event()  # set by the first complete list
        self.restarts = 0  # watches started again after an error
        self._resource_version = ""
        self._failing_since: float | None = None  # monotonic; None while the mirror follows the API
        self._opened_at: float | None = None  # when the current watch was accepted

    def unsynced_for(self, now: float) -> float:
        """Seconds since this mirror stopped following the API; 0 while it follows it."""
        if self._failing_since is None:
            return 0.0
        if self._opened_at is not None and now - self._opened_at >= self.settle:
            self._failing_since = None
            return 0.0
        return now - self._failing_since

    def _following(self) -> None:
        self._failing_since = None

    async def _emit(self, key: str, old: JSON | None, new: JSON | None) -> None:
        result = self.on_change(key, old, new)
        if result is not None:
            await result

    async def relist(self) -> None:
        """List everything and emit the differences from the local copy."""
        limit = {"limit": str(self.page_size)} if self.page_size else {}
        page = await self.api.get(self.path, **self.params, **limit)
        self._resource_version = str((page.get("metadata") or {}).get("resourceVersion", ""))
        fresh: dict[str, JSON] = {}
        while True:
            # each page is reduced as it comes: the whole list is never held as the API serves it
            for obj in page.get("items") or []:
                kept = self.transform(obj) if self.transform is not None else obj
                fresh[object_key(kept)] = kept
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            page = await self.api.get(self.path, **self.params, **limit, **{"continue": token})
        for key in list(self.objects):
            if key not in fresh:
                await self._emit(key, self.objects.pop(key), None)
        for key, obj in fresh.items():
            old = self.objects.get(key)
            if old is not None and old.get("metadata", {}).get("resourceVersion") == obj["metadata"].get(
                "resourceVersion"
            ):
                self.objects[key] = obj
            elif not self._unchanged(old, obj):
                self.objects[key] = obj
                await self._emit(key, old, obj)
        self._following()
        self.synced.set()

    def _unchanged(self, old: JSON | None, new: JSON) -> bool:
        """With `quiet_unchanged`: whether `new` is `old` but for its resourceVersion; if so `old`, which stays
        the copy held, takes that resourceVersion."""
        if old is None or not self.quiet_unchanged:
            return False
        held, metadata = old.get("metadata"), new.get("metadata")
        if held is None or metadata is None:
            return False
        version = metadata.get("resourceVersion")
        metadata["resourceVersion"] = held.get("resourceVersion")  # `new` is this reflector's own object
        same = new == old
        metadata["resourceVersion"] = version
        if same:
            held["resourceVersion"] = version
        return same

    def _opened(self) -> None:
        self._opened_at = time.monotonic()

    async def _watch_once(self) -> None:
        params = {
            **self.params,
            "resourceVersion": self._resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        async for event in self.api.watch(self.path, opened=self._opened, **params):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    self._expired()
                    return
                raise client.ApiError(int(obj.get("code", 500)), obj)
            self._resource_version = str(
                obj.get("metadata", {}).get("resourceVersion", self._resource_version)
            )
            if kind == "BOOKMARK":
                self._following()
                continue
            if self.transform is not None:
                obj = self.transform(obj)
            key = object_key(obj)
            if kind == "DELETED":
                await self._emit(key, self.objects.pop(key, None), None)
            else:
                old = self.objects.get(key)
                if not self._unchanged(old, obj):
                    self.objects[key] = obj
                    await self._emit(key, old, obj)
            self._following()
        self._following()  # the server ended the stream at its timeout

    async def run(self) -> None:
        """List, then watch forever; survives dropped streams, expired resourceVersions and any other error."""
        _running.add(self)
        for observer in list(restart_observers):
            observer(self.resource, 0)
        delay = self.retry_delay
        try:
            while True:
                try:
                    if not self._resource_version:
                        await self.relist()
                    await self._watch_once()
                    delay = self.retry_delay
                except asyncio.CancelledError:
                    raise
                except client.ApiError as error:
                    if error.status == 410:
                        self._expired()
                        continue
                    delay = await self._restart(f"failed: {error}", delay)
                except Exception as error:  # a mirror that stops following is never silent
                    delay = await self._restart(_describe(error), delay, unexpected=_unexpected(error))
                finally:
                    self._opened_at = None
        finally:
            _running.discard(self)

    def _expired(self) -> None:
        """The API no longer holds events from our resourceVersion (410 Gone): list again. Logged, as it costs
        the API server a whole list: a watch that expires again and again means its history is too short for
        how long a list takes."""
        logger.info(
            "watch of %s expired at resourceVersion %s; listing %d objects again",
            self.resource,
            self._resource_version,
            len(self.objects),
        )
        self._resource_version = ""

    async def _restart(self, what: str, delay: float, *, unexpected: bool = False) -> float:
        """Log the failure, count it, wait `delay` (jittered); returns the next delay."""
        now = time.monotonic()
        self.unsynced_for(now)  # a watch that had settled followed the API until now
        if self._failing_since is None:
            self._failing_since = now
        self.restarts += 1
        for observer in list(restart_observers):
            observer(self.resource, 1)
        wait = delay * (0.5 + random.random() / 2)
        logger.warning(
            "watch of %s %s; starting it again in %.1f s", self.resource, what, wait, exc_info=unexpected
        )
        await asyncio.sleep(wait)
        return min(delay * 2, self.retry_most)


def _unexpected(error: Exception) -> bool:
    """A bug rather than a broken stream or an unreadable event: worth a traceback in the log."""
    return not isinstance(error, aiohttp.ClientError | OSError | TimeoutError | ValueError)


def _describe(error: Exception) -> str:
    return f"broke: {type(error).__name__}: {error}".rstrip(": ")
