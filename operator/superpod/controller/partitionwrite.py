"""Writing a partition's status: guarded by its resourceVersion, recomputed on a conflict, one at a time per key.

Slot bindings are written by the admission webhook on every replica, so the operator's own status writes carry
the resourceVersion their status was computed from: on a 409 the partition is read again and the status
recomputed from the fresh copy (`compute(current status)`), never written over a binding it did not see.
`KeyedLocks` gives one partition's placements, refreshes and writes their order. `add_finalizer` and
`remove_finalizer` edit the partition's finalizers the same guarded way (the in-use protection's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

from superpod.api import common
from superpod.cluster import client, writer
from superpod.controller import clustermirror
from superpod.controller import status as derive

JSON = common.JSON
ATTEMPTS = 8


class StatusWriter:
    """Status writes of partitions, through one client; what was written goes to the mirror."""

    def __init__(
        self,
        api: client.KubeClient,
        mirror: clustermirror.ClusterMirror,
        clock: Callable[[], str] = writer.now,
    ) -> None:
        self.api = api
        self.writer = writer.Writer(api)
        self.mirror = mirror
        self.clock = clock

    async def write(
        self, obj: JSON, compute: Callable[[JSON | None, str], JSON], attempts: int = ATTEMPTS
    ) -> JSON:
        """Write the status `compute(current status, now)` if it differs, guarded by resourceVersion.

        On a 409 (someone, e.g. an admission webhook binding a pod, wrote in between) read the object again
        and recompute. Returns the status now in effect; {} when the partition is gone (or was replaced by a
        new one of the same name). A status that turns the partition Pending or Failed, or changes its reason
        there, posts a Warning Event with that reason.
        """
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        uid = obj["metadata"].get("uid")
        current = obj
        for _ in range(attempts):
            previous = current.get("status") or {}
            desired = compute(previous, self.clock())
            if not derive.changed(previous, desired):
                return desired
            try:
                written = await self.writer.partition_status(
                    namespace, name, desired, resource_version=current["metadata"].get("resourceVersion")
                )
            except client.ApiError as error:
                if error.status != 409:
                    raise
                fresh = await self.api.get_or_none(writer.partition_path(namespace, name))
                if fresh is None or (uid and fresh["metadata"].get("uid") != uid):
                    return {}  # gone, or another partition of the same name: not ours to write
                current = fresh
                continue
            if written is None:
                return {}
            self.mirror.remember(written)
            if derive.unplaced(desired) and previous.get("reason") != desired.get("reason"):
                await self.writer.event(
                    written, reason=desired["reason"], message=desired["message"], warning=True
                )
            return dict(written.get("status") or {})
        raise RuntimeError(f"status of {namespace}/{name} kept changing; giving up after {attempts} attempts")


async def add_finalizer(api: client.KubeClient, obj: JSON, finalizer: str) -> JSON | None:
    """Add `finalizer` to the partition (kept beside the others); the object written, None when it is gone or
    being deleted (kube takes no new finalizer then)."""
    return await _edit_finalizers(api, obj, finalizer, add=True)


async def remove_finalizer(api: client.KubeClient, obj: JSON, finalizer: str, *also: str) -> JSON | None:
    """Remove `finalizer` (and the finalizers `also`, where present) from the partition; the object written, None
    when it is gone (or never had `finalizer`)."""
    return await _edit_finalizers(api, obj, finalizer, add=False, also=also)


async def _edit_finalizers(
    api: client.KubeClient, obj: JSON, finalizer: str, *, add: bool, also: tuple[str, ...] = ()
) -> JSON | None:
    """A merge patch of the whole finalizer list, guarded by the resourceVersion it was computed from (others
    add and remove theirs: kopf, a foreground deletion); on a 409 the partition is read again."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    uid = obj["metadata"].get("uid")
    path = writer.partition_path(namespace, name)
    current: JSON | None = obj
    for _ in range(ATTEMPTS):
        if current is None or (uid and current["metadata"].get("uid") != uid):
            return None
        metadata = current["metadata"]
        finalizers = list(metadata.get("finalizers") or [])
        if (finalizer in finalizers) == add or (add and metadata.get("deletionTimestamp")):
            return None
        gone = {finalizer, *also}
        finalizers = [*finalizers, finalizer] if add else [f for f in finalizers if f not in gone]
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}}
        try:
            return await api.patch(path, body)
        except client.ApiError as error:
            if error.status == 404:
                return None
            if error.status != 409:
                raise
        current = await api.get_or_none(path)
    raise RuntimeError(f"finalizers of {namespace}/{name} kept changing; giving up after {ATTEMPTS} attempts")


@dataclasses.dataclass
class _Entry:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


class KeyedLocks:
    """One lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether someone holds or waits for `key`'s lock."""
        return key in self._entries

    def keys(self) -> list[str]:
        """The keys someone holds or waits for."""
        return list(self._entries)
