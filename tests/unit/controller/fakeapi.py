"""An API server in memory for the fleet's unit tests: initial lists, watch streams the test feeds, and status
patches a test may script (a conflict, a patch that never answers). Enough of `client.KubeClient` for the
fleet's reflectors and writes; everything else is the real fleet."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.cluster import client, writer

from tests.builders import objects

JSON = dict[str, Any]
SUPERPODS = writer.superpod_path()
NODES = "/api/v1/nodes"
DEVICEINFO = "/api/v1/namespaces/kube-system/configmaps"
PARTITIONS = client.resource_path(common.API_VERSION, api_partition.PLURAL)
Patch = Callable[[str, JSON], Awaitable[JSON]]


class FakeApi:
    def __init__(self) -> None:
        self.lists: dict[str, list[JSON]] = collections.defaultdict(list)
        self.streams: dict[str, asyncio.Queue[JSON]] = collections.defaultdict(asyncio.Queue)
        self.objects: dict[str, JSON] = {}  # path of one object -> what a read returns
        self.patches: list[tuple[str, JSON]] = []
        self.events: list[JSON] = []
        self.patch_with: Patch | None = None  # a test's own answer to status patches

    def listed(self, collection: str, obj: JSON) -> None:
        """`obj` is in `collection`'s initial list."""
        self.lists[collection].append(obj)

    def send(self, collection: str, kind: str, obj: JSON) -> None:
        """A watch event on `collection` (ADDED, MODIFIED, DELETED)."""
        self.streams[collection].put_nowait({"type": kind, "object": obj})

    async def get(self, path: str, **params: str) -> JSON:
        return {"items": list(self.lists[path]), "metadata": {"resourceVersion": "1"}}

    async def list(self, path: str, **params: str) -> list[JSON]:
        return list(self.lists[path])

    async def watch(self, path: str, **params: str) -> AsyncIterator[JSON]:
        while True:
            yield await self.streams[path].get()

    async def get_or_none(self, path: str) -> JSON | None:
        return self.objects.get(path)

    async def create(self, path: str, body: JSON) -> JSON:
        self.events.append(body)
        return body

    async def patch(self, path: str, body: JSON, **_: Any) -> JSON:
        self.patches.append((path, body))
        if self.patch_with is not None:
            return await self.patch_with(path, body)
        raise client.ApiError(404, {"reason": "NotFound"})


def cloudmatrix(api: FakeApi, nodes: int = 4, name: str = "sp") -> None:
    """One CloudMatrix 384 SuperPod of `nodes` nodes of 16 dies, with their device-info ConfigMaps, listed."""
    api.listed(
        SUPERPODS, {"metadata": {"name": name, "generation": 1}, "spec": {"profile": "cloudmatrix-384"}}
    )
    for index in range(nodes):
        node = f"n{index}"
        api.listed(NODES, objects.node(node).superpod(0, rack=0, server=index).devices(16).ready().obj())
        api.listed(DEVICEINFO, objects.deviceinfo_configmap(node, server_index=index))


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Yield to the event loop until `check()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s")
        await asyncio.sleep(0.001)
    return value
