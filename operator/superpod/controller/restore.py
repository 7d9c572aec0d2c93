"""Recorded placements into the books: restore, verify, quarantine what conflicts, and resolve it.

A partition's placement lives in its status; `adopt` restores it into its SuperPod's allocator (or queues a
partition that holds nothing). A recorded placement that cannot be restored or verified (`conflicts`: a device
that is gone, a node outside the SuperPod, a device another partition holds, an allocation the operator never
wrote) is never dropped: the partition gets a `conflicts.Record`, holds what of its claim it can (quarantine:
those devices go to nobody else) and leaves the queue. The SuperPod's daemon (`resolve`, active replica only)
writes its Conflict condition and posts the Event, then releases and re-queues it once no slot has a pod; the
claim the books keep is the one written first (`conflicts.claim_order`). `superpod_partition_conflicts` shows
the partitions in conflict now, by reason.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import pydantic

from superpod import placement
from superpod.api import common, reasons, views
from superpod.api import partition as api_partition
from superpod.controller import conflicts, partitions, relocation, superpodstate
from superpod.controller import status as derive
from superpod.metrics import instruments

JSON = common.JSON
Running = tuple[str, str, tuple[str, ...]]  # a running pod of a partition: (name, node, devices it uses)
NAMED_PODS = 5  # pods named in one message; the rest are counted
logger = logging.getLogger(__name__)


class Restorer:
    """Restores partitions' recorded placements, and settles the ones in conflict."""

    def __init__(self, reconciler: partitions.Partitions) -> None:
        self.reconciler = reconciler
        self.superpods = reconciler.superpods
        self.partitions = reconciler.partitions
        # the partition's pods that run or wait to, with the devices their device annotation names (set by
        # the admission module from its mirror of partition pods; the pods are the truth of what is in use)
        self.running: Callable[[str, str], Sequence[Running]] = lambda key, resource: ()

    # ---- memory: on every replica ------------------------------------------------------------------------

    def adopt(self, key: str, obj: JSON) -> None:
        """Learn a partition: restore its allocation from status, or queue it when it has none."""
        view = views.Partition(obj)
        state = self.superpods.get(view.superpod)
        if state is None or state.is_victim(key):
            return  # a victim's devices are its preemptor's while its pods go (controller/preemptions.py)
        if view.deleting and (not view.placed or not view.protected or view.uid in self.reconciler.released):
            return  # deleted: it waits for nothing; one its pods may hold keeps its devices until then (inuse)
        state.pending.seen(key)
        if key in state.conflicts:
            return  # settled by `resolve`, whatever the status says meanwhile
        allocator = state.allocator
        if not view.placed:
            if allocator is None or allocator.placement_of(key) is None:
                state.pending.add(key, view.created)
            return
        if allocator is None:  # no nodes yet, or a SuperPod another replica owns (not modelled here)
            state.pending.remove(key)
            return
        if key in state.moving:
            return  # moved while its pods run: the move keeps memory and status in line (podmoves)
        if _move_over_elsewhere(allocator, key, view):
            # the replica that moved it is done (or gave up): the reservation goes; a partition that switched
            # is restored below from the status that holds its new devices
            relocation.unreserve(allocator, key)
            if _moved(allocator, key, view):
                allocator.release(key)
        if allocator.placement_of(key) is not None:
            forged = conflicts.verify(allocator, key, obj)
            if forged is not None:
                record = conflicts.classify(forged, state.name, nodes=state.observed)
                self._record(state, key, dataclasses.replace(record, keep=True))
            else:
                _hold_move(allocator, key, view)
            return
        if view.phase not in (conflicts.TERMINATING_PHASES if view.deleting else conflicts.PLACED_PHASES):
            detail = "holds devices while its phase says it is not placed: the operator never wrote it"
            self._record(state, key, conflicts.invalid(key, view.phase, detail))
            return
        try:
            slots = view.slots()
        except pydantic.ValidationError as error:
            self._record(
                state, key, conflicts.invalid(key, view.phase, f"cannot be read: {error.errors()[0]}")
            )
            return
        outcome = allocator.restore(key, slots, whole_nodes=view.whole_nodes)
        if isinstance(outcome, placement.Conflict):
            self.quarantine(state, key, outcome, slots)
        else:
            _hold_move(allocator, key, view)
        state.pending.remove(key)

    def rebuilt(self, state: superpodstate.SuperPodState, before: placement.Allocator | None) -> None:
        """The SuperPod got a new tree: the placements of the old one that did not fit are in conflict."""
        for conflict in state.model.conflicts:
            if relocation.is_reservation(conflict.partition_id):
                continue  # a move's reservation that no longer fits: the move is given up (podmoves)
            held = before.placement_of(conflict.partition_id) if before is not None else None
            self.quarantine(state, conflict.partition_id, conflict, held.slots if held is not None else ())

    def quarantine(
        self,
        state: superpodstate.SuperPodState,
        key: str,
        conflict: placement.Conflict,
        slots: tuple[placement.PlacedSlot, ...] | list,  # type: ignore[type-arg]
    ) -> None:
        """Record `key`'s conflict and hold what of its claim exists and nobody else holds."""
        allocator = state.allocator
        if allocator is not None and allocator.placement_of(key) is None:
            kept = conflicts.restorable(allocator, slots)
            if kept:
                allocator.restore(key, kept)
        hold_for_pods(state, key, self.running(key, state.resource))
        record = conflicts.classify(conflict, state.name, nodes=state.observed)
        self._record(state, key, record)

    def _record(self, state: superpodstate.SuperPodState, key: str, record: conflicts.Record) -> None:
        known = state.conflicts.get(key)
        state.conflicts[key] = dataclasses.replace(record, announced=known.announced if known else False)
        state.pending.remove(key)
        if known is None:
            instruments.count_conflict(record.reason)
            logger.warning("partition %s in conflict (%s): %s", key, record.reason, record.message)
        report(state)
        state.health_dirty = True
        state.poke()

    # ---- decisions: the SuperPod's daemon ----------------------------------------------------------------

    async def resolve(self, state: superpodstate.SuperPodState) -> None:
        """Write each conflicted partition's condition and Event; release and re-queue the ones without pods."""
        for key in sorted(state.conflicts):
            obj = self.partitions.get(key)
            if obj is None or views.Partition(obj).deleting:
                continue  # `forget` or `release` drops it with its devices
            async with self.reconciler.serial.hold(key):
                record = state.conflicts.get(key)
                if record is not None:
                    await self._resolve(state, key, self.partitions.get(key) or obj, record)
        report(state)

    async def _resolve(
        self, state: superpodstate.SuperPodState, key: str, obj: JSON, record: conflicts.Record
    ) -> None:
        view = views.Partition(obj)
        running = () if record.keep else tuple(self.running(key, state.resource))
        async with state.lock:  # what its pods use is held for them (also when they ran before a restart)
            foreign = hold_for_pods(state, key, running)
        # its pods may still run on what it holds
        wait = not record.keep and (view.any_bound or bool(running))
        held = (
            state.allocator.placement_of(key)
            if state.allocator is not None and (record.keep or wait)
            else None
        )
        rank_table = superpodstate.rank_table_name(state, obj)
        written = await self.reconciler.statuses.write(
            obj,
            lambda previous, now: derive.conflicted(
                held,
                record.reason,
                record.message,
                previous=previous,
                generation=view.generation,
                now=now,
                rank_table=rank_table,
            ),
        )
        if not record.announced:
            state.conflicts[key] = record = dataclasses.replace(record, announced=True)
            message = f"{record.reason}: {record.message}; " + (
                "the operator's record stands and is written back"
                if record.keep
                else f"{pods_held(running)}; then it is placed again"
                if running
                else "its pods' slots are kept until they are gone, then it is placed again"
                if wait
                else "it is placed again"
            )
            message += "".join(
                f"; pod {pod} runs on {device}, which {holder} holds: delete the pod (the operator evicts none)"
                for pod, device, holder in foreign
            )
            await self.reconciler.events.event(
                obj, reason=reasons.EventReason.CONFLICT, message=message, warning=True
            )
        if not written or wait:
            return
        async with state.lock:
            state.conflicts.pop(key, None)
            if not record.keep:
                if state.allocator is not None:
                    state.allocator.release(key)
                state.pending.add(key, view.created)
        report(state)
        state.poke()
        if record.keep:
            current = dict(obj, status=written)
            await self.reconciler.refresh(state, current)


