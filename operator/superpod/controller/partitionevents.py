"""Partitions reach the operator through the fleet's own mirror, not through kopf's handlers.

Every replica mirrors every partition (`clustermirror`): it needs them for admission and for the books of every
SuperPod, so each watch event is decoded once anyway. What a partition event asks of the operator is done here,
by the replica that owns the partition's SuperPod, and nothing at all is done (no task, no copy, no API call)
by the others. kopf is kept for what it does well (the SuperPod daemons, the webhook server, startup and
cleanup, probes); with Leases or a single replica it does not watch partitions at all, which took four fifths of
a replica's CPU for the partitions of SuperPods it does not own (docs/performance.md). With kopf peering (one
active replica, the others paused by kopf) the partitions stay with kopf's handlers (`handlers`), which call
`place` below, since kopf alone knows which replica it has paused.

- **Create.** A partition with no `status.phase` (never handled) on a SuperPod this replica owns is placed at
  once (`Fleet.place`: the in-use finalizer first, then the placement or its Pending reason), in a task of its
  own; a failed try is tried again after `backoff` seconds while the partition is still unhandled and owned.
  A partition naming no existing SuperPod is answered `SuperPodNotFound` by the owner of that name.
- **Takeover, start.** The owner's SuperPod daemon places what its queue holds (every replica queues every
  unplaced partition: `restore.Restorer.adopt`; a replica taking a SuperPod rebuilds it from a fresh list:
  `Fleet.reload`). Every `recheck` seconds a sweep looks for unhandled partitions and for deleted ones of a
  missing SuperPod that this replica owns now (a name whose owner died moves without any event).
- **Delete.** The in-use protection (`inuse`) finalizes a deleted partition: the bindings loop of its SuperPod
  on the owner does it while the SuperPod exists; while it is missing, the owner of its name does it here,
  every `recheck` seconds (or sooner when asked) until the partition is gone. A partition without the in-use
  finalizer that still carries kopf's old one (`superpod.dev/release-devices`, from an operator that let kopf
  handle partitions) has its devices released and that finalizer removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from superpod.api import common, views
from superpod.controller import fleet as fleet_module
from superpod.controller import inuse, partitionwrite, shards
from superpod.metrics import instruments

JSON = common.JSON
BACKOFF = 2.0  # seconds before a failed placement of a new partition is tried again
RECHECK = 5.0  # seconds between two sweeps (and two looks at a deleted partition of a missing SuperPod)
logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def reconciling(resource: str) -> AsyncIterator[None]:
    """Time one reconcile for /metrics and count it as an error when it raises."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        instruments.count_reconcile_error(resource)
        raise
    finally:
        instruments.observe_reconcile(resource, time.perf_counter() - started)


async def place(fleet: fleet_module.Fleet, owner: shards.Ownership, obj: JSON) -> None:
    """Place a partition if this replica owns its SuperPod; a write refused by the fence is dropped (the new
    owner places it); any other failure raises."""
    superpod = views.Partition(obj).superpod
    if not owner.owns(superpod):
        return
    with owner.writing(superpod), contextlib.suppress(shards.Fenced):
        async with reconciling("partition"):
            await fleet.place(obj)


