"""In-use protection: a deleted partition keeps its devices, slots and rank table until no pod of it runs.

As `kubernetes.io/pvc-protection` does for volumes, every partition carries the operator's finalizer,
`superpod.dev/in-use`: the chart's MutatingAdmissionPolicy adds it at creation on Kubernetes 1.36+
(`superpod.api.inusepolicy`), and the operator adds it where it is missing before it writes a placement
(`partitions.Partitions.protect`). `kubectl delete` then only marks
the partition; the bindings loop of its SuperPod (which follows the partition's pods, and is woken by them; it
runs on the replica that owns the SuperPod) hands it here with the pods that still hold it (`reconcile`), judged
by the pods as the loop judges slots: a pod holds the partition until it is Succeeded or Failed, deleted, or
confirmed gone. While its SuperPod is missing there is no loop: kopf's delete handler (`handlers`), on the
replica that owns the SuperPod's name, does it instead and is called again until the partition is finalized.

- While pods hold it: the devices stay in the allocator (a restarted operator, or the replica that takes the
  SuperPod over, restores a deleted partition's allocation from its status: `restore.Restorer.adopt`), the
  slots and the rank table stay, the admission webhook refuses new pods of it, and its status says phase
  `Terminating` with the pods (`inUseBy`, at most `SHOWN_PODS` names, and `inUseByCount`) and the condition
  `Terminating` (reason `PodsRunning`, `EvictingPods` or `EvictionBlocked`); an Event says the same whenever
  the reason changes.
- `spec.deletionPolicy: EvictPods`: the pods are evicted through the Eviction API (`eviction`), disruption
  budgets honoured; a refusal is retried with backoff and reported, never bypassed.
- When none is left: the rank table ConfigMap is deleted, the finalizer is removed, and only then are the
  devices released (a partition waiting for them is placed next), in that order. A crash before the finalizer
  goes repeats what is left (a restarted operator restores the devices, sees no pod, and finalizes again); a
  crash after it loses nothing, since the devices lived only in memory by then. Released first, a waiting
  partition could be placed on them while the deleted one still showed them in its status: two partitions
  naming one device, and a restart in between would restore both. kopf's finalizer goes in the same write:
  its handler has nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from superpod.api import common, reasons, views
from superpod.api import partition as api_partition
from superpod.controller import eviction, partitionwrite, ranktables
from superpod.controller import fleet as fleet_module
from superpod.controller import status as derive

JSON = common.JSON
Reason = reasons.PartitionReason
Event = reasons.EventReason
FINALIZER = api_partition.IN_USE_FINALIZER
# kopf's own (its delete handler, `handlers`, keeps it while this one stays): it goes with this one, since the
# handler has nothing left to do, so the partition is gone at once rather than at the handler's next call
HANDLER_FINALIZER = "superpod.dev/release-devices"
SHOWN_PODS = 20  # names in status.inUseBy; inUseByCount has them all
EVICTION_RECHECK = 5.0  # seconds: an evicting partition is looked at again at least this often
WAIT_RECHECK = 10.0  # seconds: a waiting one (its pods' changes wake it too; this covers a missed one)
logger = logging.getLogger(__name__)


class InUse:
    """The deletion of partitions whose pods may still run."""

    def __init__(
        self, fleet: fleet_module.Fleet, tables: ranktables.RankTables, evictions: eviction.Evictions
    ) -> None:
        self.fleet = fleet
        self.tables = tables
        self.evictions = evictions

    @property
    def statuses(self) -> partitionwrite.StatusWriter:
        return self.fleet.statuses

    async def reconcile(self, obj: JSON, holders: Mapping[str, JSON | None]) -> float | None:
        """A partition being deleted, with the pods that still hold it (name -> the pod, None when it is not
        in the caller's mirror): report and wait (or evict), or release it when none is left. Returns when to
        look again; None once it is released."""
        view = views.Partition(obj)
        if not holders:
            await self.release(obj)
            return None
        names = sorted(holders)
        if view.deletion_policy == api_partition.DeletionPolicy.EVICT_PODS.value:
            progress = await self.evictions.evict(view.key, [pod for pod in holders.values() if pod])
            if progress.evicted:
                message = f"evicted pod(s) {', '.join(progress.evicted)} (deletionPolicy EvictPods)"
                await self.statuses.writer.event(obj, reason=Event.EVICTED, message=message)
            reason = Reason.EVICTION_BLOCKED if progress.blocked else Reason.EVICTING_PODS
            message = f"deleted; {_summary(names, progress)}; it keeps its devices until they are gone"
            retry = (
                EVICTION_RECHECK if progress.retry_in is None else min(progress.retry_in, EVICTION_RECHECK)
            )
        else:
            retry = WAIT_RECHECK
            reason = Reason.PODS_RUNNING
            message = (
                f"deleted; {_running(names)}; it keeps its devices and rank table until they finish or are "
                f"deleted (or set spec.deletionPolicy: EvictPods to evict them)"
            )
        previous_reason = view.status.get("reason")
        written = await self.statuses.write(
            obj,
            lambda previous, now: derive.terminating(
                names[:SHOWN_PODS],
                len(names),
                reason,
                message,
                previous=previous,
                generation=view.generation,
                now=now,
            ),
        )
        if written and previous_reason != reason:
            warning = reason == Reason.EVICTION_BLOCKED
            event = Event.EVICTION_BLOCKED if warning else Event.TERMINATING
            await self.statuses.writer.event(obj, reason=event, message=message, warning=warning)
        return retry

    async def release(self, obj: JSON) -> None:
        """No pod holds the deleted partition: its rank table goes, its finalizer goes, then its devices are
        freed (never while its status still names them for all to see)."""
        view = views.Partition(obj)
        self.evictions.forget(view.key)
        await self.tables.remove(obj)
        written = await partitionwrite.remove_finalizer(self.statuses.api, obj, FINALIZER, HANDLER_FINALIZER)
        if written is not None:
            self.statuses.mirror.remember(written)
        await self.fleet.release(obj)
        logger.info("partition %s: no pod holds it; released and finalized", view.key)


def _running(names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} pod(s) still run: {shown}"


def _summary(names: list[str], progress: eviction.Progress) -> str:
    line = f"evicting its pods; {_running(names)}"
    if progress.blocked:
        pod, why = progress.blocked[0]
        more = f" (and {len(progress.blocked) - 1} more)" if len(progress.blocked) > 1 else ""
        line += f"; eviction of {pod} refused{more}: {why}; retried with backoff"
    return line
