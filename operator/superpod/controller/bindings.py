"""Following the pods bound to partitions: free their slots when they finish or go, keep rank tables current.

Every replica mirrors the pods labelled `superpod.dev/partition` (a reflector, so a replica that becomes active
already knows them) and hears of partition changes from the fleet's mirror. The active replica runs one loop
per SuperPod (`follow`, inside the SuperPod's kopf daemon, which kopf stops on standby replicas) that
`reconcile`s a placed partition whenever one of its pods or the partition itself changes, when a check it
waits for is due, and every `IDLE_RECHECK` seconds. One loop per SuperPod rather than one kopf daemon per
partition: a daemon per partition costs kopf a finalizer write and its own processing of every partition event,
and a task and its state per partition in memory.

Which pods still hold a partition's slots is `partitionpods`' (the mirror of partition pods): a slot of a pod
that finished or is confirmed gone is released (Allocated again when the partition was Bound), a running pod
that a slot no longer names is recorded again, and the rank table ConfigMap is written when its text changes
(`ranktables`). A deleted partition is finalized once no pod holds it (`inuse`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from superpod.api import common, views
from superpod.cluster import client
from superpod.controller import binder as binder_module
from superpod.controller import eviction, inuse, kopfkit, partitionpods, podrequest, ranktables, slotclaims
from superpod.controller import fleet as fleet_module

JSON = common.JSON
IDLE_RECHECK = 10.0  # seconds: every placed partition is looked at again even without a change
CONCURRENCY = 8  # partitions of one SuperPod reconciled at a time (each is mostly API round trips)
RETRY_SECONDS = 1.0  # after a failed API call
logger = logging.getLogger(__name__)


class Bindings:
    """The reconciliation of every partition's slots and rank table with its pods (`pods`)."""

    def __init__(
        self,
        api: client.KubeClient,
        fleet: fleet_module.Fleet,
        binder: binder_module.Binder,
        *,
        namespace: str | None = None,
        grace: float = partitionpods.GRACE_SECONDS,
    ) -> None:
        self.api = api
        self.fleet = fleet
        self.binder = binder
        self.tables = ranktables.RankTables(api)
        self.evictions = eviction.Evictions(api)
        self.in_use = inuse.InUse(fleet, self.tables, self.evictions)
        self.pods = partitionpods.PartitionPods(api, self.touch, namespace=namespace, grace=grace)
        self._wakes: dict[str, asyncio.Event] = {}  # SuperPod -> wakes its loop
        self._dirty: dict[str, set[str]] = {}  # SuperPod -> partition keys to reconcile now
        self._due: dict[str, dict[str, float]] = {}  # SuperPod -> partition key -> when to look again
        # partition key -> what its last complete reconcile read (versions of it and its pods, the profile):
        # the periodic look and repeated pokes cost nothing while they stay the same
        self._settled: dict[str, tuple[Any, ...]] = {}

    async def start(self) -> None:
        await self.pods.start()

    async def stop(self) -> None:
        await self.pods.stop()

    def wake(self, superpod: str) -> asyncio.Event:
        return self._wakes.setdefault(superpod, asyncio.Event())

    def touch(self, key: str) -> None:
        """Have the partition reconciled soon (by its SuperPod's loop, when this replica is active)."""
        obj = self.fleet.partitions.get(key)
        if obj is None:  # unknown here (yet): its arrival in the fleet's mirror touches it
            return
        superpod = views.Partition(obj).superpod
        self._dirty.setdefault(superpod, set()).add(key)
        self.wake(superpod).set()

    def partition_changed(self, key: str, obj: JSON | None) -> None:
        """The fleet's mirror saw the partition change (None: it is gone)."""
        if obj is None:
            self.forget(key)
        elif (obj.get("status") or {}).get("allocation") or views.Partition(obj).deleting:
            self.touch(key)  # a moved slot rewrites the rank table at once; a deletion waits for the pods

    def forget(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        for keys in self._dirty.values():
            keys.discard(key)
        for due in self._due.values():
            due.pop(key, None)
        self._settled.pop(key, None)
        self.evictions.forget(key)
        self.binder.forget(namespace, name)
        self.tables.forget(namespace, name)
        self.pods.forget(key)

    async def follow(self, superpod: str, stopped: kopf.DaemonStopped) -> None:
        """Reconcile the SuperPod's partitions as they change, until `stopped` (the SuperPod's daemon ends)."""
        wake = self.wake(superpod)
        due = self._due.setdefault(superpod, {})
        swept = -IDLE_RECHECK
        async with kopfkit.Sleeper(stopped) as sleeper:
            while not stopped:
                wake.clear()
                now = time.monotonic()
                if now - swept >= IDLE_RECHECK:  # also the first pass: a replica that just became active
                    swept = now
                    # the SuperPod's placed (or deleting) partitions, as the mirror's map indexes them
                    self._dirty.setdefault(superpod, set()).update(self.fleet.partitions.held(superpod))
                keys = self._dirty.pop(superpod, set())
                keys.update(key for key, when in due.items() if when <= now)
                for key in keys:
                    due.pop(key, None)
                await self._reconcile_all(superpod, sorted(keys))
                if self._dirty.get(superpod):
                    continue
                now = time.monotonic()
                timeout = min([swept + IDLE_RECHECK, *due.values()]) - now
                if timeout > 0:
                    await sleeper.until_poked(wake, timeout)

    async def _reconcile_all(self, superpod: str, keys: list[str]) -> None:
        """Reconcile `keys`, `CONCURRENCY` at a time; schedule each one's next look.

        `CONCURRENCY` workers take the keys in turn: a task per key cost the 10 s sweep of every placed
        partition (2,000 held: 2,000 tasks, nearly all for a partition already in line) more than its
        reconciles."""
        due = self._due.setdefault(superpod, {})
        queued = iter(keys)

        async def worker() -> None:
            for key in queued:
                try:
                    delay = await self.reconcile(key)
                except (client.ApiError, OSError, TimeoutError) as error:
                    logger.warning("partition %s: %s; retrying", key, error)
                    delay = RETRY_SECONDS
                except Exception:  # a bug: keep the loop (every other partition) going, retry this one
                    logger.exception("partition %s: reconcile failed; retrying", key)
                    delay = RETRY_SECONDS
                if delay == 0.0:
                    self._dirty.setdefault(superpod, set()).add(key)
                elif delay is not None and key in self.fleet.partitions:
                    due[key] = time.monotonic() + delay

        workers = min(CONCURRENCY, len(keys))
        if workers == 1:
            await worker()  # the common case (a placement, its status echoed): no task to make
        else:
            await asyncio.gather(*(worker() for _ in range(workers)))

    async def reconcile(self, key: str) -> float | None:
        """Bring the partition's slots and rank table in line with its pods; returns when to look again."""
        namespace, _, name = key.partition("/")
        obj = views.newest(self.binder.known(namespace, name), self.fleet.partitions.get(key))
        if obj is None or not self.pods.synced:
            return None
        if views.Partition(obj).deleting:
            if not views.Partition(obj).protected:
                return None  # not the operator's to finalize (it goes when its other finalizers do)
            holders, next_check = await self.pods.holders(key, obj)
            retry = await self.in_use.reconcile(obj, holders)
            return min((t for t in (retry, next_check) if t is not None), default=None)
        if not views.Partition(obj).protected and views.Partition(obj).placed:
            # placed by an operator before the in-use protection: protected from now on
            obj = await self.fleet.reconciler.protect(obj)
        state = self.fleet.superpods.get(views.Partition(obj).superpod)
        profile = state.profile if state is not None else None
        inputs = _inputs(obj, self.pods.of(key), profile.name if profile is not None else "")
        if self._settled.get(key) == inputs:
            return None  # nothing it depends on changed since it was last brought in line
        allocation = (obj.get("status") or {}).get("allocation") or []
        release, next_check = await self.pods.released(key, allocation)
        if release:
            logger.info("partition %s: releasing the slots of pods %s", key, ", ".join(sorted(release)))
            await self.binder.release(namespace, name, release)
            self.pods.forget(key, release)
            return 0.0  # look again at the written status
        if profile is None or not allocation:
            return next_check
        unrecorded = self.pods.unrecorded(key, allocation, profile.resource_name)
        for pod, index in unrecorded:
            request = podrequest.PodRequest(
                pod, None, podrequest.PodIndex(index, "the devices it was bound to")
            )
            result = await self.binder.claim(namespace, name, request, resource=profile.resource_name)
            if isinstance(result.decision, slotclaims.Denied):
                logger.warning("partition %s: pod %s runs unrecorded: %s", key, pod, result.decision.message)
            else:
                logger.info("partition %s: pod %s recorded again in slot %d", key, pod, index)
        if unrecorded:
            return 0.0
        await self.tables.sync(obj, profile.name, self.pods.of(key))
        retry = self.tables.retry_in(namespace, name)  # a write refused: not settled, tried again later
        if retry is not None:
            next_check = retry if next_check is None else min(next_check, retry)
        if next_check is None:
            self._settled[key] = inputs
        return next_check

    async def deleted(self, obj: JSON) -> float | None:
        """kopf saw the partition's deletion: its SuperPod's loop finalizes it; with no SuperPod (no loop), it
        is done here. Returns when to look again (None: nothing to wait for here)."""
        view = views.Partition(obj)
        if view.superpod in self.fleet.superpods:
            self.touch(view.key)
            return None
        if not self.pods.synced:
            return RETRY_SECONDS
        return await self.reconcile(view.key)


def _inputs(partition: JSON, pods: dict[str, JSON], profile: str) -> tuple[Any, ...]:
    """What a reconcile reads: the partition's and its pods' resourceVersions, and the SuperPod's profile."""
    versions = tuple(sorted((name, pod["metadata"].get("resourceVersion")) for name, pod in pods.items()))
    return (partition["metadata"].get("uid"), partition["metadata"].get("resourceVersion"), versions, profile)
