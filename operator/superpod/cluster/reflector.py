"""A reflector: keep a local copy of one kind of object in sync with the API (list, then watch).

Like client-go's reflector: list once, then watch from the list's resourceVersion; on a dropped stream resume from
the last seen resourceVersion; on 410 Gone list again. Each change calls `on_change(key, old, new)` (new is None
when deleted). The operator uses it for Nodes and the device plugin's ConfigMaps, which kopf need not serve as
handler resources: the operator only reads them, so no finalizers or progress annotations are wanted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from superpod.cluster import client

JSON = dict[str, Any]
ChangeHandler = Callable[[str, JSON | None, JSON | None], Awaitable[None] | None]

logger = logging.getLogger(__name__)


def object_key(obj: JSON) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else str(metadata["name"])


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
        retry_delay: float = 1.0,
    ) -> None:
        self.api = api
        self.path = path
        self.on_change = on_change
        self.params: dict[str, str] = {}
        if label_selector:
            self.params["labelSelector"] = label_selector
        if field_selector:
            self.params["fieldSelector"] = field_selector
        self.watch_timeout = watch_timeout
        self.retry_delay = retry_delay
        self.objects: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self._resource_version = ""

    async def _emit(self, key: str, old: JSON | None, new: JSON | None) -> None:
        result = self.on_change(key, old, new)
        if result is not None:
            await result

    async def relist(self) -> None:
        """List everything and emit the differences from the local copy."""
        page = await self.api.get(self.path, **self.params)
        items = list(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        while token:
            more = await self.api.get(self.path, **self.params, **{"continue": token})
            items.extend(more.get("items") or [])
            token = (more.get("metadata") or {}).get("continue")
        self._resource_version = str((page.get("metadata") or {}).get("resourceVersion", ""))
        fresh = {object_key(obj): obj for obj in items}
        for key in list(self.objects):
            if key not in fresh:
                await self._emit(key, self.objects.pop(key), None)
        for key, obj in fresh.items():
            old = self.objects.get(key)
            self.objects[key] = obj
            if old is None or old.get("metadata", {}).get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                await self._emit(key, old, obj)
        self.synced.set()

    async def _watch_once(self) -> None:
        params = {
            **self.params,
            "resourceVersion": self._resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        async for event in self.api.watch(self.path, **params):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    self._resource_version = ""
                    return
                raise client.ApiError(int(obj.get("code", 500)), obj)
            self._resource_version = str(
                obj.get("metadata", {}).get("resourceVersion", self._resource_version)
            )
            if kind == "BOOKMARK":
                continue
            key = object_key(obj)
            if kind == "DELETED":
                await self._emit(key, self.objects.pop(key, None), None)
            else:
                old = self.objects.get(key)
                self.objects[key] = obj
                await self._emit(key, old, obj)

    async def run(self) -> None:
        """List, then watch forever; survives dropped streams and expired resourceVersions."""
        while True:
            try:
                if not self._resource_version:
                    await self.relist()
                await self._watch_once()
            except asyncio.CancelledError:
                raise
            except client.ApiError as error:
                if error.status == 410:
                    self._resource_version = ""
                    continue
                logger.warning("watch of %s failed: %s; retrying", self.path, error)
                await asyncio.sleep(self.retry_delay)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                logger.warning("watch of %s broke: %s; resuming", self.path, error)
                await asyncio.sleep(self.retry_delay)
