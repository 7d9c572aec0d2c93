"""The partition reconciler: write placements, refresh (failed devices, repair), release, forget.

Allocations live only in partition status: `restore.Restorer.adopt` restores what a partition's status holds
into its SuperPod's allocator (or queues a partition that holds nothing) and `forget` releases a partition that
is gone, so a standby replica holds the same picture as the active one and a restarted operator rebuilds it
before it places anything. Only the active replica decides: the scheduler's passes (`scheduler`, which writes
their placements here), `release` and `refresh_placed` run in kopf handlers and in the SuperPod's kopf daemon,
which kopf stops while the operator is paused. What the operator holds of each SuperPod is `superpodstate`.

Per SuperPod one asyncio lock orders decisions: plan and commit in memory, with no API call under it; the status
is written after the lock is released, so placements on one SuperPod write concurrently, while a lock per
partition keeps one partition's decisions and writes in order. Memory is updated before the write, so concurrent
requests never share a device; a refused write releases the devices and queues the partition again, a write
that may have landed (5xx, timeout) keeps them and the daemon writes them again; a crash between decision and
write loses nothing, because the decision was never persisted and is simply made again. A decision that is not
written (refused, cancelled, its partition gone) is taken back in the tree it was made on and in the one that
replaced it meanwhile, which restored it (`_release_if_held`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import pydantic

from superpod import placement
from superpod.api import common, reasons, views
from superpod.api import partition as api_partition
from superpod.cluster import client
from superpod.controller import moves, partitionmap, partitionwrite, relocation, superpodstate
from superpod.controller import status as derive

JSON = common.JSON
Event = reasons.EventReason
logger = logging.getLogger(__name__)


class Partitions:
    """Decisions on partitions, and their status writes."""

    def __init__(
        self,
        superpods: Mapping[str, superpodstate.SuperPodState],
        partitions: partitionmap.PartitionMap,
        statuses: partitionwrite.StatusWriter,
    ) -> None:
        self.superpods = superpods  # name -> state, kept by the fleet
        self.partitions = partitions  # key -> newest copy, kept by the mirror
        self.statuses = statuses
        self.events = statuses.writer
        self.serial = partitionwrite.KeyedLocks()  # partition key -> its lock, while someone uses it
        self.mover = moves.Mover(statuses)
        # uids of deleted partitions whose devices were released (no pod held them): not restored again from
        # the status they still show until their finalizer is gone
        self.released: set[str] = set()

    # ---- memory: what partition statuses hold --------------------------------------------------------------

    def forget(self, key: str, obj: JSON) -> None:
        """A partition is gone: it waits no more and its devices are free."""
        view = views.Partition(obj)
        self.released.discard(view.uid or "")
        state = self.superpods.get(view.superpod)
        if state is not None:
            self.drop(state, key)

    def drop(self, state: superpodstate.SuperPodState, key: str) -> None:
        """`key` is gone from the SuperPod: out of its queue, its conflicts and moves, its devices free."""
        state.pending.forget(key)
        if state.conflicts.pop(key, None) is not None:
            superpodstate.restore_report(state)
        state.moving.pop(key, None)
        if state.allocator is not None:
            relocation.unreserve(state.allocator, key)
        if state.allocator is not None and state.allocator.release(key) is not None:
            self._return_to_victims(state, key)
            state.poke()

    def _return_to_victims(self, state: superpodstate.SuperPodState, key: str) -> None:
        """A preemptor is gone before its victims' pods: their devices are theirs again until the pods go
        (restored from their status, which still holds the allocation)."""
        entry = state.preempting.pop(key, None)
        if entry is None or state.allocator is None:
            return
        for victim in entry.victims:
            obj = self.partitions.get(victim)
            if obj is not None and views.Partition(obj).evicting:
                view = views.Partition(obj)
                try:
                    state.allocator.restore(victim, view.slots(), whole_nodes=view.whole_nodes)
                except pydantic.ValidationError:
                    logger.warning("partition %s has an unreadable allocation", victim)

    def queue_unplaced(self, state: superpodstate.SuperPodState) -> None:
        """Queue the SuperPod's partitions that hold nothing (it has just appeared, or was just taken)."""
        for key in self.partitions.of(state.name):
            obj = self.partitions[key]
            view = views.Partition(obj)
            if not view.placed:
                state.pending.add(key, view.created)

    # ---- writes ------------------------------------------------------------------------------------------

    async def protect(self, obj: JSON) -> JSON:
        """Add the in-use finalizer (see `inuse`) unless the partition has it; the partition as it is now."""
        view = views.Partition(obj)
        if view.protected or view.deleting:
            return obj
        written = await partitionwrite.add_finalizer(self.statuses.api, obj, api_partition.IN_USE_FINALIZER)
        if written is None:
            return obj
        self.statuses.mirror.remember(written)
        return written

    async def pending(self, obj: JSON, reason: str, message: str, tenancy: JSON | None = None) -> JSON:
        generation = views.Partition(obj).generation
        return await self.statuses.write(
            obj,
            lambda previous, now: derive.pending(
                reason, message, previous=previous, generation=generation, now=now, tenancy=tenancy
            ),
        )

    async def write_moves(
        self,
        state: superpodstate.SuperPodState,
        allocator: placement.Allocator,
        obj: JSON,
        plan: relocation.Planned,
    ) -> bool:
        """Write the partitions moved at once to make room for `obj`; False (memory put back, the moves
        waiting for pods dropped too) when one could not be."""
        key = views.Partition(obj).key
        waiting = (
            f"; {len(plan.reserved)} of them once their pods, being evicted, are gone"
            if plan.reserved
            else ""
        )
        if plan.deferred:
            waiting += (
                f", then {len(plan.deferred)} more into the devices those free "
                f"({', '.join(move.partition_id for move in plan.deferred)})"
            )
        message = (
            f"the SuperPod is fragmented: {'moving' if plan.reserved else 'moved'} "
            f"{plan.plan.partitions_moved} partition(s) "
            f"({plan.plan.devices_moved} devices) to make room for it{waiting}"
        )
        await self.events.event(obj, reason=Event.DEFRAGMENTING, message=message)
        failed = await self.mover.write(
            plan.at_once,
            f"make room for {key}",
            self.partitions,
            lambda moved: superpodstate.rank_table_name(state, moved),
        )
        if not failed:
            return True
        async with state.lock:
            _release_if_held(state, allocator, key, plan.placement)
            moves.undo(allocator, failed, plan.reserved)
            for entry in plan.reserved:
                if state.moving.get(entry.key) is entry:
                    del state.moving[entry.key]
            state.pending.add(key, views.Partition(obj).created)
        state.poke()
        return False

    async def write_placement(
        self,
        state: superpodstate.SuperPodState,
        allocator: placement.Allocator,
        obj: JSON,
        placed: placement.Placement,
        tenancy: JSON | None = None,
    ) -> JSON:
        view = views.Partition(obj)
        key = view.key
        try:
            # every placement is protected before it is written, whichever pass made it (see `inuse`)
            obj = await self.protect(obj)
            written = await self._write_allocated(state, obj, placed, tenancy)
        except Exception as error:
            if isinstance(error, client.ApiError) and 400 <= error.status < 500:
                # definitely refused: the devices are free again (in the tree rebuilt meanwhile too), and the
                # partition waits its turn again: the daemon's retries, not only kopf's, place it
                _release_if_held(state, allocator, key, placed)
                state.pending.add(key, view.created)
            else:
                # A 5xx or a timeout may come after the write landed (a lost reply): keep the devices, so no
                # other partition gets them, and have the daemon write this placement again (kopf retries
                # only its own handler, not the daemon's placement of a queued partition).
                state.health_dirty = True
            state.poke()
            raise
        except asyncio.CancelledError:
            # the operator is stopping, or kopf stopped the daemon (a pause): the decision may not be written;
            # if it was, the mirror restores it; if not, the partition waits its turn again
            _release_if_held(state, allocator, key, placed)
            state.pending.add(key, view.created)
            raise
        if not written:  # deleted meanwhile
            _release_if_held(state, allocator, key, placed)
            return {}
        logger.info("placed %s: %s", key, written["message"])
        state.poke()
        await self.events.event(obj, reason=Event.ALLOCATED, message=written["message"])
        return written

    async def _write_allocated(
        self,
        state: superpodstate.SuperPodState,
        obj: JSON,
        decision: placement.Placement,
        tenancy: JSON | None,
        failed: Sequence[str] = (),
        problem: str | None = None,
    ) -> JSON:
        """Write the status of a placed partition (`status.allocated`), its rank table named with it."""
        generation = views.Partition(obj).generation
        rank_table = superpodstate.rank_table_name(state, obj)
        return await self.statuses.write(
            obj,
            lambda previous, now: derive.allocated(
                decision,
                previous=previous,
                generation=generation,
                now=now,
                failed=failed,
                repair_problem=problem if failed else None,
                rank_table=rank_table,
                tenancy=tenancy,
            ),
        )

    async def refresh(
        self, state: superpodstate.SuperPodState, obj: JSON, tenancy: JSON | None = None
    ) -> JSON:
        """Bring a placed partition's status up to date: failed devices, repair, bindings; `tenancy`: its
        quota, priority and borrowing fields when an admission pass has them."""
        view = views.Partition(obj)
        key = view.key
        if key in state.preempting or view.evicting:
            return dict(view.status)  # its status is written by the preemption (preemptions)
        if key in state.moving or view.move is not None:
            return dict(view.status)  # its status is written by the move (podmoves); no repair meanwhile
        async with state.lock:
            decision = state.allocator.placement_of(key) if state.allocator is not None else None
            if state.allocator is None or decision is None or key in state.conflicts:
                return dict(view.status)
            failed = state.allocator.failed_devices(decision)
            problem: str | None = None
            repaired = False
            if failed and view.repair_policy == api_partition.RepairPolicy.AUTO.value:
                bound = view.bound_devices
                movable = [device for device in failed if device not in bound]
                if movable:
                    outcome = state.allocator.repair(key, movable)
                    if isinstance(outcome, placement.Rejection) and not view.any_bound:
                        # no pod runs yet, so the ranks may change: place the whole request afresh
                        outcome = _replace(state.allocator, key, view, decision, outcome)
                    if isinstance(outcome, placement.Rejection):
                        problem = outcome.message
                    else:
                        repaired = outcome != decision
                        decision = outcome
                        failed = state.allocator.failed_devices(decision)
                if failed and problem is None:
                    problem = "the failed devices belong to running pods; their slots move when the pods are recreated"
        was_degraded = view.status.get("phase") == api_partition.Phase.DEGRADED.value
        try:
            written = await self._write_allocated(state, obj, decision, tenancy, failed, problem)
        except BaseException:
            # memory (a repair, failed devices) is ahead of the status: the daemon refreshes it again
            state.health_dirty = True
            state.poke()
            raise
        if repaired and written:
            message = f"moved off failed devices: {written['message']}"
            await self.events.event(obj, reason=Event.REPAIRED, message=message)
            state.poke()
        elif failed and not was_degraded and written:
            await self.events.event(obj, reason=Event.DEVICE_FAILED, message=written["message"], warning=True)
        return written

    async def refresh_placed(self, state: superpodstate.SuperPodState) -> None:
        """After health changes: report failed devices and repair what can be repaired (daemon)."""
        if state.allocator is None:
            return
        for key in list(state.allocator.partitions):
            obj = self.partitions.get(key)
            if obj is None or views.Partition(obj).deleting:
                continue
            async with self.serial.hold(key):
                if state.allocator is not None and state.allocator.placement_of(key) is not None:
                    await self.refresh(state, obj)

    async def release(self, obj: JSON) -> None:
        """A deleted partition's devices are free (no pod of it runs: `inuse`, before its finalizer goes)."""
        view = views.Partition(obj)
        if view.uid:
            self.released.add(view.uid)
        state = self.superpods.get(view.superpod)
        if state is None:
            return
        async with self.serial.hold(view.key), state.lock:
            state.pending.remove(view.key)
            if state.conflicts.pop(view.key, None) is not None:
                superpodstate.restore_report(state)
            state.waiting_since.pop(view.key, None)
            state.moving.pop(view.key, None)
            if state.allocator is not None:
                relocation.unreserve(state.allocator, view.key)
            released = state.allocator.release(view.key) if state.allocator is not None else None
            if released is not None:
                self._return_to_victims(state, view.key)
        if released is not None:
            state.poke()
            message = f"released {len(released.device_ids())} devices"
            await self.events.event(obj, reason=Event.RELEASED, message=message)