def _hold_move(allocator: placement.Allocator, key: str, view: views.Partition) -> None:
    """A partition moved while its pods run holds its new devices too (`status.move`), as the replica that
    moves it does; what cannot be held is left to that replica, which gives the move up."""
    relocation.hold_recorded(allocator, key, view.move)


def _move_over_elsewhere(allocator: placement.Allocator, key: str, view: views.Partition) -> bool:
    """The status shows no move while this replica (not the one carrying moves out: it keeps `moving`) still
    holds a reservation for the partition."""
    return (
        view.move is None
        and allocator.placement_of(key) is not None
        and allocator.placement_of(relocation.reservation_key(key)) is not None
    )


def _moved(allocator: placement.Allocator, key: str, view: views.Partition) -> bool:
    """The status names other devices than the partition holds here (its move switched elsewhere)."""
    held = allocator.placement_of(key)
    recorded = {
        f"{slot.get('node')}/{device}" for slot in view.allocation for device in slot.get("devices") or ()
    }
    return held is not None and recorded != set(held.device_ids())


def hold_for_pods(
    state: superpodstate.SuperPodState, key: str, running: Sequence[Running]
) -> list[tuple[str, str, str]]:
    """Add to `key`'s claim the devices its running pods use that nobody holds, so that no other partition gets
    them while the pods run; returns (pod, node/device, holder) for the ones another partition holds."""
    allocator = state.allocator
    if allocator is None or not running:
        return []
    held = allocator.placement_of(key)
    slots = [slot.to_api() for slot in held.slots] if held is not None else []
    own = {(slot.node, device) for slot in slots for device in slot.devices}
    extra: list[api_partition.Slot] = []
    foreign: list[tuple[str, str, str]] = []
    rank = max((slot.rank + len(slot.devices) for slot in slots), default=0)
    for pod, node, devices in running:
        tree_node = allocator.tree.by_name.get(node)
        if tree_node is None:
            continue
        index = allocator.tree.device_index[node]
        holders = allocator.holders(tree_node.index)
        free = []
        for device in devices:
            if (node, device) in own or device not in index:
                continue
            others = [p for p, mask in holders.items() if p != key and mask >> index[device] & 1]
            if others:
                foreign.append((pod, f"{node}/{device}", others[0]))
            else:
                free.append(device)
                own.add((node, device))
        if free:
            extra.append(api_partition.Slot(rank=rank, node=node, devices=free, domains={}))
            rank += len(free)
    if extra:
        if held is not None:
            allocator.release(key)
        outcome = allocator.restore(key, [*slots, *extra])
        if isinstance(outcome, placement.Conflict) and held is not None:
            allocator.restore(key, slots)  # cannot happen (all free): keep what it held
        else:
            logger.warning(
                "partition %s: holds %d devices its running pods use", key, sum(len(s.devices) for s in extra)
            )
    return foreign


def pods_held(running: Sequence[Running]) -> str:
    """What happens to a conflicted partition's running pods, in words."""
    names = [pod for pod, _, _ in running]
    shown = ", ".join(names[:NAMED_PODS]) + (
        f" (and {len(names) - NAMED_PODS} more)" if len(names) > NAMED_PODS else ""
    )
    return (
        f"its running pod(s) {shown} keep running and the devices they use stay held (no new pod is admitted) "
        f"until they are gone"
    )


report = superpodstate.restore_report
