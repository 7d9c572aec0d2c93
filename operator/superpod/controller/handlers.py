"""The kopf handlers: each one a few lines that hand the object to the fleet.

- SuperPodPartition events: with Leases or a single replica they reach the operator through the fleet's own
  mirror (`partitionevents`: placed by the owner of their SuperPod, nothing done on the other replicas), and
  kopf does not watch partitions at all. With kopf peering (one active replica; kopf alone knows which one it
  has paused) kopf's create/resume handler places them (`partitionevents.place`) and its delete handler keeps
  kopf's finalizer `superpod.dev/release-devices` while the operator's `superpod.dev/in-use` stays: the
  bindings loop of the partition's SuperPod finalizes it (in-use protection, `inuse`); this handler only wakes
  it, and while the SuperPod is missing (no loop follows its pods) it does the work itself (`Fleet.deleted`),
  asking kopf to call it again until it is done; a partition without `superpod.dev/in-use` (made before the
  operator added it) releases its devices at once.
- SuperPod daemon (one per SuperPod on every replica, at work only on the replica that owns the SuperPod:
  `shards`; with kopf peering or a single replica, that is the active one): retries pending partitions in creation
  order whenever capacity may have changed, audits what memory holds against the partitions' statuses every
  30 s (`audit`), and writes the SuperPod's status, coalescing bursts; beside it run
  the fleet's `superpod_workers` for that SuperPod (the bindings loop, the isolation taint loop), which get
  `WORKER_GRACE` seconds to finish when the daemon is stopped (kopf waits 5 s before cancelling it).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf

from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.controller import fleet as fleet_module
from superpod.controller import inuse, kopfkit, partitionevents, shards

HANDLER_BACKOFF = 2.0  # seconds before kopf retries a failed handler or restarts a failed daemon
IDLE_REFRESH = 30.0  # seconds: a daemon re-checks even without a poke (missed events cost at most this)
WORKER_GRACE = 3.0  # seconds a stopped daemon's workers get to finish before they are cancelled
DELETION_RECHECK = 5.0  # seconds: a deleted partition of a missing SuperPod is looked at again this often
WATCH_RECHECK = 30.0  # seconds: one its SuperPod's loop follows (the handler only notices the SuperPod going)
FINALIZER = inuse.HANDLER_FINALIZER


def register(
    registry: kopf.OperatorRegistry,
    fleet: fleet_module.Fleet,
    *,
    status_interval: float,
    ownership: shards.Ownership | None = None,
    kopf_partitions: bool = False,
) -> None:
    """Attach the handlers to `registry`, bound to `fleet`; with `ownership`, only for the SuperPods it owns.
    `kopf_partitions` (kopf peering): partitions through kopf's handlers, else through the fleet's mirror."""
    superpods = (common.GROUP, common.VERSION, api_superpod.PLURAL)
    owner: shards.Ownership = ownership or shards.Solo()
    events = None if kopf_partitions else partitionevents.PartitionEvents(fleet, owner)

    @kopf.on.startup(registry=registry)
    async def start(**_: Any) -> None:
        await fleet.start()
        await owner.start()
        if events is not None:
            await events.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        if events is not None:
            await events.stop()
        await owner.stop()
        await fleet.stop()

    if kopf_partitions:
        _register_partitions(registry, fleet, owner)

    @kopf.daemon(*superpods, registry=registry, cancellation_timeout=5.0, backoff=HANDLER_BACKOFF)
    async def superpod_loop(name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await owner.serve(name, stopped, lambda flag: _serve_superpod(name, flag))

    async def _serve_superpod(name: str, stopped: kopf.DaemonStopped) -> None:
        workers = [asyncio.create_task(work(name, stopped)) for work in fleet.superpod_workers]
        try:
            await _superpod_loop(name, stopped)
        finally:
            try:
                if stopped and workers:  # they watch `stopped` too, and may have a last thing to do (untaint)
                    await asyncio.wait(workers, timeout=WORKER_GRACE)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _superpod_loop(name: str, stopped: kopf.DaemonStopped) -> None:
        last_write = 0.0
        async with kopfkit.Sleeper(stopped) as sleeper:
            while not stopped:
                state = fleet.superpods.get(name)
                if state is None:  # the mirror has not seen it yet
                    await stopped.wait(0.05)
                    continue
                state.wake.clear()
                async with partitionevents.reconciling("superpod"):
                    if state.health_dirty:
                        state.health_dirty = False
                        await fleet.resolve_conflicts(state)
                        await fleet.refresh_placed(state)
                    await fleet.retry_pending(state)
                    await fleet.audit_books(state)  # memory against the partitions' statuses (`audit`)
                pause = status_interval - (time.monotonic() - last_write)
                if pause > 0:
                    await stopped.wait(pause)  # coalesce bursts of changes into one status write
                if await fleet.write_superpod_status(state):
                    last_write = time.monotonic()
                await sleeper.until_poked(state.wake, IDLE_REFRESH)


def _register_partitions(
    registry: kopf.OperatorRegistry, fleet: fleet_module.Fleet, owner: shards.Ownership
) -> None:
    """kopf's handlers of partitions (kopf peering only, where the active replica owns every SuperPod: see the
    module's docstring)."""
    partitions = (common.GROUP, common.VERSION, api_partition.PLURAL)

    # kopf retries a failed handler after `backoff` seconds (its default, 60 s, leaves a partition without a
    # status for a minute after a transient API error)
    @kopf.on.create(*partitions, registry=registry, backoff=HANDLER_BACKOFF)
    @kopf.on.resume(*partitions, registry=registry, backoff=HANDLER_BACKOFF)
    async def place(body: kopf.Body, **_: Any) -> None:
        await partitionevents.place(fleet, owner, kopfkit.plain(body))

    @kopf.on.delete(*partitions, registry=registry, backoff=HANDLER_BACKOFF)
    async def release(body: kopf.Body, **_: Any) -> None:
        obj = kopfkit.plain(body)
        view = views.Partition(obj)
        if not view.protected:  # made before the in-use finalizer: its devices go now
            with owner.writing(view.superpod):
                async with partitionevents.reconciling("partition"):
                    await fleet.release(obj)
            return
        with owner.writing(view.superpod):
            async with partitionevents.reconciling("partition"):
                delay = await fleet.deleted(obj)
        known = fleet.partitions.get(view.key)
        if known is not None and views.Partition(known).uid == view.uid and views.Partition(known).protected:
            # not finalized yet: kopf keeps its own finalizer and calls this again (here or on the next active)
            followed = delay is None and view.superpod in fleet.superpods
            delay = WATCH_RECHECK if followed else DELETION_RECHECK
            raise kopf.TemporaryError("pods of the partition may still run", delay=delay)