def _holders(state: superpodstate.SuperPodState, allocator: placement.Allocator) -> list[placement.Allocator]:
    """The allocator a decision was made on and, when the tree was rebuilt since, the SuperPod's new one (which
    restored every placement of the old one, that decision's too)."""
    current = state.allocator
    return [allocator] if current is None or current is allocator else [allocator, current]


def _release_if_held(
    state: superpodstate.SuperPodState,
    allocator: placement.Allocator,
    key: str,
    decision: placement.Placement,
) -> None:
    """Take back a decision that was not written: release `key`'s devices wherever it still holds `decision`'s
    devices (not the ones a later refresh or repair gave it), in the allocator it was made on and in the tree
    rebuilt since. A tree rebuilt between the decision and its write holds it too, and the partition's `forget`
    may have come before the decision (a copy of a partition deleted meanwhile placed): nothing else frees it."""
    wanted = sorted(decision.device_ids())
    for holder in _holders(state, allocator):
        held = holder.placement_of(key)
        if held is not None and sorted(held.device_ids()) == wanted:
            holder.release(key)


def _replace(
    allocator: placement.Allocator,
    key: str,
    view: views.Partition,
    old: placement.Placement,
    rejection: placement.Rejection,
) -> placement.Placement | placement.Rejection:
    """Release and re-plan a partition whose slots could not move one by one; keep it if that fails."""
    spec = view.parse_spec()
    allocator.release(key)
    fresh = allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
    if isinstance(fresh, placement.Placement):
        allocator.commit(key, fresh)
        return fresh
    allocator.restore(key, old.slots, whole_nodes=old.whole_nodes)
    return rejection
