"""Following the pods bound to partitions: free their slots when they finish or go, keep rank tables current.

Every replica mirrors the pods labelled `superpod.dev/partition` (a reflector, so a replica that becomes active
already knows them) and hears of partition changes from the fleet's mirror. The active replica runs one loop
per SuperPod (`follow`, inside the SuperPod's kopf daemon, which kopf stops on standby replicas) that
`reconcile`s a placed partition whenever one of its pods or the partition itself changes, when a check it
waits for is due, and every `IDLE_RECHECK` seconds. One loop per SuperPod rather than one kopf daemon per
partition: a daemon per partition costs kopf a finalizer write and its own processing of every partition event,
and a task and its state per partition in memory.

A slot follows its pod's existence and phase, never only its label (a watch by label sees a pod whose label
was removed as deleted, though it still runs on the slot's devices):

- a slot whose pod Succeeded or Failed, or whose deletion the mirror saw (a pod with a deletionTimestamp), is
  released (Allocated again when the partition was Bound);
- a slot whose pod left the mirror otherwise (its label removed or changed, or deleted before it was ever
  scheduled), or never appeared in it `grace` seconds after its admission (a review that never became a pod:
  its create failed after the webhook, or it was posted straight to the webhook), is confirmed by reading the
  pod: gone (or another pod of that name), or finished, releases it; a pod that still runs keeps it, and is
  read again every `DETACHED_RECHECK` seconds until it finishes or goes;
- the rank table ConfigMap is written when its text changes (`ranktables`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from superpod.api import common, views
from superpod.cluster import client, podplacement, reflector
from superpod.controller import binder as binder_module
from superpod.controller import eviction, inuse, kopfkit, podrequest, ranktables, slotclaims
from superpod.controller import fleet as fleet_module

JSON = common.JSON
FINISHED = frozenset({"Succeeded", "Failed"})
GRACE_SECONDS = 2.0  # after an admission, the pod is expected in the mirror; then it is read to confirm
DETACHED_RECHECK = 5.0  # seconds between two reads of a pod that holds a slot but left the mirror
IDLE_RECHECK = 10.0  # seconds: every placed partition is looked at again even without a change
CONCURRENCY = 8  # partitions of one SuperPod reconciled at a time (each is mostly API round trips)
RETRY_SECONDS = 1.0  # after a failed API call
logger = logging.getLogger(__name__)


class Bindings:
    """The pods of every partition, and the reconciliation of slots and rank tables with them."""

    def __init__(
        self,
        api: client.KubeClient,
        fleet: fleet_module.Fleet,
        binder: binder_module.Binder,
        *,
        namespace: str | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.api = api
        self.fleet = fleet
        self.binder = binder
        self.tables = ranktables.RankTables(api)
        self.evictions = eviction.Evictions(api)
        self.in_use = inuse.InUse(fleet, self.tables, self.evictions)
        self.grace = grace
        self.pods: dict[str, dict[str, JSON]] = {}  # partition key -> pod name -> pod
        self._wakes: dict[str, asyncio.Event] = {}  # SuperPod -> wakes its loop
        self._dirty: dict[str, set[str]] = {}  # SuperPod -> partition keys to reconcile now
        self._due: dict[str, dict[str, float]] = {}  # SuperPod -> partition key -> when to look again
        # partition key -> what its last complete reconcile read (versions of it and its pods, the profile):
        # the periodic look and repeated pokes cost nothing while they stay the same
        self._settled: dict[str, tuple[Any, ...]] = {}
        self._missing_since: dict[tuple[str, str], float] = {}  # (partition key, pod) -> first seen missing
        self._deleted: set[tuple[str, str]] = set()  # (partition key, pod) whose deletion was observed
        # (partition key, pod) -> uid: pods that left the mirror without being seen deleted, to read
        self._left: dict[tuple[str, str], str | None] = {}
        self._warned: set[tuple[str, str]] = set()  # detached pods already logged
        path = client.resource_path("v1", "pods", namespace)
        self.reflector = reflector.Reflector(api, path, self.on_pod, label_selector=common.PARTITION_LABEL)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reflector.relist()
        self._task = asyncio.create_task(self.reflector.run(), name="partition pods")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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
        for entry in [entry for entry in self._missing_since if entry[0] == key]:
            del self._missing_since[entry]
        self._deleted = {entry for entry in self._deleted if entry[0] != key}
        self._left = {entry: uid for entry, uid in self._left.items() if entry[0] != key}
        self._warned = {entry for entry in self._warned if entry[0] != key}

    def on_pod(self, _key: str, old: JSON | None, new: JSON | None) -> None:
        for pod, present in ((old, False), (new, True)):
            if pod is None:
                continue
            metadata = pod["metadata"]
            partition = (
                f"{metadata['namespace']}/{(metadata.get('labels') or {}).get(common.PARTITION_LABEL)}"
            )
            pods = self.pods.setdefault(partition, {})
            entry = (partition, metadata["name"])
            if present:
                pods[metadata["name"]] = pod
                self._deleted.discard(entry)
                self._left.pop(entry, None)
                self._warned.discard(entry)
            elif new is None or partition != _partition_of(new):
                pods.pop(metadata["name"], None)
                if new is None and metadata.get("deletionTimestamp"):
                    self._deleted.add(entry)  # a graceful deletion ending: the pod is gone
                else:  # its label went or changed, or it was deleted unscheduled: read it to know
                    self._left[entry] = metadata.get("uid")
            self.touch(partition)

    def finished_or_gone(
        self, key: str, allocation: list[JSON], now: float
    ) -> tuple[list[str], list[str], float | None]:
        """Pods of `allocation` whose slots are to be freed now, pods to read before deciding, and the seconds
        until the next check is due."""
        pods = self.pods.get(key, {})
        release: list[str] = []
        confirm: list[str] = []
        next_check: float | None = None
        for slot in allocation:
            name = slot.get("pod")
            if not name:
                continue
            pod = pods.get(name)
            if pod is not None:
                self._missing_since.pop((key, name), None)
                if (pod.get("status") or {}).get("phase") in FINISHED:
                    release.append(name)
                continue
            if (key, name) in self._deleted:
                release.append(name)
                continue
            if (key, name) in self._left:
                confirm.append(name)
                continue
            since = self._missing_since.setdefault((key, name), now)
            remaining = since + self.grace - now
            if remaining <= 0:
                confirm.append(name)
            else:
                next_check = remaining if next_check is None else min(next_check, remaining)
        return release, confirm, next_check

    async def confirm(self, key: str, names: list[str]) -> tuple[list[str], bool]:
        """Read the pods that hold slots of the partition but are not in the mirror: the ones to release, and
        whether one still runs detached from the mirror (to be read again)."""
        namespace = key.partition("/")[0]
        release: list[str] = []
        detached = False
        for name in names:
            entry = (key, name)
            pod = await self.api.get_or_none(client.resource_path("v1", "pods", namespace, name))
            known_uid = self._left.get(entry)
            gone = pod is None or bool(known_uid and pod["metadata"].get("uid") != known_uid)
            if gone or (pod or {}).get("status", {}).get("phase") in FINISHED:
                release.append(name)
                continue
            assert pod is not None
            self._missing_since.pop(entry, None)
            self._left.setdefault(entry, pod["metadata"].get("uid"))
            if _partition_of(pod) == key:
                continue  # labelled as it should be: the watch has not shown it yet
            detached = True
            if entry not in self._warned:
                self._warned.add(entry)
                logger.warning(
                    "partition %s: pod %s runs on its slot without the label %s=%s; the slot stays held "
                    "until the pod finishes or is deleted",
                    key,
                    name,
                    common.PARTITION_LABEL,
                    key.partition("/")[2],
                )
        return release, detached

    async def follow(self, superpod: str, stopped: kopf.DaemonStopped) -> None:
        """Reconcile the SuperPod's partitions as they change, until `stopped` (the SuperPod's daemon ends)."""
        wake = self.wake(superpod)
        due = self._due.setdefault(superpod, {})
        swept = -IDLE_RECHECK
        while not stopped:
            wake.clear()
            now = time.monotonic()
            if now - swept >= IDLE_RECHECK:  # also the first pass: a replica that just became active
                swept = now
                self._dirty.setdefault(superpod, set()).update(
                    key
                    for key, obj in self.fleet.partitions.items()
                    if views.Partition(obj).superpod == superpod
                    and ((obj.get("status") or {}).get("allocation") or views.Partition(obj).deleting)
                )
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
                await kopfkit.wait_for_poke(wake, stopped, timeout)

    async def _reconcile_all(self, superpod: str, keys: list[str]) -> None:
        """Reconcile `keys`, a few at a time; schedule each one's next look."""
        due = self._due.setdefault(superpod, {})
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(key: str) -> None:
            async with gate:
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

        await asyncio.gather(*(one(key) for key in keys))

    async def reconcile(self, key: str) -> float | None:
        """Bring the partition's slots and rank table in line with its pods; returns when to look again."""
        namespace, _, name = key.partition("/")
        obj = views.newest(self.binder.known(namespace, name), self.fleet.partitions.get(key))
        if obj is None or not self.reflector.synced.is_set():
            return None
        if views.Partition(obj).deleting:
            if not views.Partition(obj).protected:
                return None  # not the operator's to finalize (it goes when its other finalizers do)
            holders, next_check = await self.holders(key, obj)
            retry = await self.in_use.reconcile(obj, holders)
            return min((t for t in (retry, next_check) if t is not None), default=None)
        if not views.Partition(obj).protected and views.Partition(obj).placed:
            # placed by an operator before the in-use protection: protected from now on
            obj = await self.fleet.reconciler.protect(obj)
        state = self.fleet.superpods.get(views.Partition(obj).superpod)
        profile = state.profile if state is not None else None
        inputs = _inputs(obj, self.pods.get(key, {}), profile.name if profile is not None else "")
        if self._settled.get(key) == inputs:
            return None  # nothing it depends on changed since it was last brought in line
        allocation = (obj.get("status") or {}).get("allocation") or []
        release, unsure, next_check = self.finished_or_gone(key, allocation, time.monotonic())
        detached = False
        if unsure:
            confirmed, detached = await self.confirm(key, unsure)
            release += confirmed
            if detached or len(confirmed) < len(unsure):
                next_check = min(next_check or DETACHED_RECHECK, DETACHED_RECHECK)
        if release:
            logger.info("partition %s: releasing the slots of pods %s", key, ", ".join(sorted(release)))
            await self.binder.release(namespace, name, release)
            for pod in release:
                self._missing_since.pop((key, pod), None)
                self._deleted.discard((key, pod))
                self._left.pop((key, pod), None)
                self._warned.discard((key, pod))
            return 0.0  # look again at the written status
        if profile is None or not allocation:
            return next_check
        unrecorded = self.unrecorded(key, allocation, profile.resource_name)
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
        await self.tables.sync(obj, profile.name, self.pods.get(key, {}))
        retry = self.tables.retry_in(namespace, name)  # a write refused: not settled, tried again later
        if retry is not None:
            next_check = retry if next_check is None else min(next_check, retry)
        if next_check is None:
            self._settled[key] = inputs
        return next_check

    async def holders(self, key: str, obj: JSON) -> tuple[dict[str, JSON | None], float | None]:
        """The pods that still hold a partition (name -> the pod, None when it is not in the mirror), judged as
        slots are: a slot's pod until it finished or is confirmed gone, any other labelled pod until it
        finished; and the seconds until a pod not yet seen is to be checked again."""
        allocation = views.Partition(obj).allocation
        release, unsure, next_check = self.finished_or_gone(key, allocation, time.monotonic())
        gone = set(release)
        if unsure:
            confirmed, detached = await self.confirm(key, unsure)
            gone.update(confirmed)
            if detached or len(confirmed) < len(unsure):
                next_check = min(next_check or DETACHED_RECHECK, DETACHED_RECHECK)
        pods = self.pods.get(key, {})
        out: dict[str, JSON | None] = {
            name: pod for name, pod in pods.items() if (pod.get("status") or {}).get("phase") not in FINISHED
        }
        for slot in allocation:
            name = slot.get("pod")
            if name and name not in gone and name not in out and name not in pods:
                out[name] = None  # admitted, not seen yet, or running without its label
        return out, next_check

    async def deleted(self, obj: JSON) -> float | None:
        """kopf saw the partition's deletion: its SuperPod's loop finalizes it; with no SuperPod (no loop), it
        is done here. Returns when to look again (None: nothing to wait for here)."""
        view = views.Partition(obj)
        if view.superpod in self.fleet.superpods:
            self.touch(view.key)
            return None
        if not self.reflector.synced.is_set():
            return RETRY_SECONDS
        return await self.reconcile(view.key)

    def running(self, key: str, resource: str) -> list[tuple[str, str, tuple[str, ...]]]:
        """The partition's pods that run or wait to, each with its node and the devices its `resource`
        annotation names (what the device plugin hands it); none until the mirror of pods is synced."""
        if not self.reflector.synced.is_set():
            return []
        out = []
        for name, pod in sorted(self.pods.get(key, {}).items()):
            if (pod.get("status") or {}).get("phase") in FINISHED or not resource:
                continue
            devices = ((pod["metadata"].get("annotations") or {}).get(resource) or "").split(",")
            node = (pod.get("spec") or {}).get("nodeName") or podplacement.pinned_node(pod)
            if node and any(devices):
                out.append((name, node, tuple(device for device in devices if device)))
        return out

    def unrecorded(self, key: str, allocation: list[JSON], resource: str) -> list[tuple[str, int]]:
        """Running pods bound to a slot (its node and devices) that no longer names them, with its index.

        Heals a release that overtook a pod's re-creation under the same name (a StatefulSet replacing a
        pod): the slot was freed for the old pod after the new one had been admitted to it.
        """
        recorded = {slot.get("pod") for slot in allocation}
        by_binding = {
            (slot["node"], ",".join(slot["devices"])): index
            for index, slot in enumerate(sorted(allocation, key=lambda slot: slot["rank"]))
            if not slot.get("pod")
        }
        out = []
        for name, pod in sorted(self.pods.get(key, {}).items()):
            if name in recorded or (pod.get("status") or {}).get("phase") in FINISHED:
                continue
            devices = (pod["metadata"].get("annotations") or {}).get(resource)
            index = by_binding.get((podplacement.pinned_node(pod), devices or ""))
            if index is not None:
                out.append((name, index))
        return out


def _inputs(partition: JSON, pods: dict[str, JSON], profile: str) -> tuple[Any, ...]:
    """What a reconcile reads: the partition's and its pods' resourceVersions, and the SuperPod's profile."""
    versions = tuple(sorted((name, pod["metadata"].get("resourceVersion")) for name, pod in pods.items()))
    return (partition["metadata"].get("uid"), partition["metadata"].get("resourceVersion"), versions, profile)


def _partition_of(pod: JSON) -> str:
    metadata = pod["metadata"]
    return f"{metadata['namespace']}/{(metadata.get('labels') or {}).get(common.PARTITION_LABEL)}"
