"""The pods of every partition, and whether each still holds its slot.

Every replica mirrors the pods labelled `superpod.dev/partition` (a reflector, so a replica that becomes active
already knows them). A slot follows its pod's existence and phase, never only its label (a watch by label sees
a pod whose label was removed as deleted, though it still runs on the slot's devices):

- a slot whose pod Succeeded or Failed, or whose deletion the mirror saw (a pod with a deletionTimestamp), is
  to be released;
- a slot whose pod left the mirror otherwise (its label removed or changed, or deleted before it was ever
  scheduled), or never appeared in it `grace` seconds after its admission (a review that never became a pod:
  its create failed after the webhook, or it was posted straight to the webhook), is confirmed by reading the
  pod: gone (or another pod of that name), or finished, releases it; a pod that still runs keeps it, and is
  read again every `DETACHED_RECHECK` seconds until it finishes or goes.

`bindings` acts on what this module says (frees the slots, writes rank tables, finalizes deleted partitions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from superpod.api import common, views
from superpod.cluster import client, podplacement, reflector

JSON = common.JSON
FINISHED = frozenset({"Succeeded", "Failed"})
GRACE_SECONDS = 2.0  # after an admission, the pod is expected in the mirror; then it is read to confirm
DETACHED_RECHECK = 5.0  # seconds between two reads of a pod that holds a slot but left the mirror
logger = logging.getLogger(__name__)


class PartitionPods:
    """The mirror of partition pods, and which of them hold their slots (`changed` is told of each change)."""

    def __init__(
        self,
        api: client.KubeClient,
        changed: Callable[[str], None],
        *,
        namespace: str | None = None,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.api = api
        self.changed = changed  # partition key -> have it looked at
        self.grace = grace
        self.pods: dict[str, dict[str, JSON]] = {}  # partition key -> pod name -> pod
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

    @property
    def synced(self) -> bool:
        return self.reflector.synced.is_set()

    def seen(self, namespace: str, name: str) -> JSON | None:
        """The pod as the mirror last saw it (None: not a partition pod, or not seen)."""
        return self.reflector.objects.get(f"{namespace}/{name}")

    def of(self, key: str) -> dict[str, JSON]:
        """The partition's pods in the mirror, by name."""
        return self.pods.get(key, {})

    def forget(self, key: str, names: Collection[str] | None = None) -> None:
        """Drop what is remembered of the partition's pods `names` (None: of all its pods: it is gone)."""

        def dropped(entry: tuple[str, str]) -> bool:
            return entry[0] == key and (names is None or entry[1] in names)

        for entry in [entry for entry in self._missing_since if dropped(entry)]:
            del self._missing_since[entry]
        self._deleted = {entry for entry in self._deleted if not dropped(entry)}
        self._left = {entry: uid for entry, uid in self._left.items() if not dropped(entry)}
        self._warned = {entry for entry in self._warned if not dropped(entry)}

    def on_pod(self, _key: str, old: JSON | None, new: JSON | None) -> None:
        """The reflector's callback: a pod labelled for a partition changed (None: it was not, or is no more)."""
        for pod, present in ((old, False), (new, True)):
            if pod is None:
                continue
            metadata = pod["metadata"]
            partition = _partition_of(pod)
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
            self.changed(partition)

    def finished_or_gone(
        self, key: str, allocation: list[JSON], now: float
    ) -> tuple[list[str], list[str], float | None]:
        """Pods of `allocation` whose slots are to be freed now, pods to read before deciding, and the seconds
        until the next check is due."""
        pods = self.of(key)
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

    async def released(self, key: str, allocation: list[JSON]) -> tuple[list[str], float | None]:
        """The pods of `allocation` whose slots are free now (finished, seen deleted, or read and found gone or
        finished), and the seconds until the next check is due (a pod not seen yet, or one running detached)."""
        release, unsure, next_check = self.finished_or_gone(key, allocation, time.monotonic())
        if unsure:
            confirmed, detached = await self.confirm(key, unsure)
            release += confirmed
            if detached or len(confirmed) < len(unsure):
                next_check = min(next_check or DETACHED_RECHECK, DETACHED_RECHECK)
        return release, next_check

    async def holders(self, key: str, obj: JSON) -> tuple[dict[str, JSON | None], float | None]:
        """The pods that still hold a partition (name -> the pod, None when it is not in the mirror), judged as
        slots are: a slot's pod until it finished or is confirmed gone, any other labelled pod until it
        finished; and the seconds until a pod not yet seen is to be checked again."""
        allocation = views.Partition(obj).allocation
        released, next_check = await self.released(key, allocation)
        gone = set(released)
        pods = self.of(key)
        out: dict[str, JSON | None] = {
            name: pod for name, pod in pods.items() if (pod.get("status") or {}).get("phase") not in FINISHED
        }
        for slot in allocation:
            name = slot.get("pod")
            if name and name not in gone and name not in out and name not in pods:
                out[name] = None  # admitted, not seen yet, or running without its label
        return out, next_check

    def running(self, key: str, resource: str) -> list[tuple[str, str, tuple[str, ...]]]:
        """The partition's pods that run or wait to, each with its node and the devices its `resource`
        annotation names (what the device plugin hands it); none until the mirror of pods is synced."""
        if not self.reflector.synced.is_set():
            return []
        out = []
        for name, pod in sorted(self.of(key).items()):
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
        for name, pod in sorted(self.of(key).items()):
            if name in recorded or (pod.get("status") or {}).get("phase") in FINISHED:
                continue
            devices = (pod["metadata"].get("annotations") or {}).get(resource)
            index = by_binding.get((podplacement.pinned_node(pod), devices or ""))
            if index is not None:
                out.append((name, index))
        return out


def _partition_of(pod: JSON) -> str:
    metadata = pod["metadata"]
    return f"{metadata['namespace']}/{(metadata.get('labels') or {}).get(common.PARTITION_LABEL)}"