class PartitionEvents:
    """The owner's work on partition events, fed by the fleet's mirror (`Fleet.partition_listeners`)."""

    def __init__(
        self,
        fleet: fleet_module.Fleet,
        owner: shards.Ownership,
        *,
        backoff: float = BACKOFF,
        recheck: float = RECHECK,
    ) -> None:
        self.fleet = fleet
        self.owner = owner
        self.backoff = backoff
        self.recheck = recheck
        self._work: dict[str, asyncio.Task[None]] = {}  # partition key -> its placement or finalization
        self._sweeper: asyncio.Task[None] | None = None
        fleet.partition_listeners.append(self.changed)

    async def start(self) -> None:
        """Sweep now (after the fleet's first lists) and every `recheck` seconds."""
        self._sweeper = asyncio.create_task(self._sweeping(), name="partition sweep")

    async def stop(self) -> None:
        tasks = [*self._work.values(), *([self._sweeper] if self._sweeper is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._work.clear()

    # ---- events ------------------------------------------------------------------------------------------

    def changed(self, key: str, obj: JSON | None) -> None:
        """The mirror saw the partition change: start its owner's work on it (nothing on other replicas)."""
        if obj is None or key in self._work or not self.fleet.mirror.synced.is_set():
            return
        work = self._needed(key, obj)
        if work is not None:
            self._start(key, work)

    def _needed(self, key: str, obj: JSON) -> Coroutine[Any, Any, None] | None:
        """What this replica is to do for the partition now, if anything (cheapest tests first)."""
        view = views.Partition(obj)
        if view.deleting:
            orphaned = view.superpod not in self.fleet.superpods
            legacy = not view.protected and inuse.HANDLER_FINALIZER in (view.metadata.get("finalizers") or ())
            if ((orphaned and view.protected) or legacy) and self.owner.owns(view.superpod):
                return self._finalize(key, view.uid)
            return None
        if view.handled or not self.owner.owns(view.superpod):
            return None
        return self._place(key, view.uid)

    def _start(self, key: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"partition {key}")
        self._work[key] = task
        task.add_done_callback(
            lambda done: self._work.pop(key, None) if self._work.get(key) is done else None
        )

    async def _sweeping(self) -> None:
        while True:
            partitions = self.fleet.partitions
            for key in list(partitions.unsettled):  # the others have no work (`PartitionMap.unsettled`)
                obj = partitions.get(key)
                if obj is None or key in self._work:
                    continue
                work = self._needed(key, obj)
                if work is not None:
                    self._start(key, work)
            await asyncio.sleep(self.recheck)

    # ---- the work --------------------------------------------------------------------------------------

    def _current(self, key: str, uid: str | None) -> views.Partition | None:
        obj = self.fleet.partitions.get(key)
        if obj is None or views.Partition(obj).uid != uid:
            return None  # gone, or another partition under the same name (its own events start its work)
        return views.Partition(obj)

    async def _place(self, key: str, uid: str | None) -> None:
        """Place the new partition; try again after a failure while it is unhandled and owned."""
        while (view := self._current(key, uid)) is not None and not view.handled and not view.deleting:
            if not self.owner.owns(view.superpod):
                return
            try:
                await place(self.fleet, self.owner, view.obj)
                return
            except Exception as error:  # an API error or a bug: tried again, as kopf retried its handler
                logger.warning("partition %s: %s; trying it again in %.0f s", key, error, self.backoff)
            await asyncio.sleep(self.backoff)

    async def _finalize(self, key: str, uid: str | None) -> None:
        """A deleted partition of a missing SuperPod (or one with kopf's old finalizer): finalize it here."""
        while (view := self._current(key, uid)) is not None and self.owner.owns(view.superpod):
            delay: float | None = self.recheck
            try:
                with self.owner.writing(view.superpod):
                    async with reconciling("partition"):
                        if view.protected and view.superpod in self.fleet.superpods:
                            return  # its SuperPod is back: its bindings loop finalizes it
                        if view.protected:
                            delay = await self.fleet.deleted(view.obj)
                        else:
                            await self.fleet.release(view.obj)
                            written = await partitionwrite.remove_finalizer(
                                self.fleet.api, view.obj, inuse.HANDLER_FINALIZER
                            )
                            if written is not None:
                                self.fleet.mirror.remember(written)
                            return
            except shards.Fenced:
                return  # the new owner's sweep takes it
            except Exception as error:
                logger.warning("partition %s: %s; trying it again in %.0f s", key, error, self.recheck)
            # no loop follows its pods: looked at again every `recheck` seconds at most
            await asyncio.sleep(min(delay if delay is not None else self.recheck, self.recheck))
