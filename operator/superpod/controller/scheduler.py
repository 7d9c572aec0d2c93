"""Decisions on a SuperPod's pending partitions: one admission pass at a time, then the status writes.

A partition is decided on when it is created (kopf's handler, `place`) and whenever the SuperPod's daemon
retries the queue (`retry_pending`). Either way one pass of `queuepass` runs under the SuperPod's lock: the
order of the queue (within quota share first, then priority, then age; backfill; a reservation for a head
that waited long), quotas, and preemption, on the allocator in memory. The statuses are written after the
lock is released. A preemption is carried out by `preemptions`: the victims' pods are evicted and the
preemptor's placement is written only once they are gone (`preemptions.advance`, at each daemon pass). A
partition the SuperPod is too fragmented for may be placed by moving others (`moves`); a moved partition
whose pods run is carried out by `podmoves` (its pods evicted first, at each daemon pass).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import cast

from superpod import placement
from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.controller import (
    clusterfacts,
    compactor,
    eviction,
    partitions,
    podmoves,
    preemptions,
    queuepass,
    relocation,
    superpodstate,
    tenants,
)
from superpod.controller import status as derive
from superpod.metrics import instruments
from superpod.placement import queue

JSON = common.JSON
SuperPodState = superpodstate.SuperPodState
logger = logging.getLogger(__name__)


class Scheduler:
    """Admission passes over the SuperPods' pending partitions, and the preemptions they start."""

    def __init__(self, writes: partitions.Partitions) -> None:
        self.writes = writes
        self.superpods = writes.superpods
        self.partitions = writes.partitions
        self.statuses = writes.statuses
        self.serial = writes.serial
        self.facts = clusterfacts.ClusterFacts(writes.statuses.api)
        self.evictions = eviction.Evictions(writes.statuses.api)
        self.moves = podmoves.PodMoves(writes, self.evictions)
        self.compactor = compactor.Compactor(writes)
        self.clock = time.time  # seconds: partitions' ages and how long they wait

    async def place(self, obj: JSON) -> JSON:
        """Place a new partition (the owner's `partitionevents`, kopf's create/resume handler); returns the
        status it now has. One the SuperPod's daemon has decided on meanwhile (the queue holds every new
        partition too, and each placement wakes the daemon) is left as that decision wrote it."""
        view = views.Partition(obj)
        state = self.superpods.get(view.superpod)
        async with self.serial.hold(view.key):
            obj = views.newest(obj, self.partitions.get(view.key)) or obj
            if views.Partition(obj).handled:
                return dict(views.Partition(obj).status)
            obj = await self.writes.protect(obj)
            if state is None:
                reason = api_partition.PendingReason.SUPER_POD_NOT_FOUND
                message = f"SuperPod {view.superpod} does not exist; the partition waits for it"
                return await self.writes.pending(obj, reason, message)
            return await self._place(state, obj)

    async def _place(self, state: SuperPodState, obj: JSON) -> JSON:
        """Decide under the SuperPod's lock (plan, commit in memory), then write the status outside it."""
        view = views.Partition(obj)
        key = view.key
        decided = await self._decide(state, [key], {key: obj})
        if decided is None:
            message = state.model.error or f"SuperPod {state.name} has no usable nodes yet"
            return await self.writes.pending(obj, api_partition.PendingReason.SUPER_POD_NOT_READY, message)
        allocator, outcome = decided
        if outcome.ledger.quotas.enabled:
            state.poke()  # the SuperPod's status counts what waits, per quota
        return await self._apply(state, allocator, outcome, obj)

    async def _facts(self, state: SuperPodState) -> queuepass.Facts:
        """PriorityClasses (the watch's copy), and the labels of the namespaces of the SuperPod's partitions when
        a quota selects namespaces by label (read before the SuperPod's lock is taken: they are API reads)."""
        classes = self.facts.priority_classes()
        labels: dict[str, dict[str, str] | None] = {}
        if tenants.needs_namespace_labels(state.model.spec):
            for obj in self.partitions.values():
                view = views.Partition(obj)
                if view.superpod == state.name and view.namespace not in labels:
                    labels[view.namespace] = await self.facts.namespace_labels(view.namespace)
        return queuepass.Facts(classes, labels)

    async def _decide(
        self, state: SuperPodState, keys: list[str], given: Mapping[str, JSON] | None = None
    ) -> tuple[placement.Allocator, queuepass.Pass] | None:
        """One admission pass over `keys` under the SuperPod's lock; None when the SuperPod is not ready
        (the keys wait in its queue). `given`: copies of partitions the mirror may not have seen yet."""
        facts = await self._facts(state)
        async with state.lock:
            # read under the lock: a partition deleted (and forgotten) while this pass waited for it is not
            # placed from a stale copy; the mirror's own map, not a copy of it (nothing awaits in the pass)
            mirror = cast(dict[str, JSON], self.partitions)
            objects: Mapping[str, JSON] = collections.ChainMap(dict(given or {}), mirror)
            allocator = state.allocator
            if allocator is None:
                for key in keys:
                    obj = objects.get(key)
                    if obj is not None:
                        state.pending.add(key, views.Partition(obj).created)
                return None
            now = self.clock()
            tenancy = queuepass.Tenancy(state.model.spec, queuepass.usable_devices(allocator), facts)
            since = {key: state.waiting_since.setdefault(key, now) for key in keys}
            started = time.perf_counter()
            # the usual case first: no quotas and everything fits, decided without reading every placed partition
            outcome = queuepass.run_fitting(allocator, tenancy, objects, keys, now=now, since=since)
            if outcome is None:
                outcome = queuepass.run(
                    allocator, tenancy, objects, keys, now=now, since=since, moving=state.moving
                )
            instruments.observe_placement(time.perf_counter() - started)
            self._defragment(state, allocator, outcome, objects)
            for decision in outcome.decisions:
                key = decision.workload.id
                if key in outcome.moves and not outcome.moves[key].reserved:
                    state.pending.remove(key)
                    state.waiting_since.pop(key, None)
                elif key in outcome.moves:  # it waits in the queue until the moved partitions' pods are gone
                    state.pending.add(key, views.Partition(objects[key]).created)
                elif isinstance(decision, queue.Admit):
                    state.pending.remove(key)
                    state.waiting_since.pop(key, None)
                    if decision.victims:
                        state.preempting[key] = superpodstate.Preempting(
                            key, decision.placement, decision.victims, decision.reclaimed
                        )
                else:
                    state.pending.add(key, views.Partition(objects[key]).created)
            for refused in outcome.refused:
                if refused.failed:
                    state.pending.remove(refused.key)
                else:
                    state.pending.add(refused.key, views.Partition(objects[refused.key]).created)
            # what waits, per quota (the SuperPod's status.quotas); without quotas nothing reads it, and the
            # queue holds every new partition of a burst: counted at every pass, it made a burst quadratic
            queued = state.pending.keys() if outcome.ledger.quotas.enabled else ()
            for key in queued:
                obj = objects.get(key)
                if obj is not None:
                    tenant = tenancy.tenant(views.Partition(obj))
                    outcome.waiting[tenant] = outcome.waiting.get(tenant, 0) + 1
            state.tenancy = outcome
        if outcome.ledger.quotas.enabled:
            instruments.count_preemptions(state.name)  # counted from 0, so that rates start at once
        return allocator, outcome

    async def _apply(
        self, state: SuperPodState, allocator: placement.Allocator, outcome: queuepass.Pass, obj: JSON
    ) -> JSON:
        """Write what the pass decided for one partition."""
        view = views.Partition(obj)
        key = view.key
        fields = outcome.tenancy.get(key)
        refused = next((r for r in outcome.refused if r.key == key), None)
        if refused is not None and refused.failed:
            invalid = refused.message
            return await self.statuses.write(
                obj,
                lambda previous, now: derive.failed(
                    invalid, previous=previous, generation=view.generation, now=now
                ),
            )
        waits = refused is not None or any(
            isinstance(decision, queue.Wait) for decision in outcome.decisions if decision.workload.id == key
        )
        if waits and key not in outcome.moves and _placed(state, key):
            # placed by another pass since this one decided it waits (kopf's handler and the daemon's pass
            # race for a new partition): the wait is stale, and writing it would hide devices it holds
            return await self.writes.refresh(state, self.partitions.get(key) or obj, fields)
        if refused is not None:
            return await self.writes.pending(obj, refused.reason, refused.message, fields)
        plan = outcome.moves.get(key)
        if plan is not None:
            if not await self.writes.write_moves(state, allocator, obj, plan):
                message = "a partition moved to make room for it got a pod"
                return await self.writes.pending(obj, api_partition.PendingReason.FRAGMENTED, message, fields)
            if plan.reserved:
                await self.moves.begin(state, plan.reserved)
                message = relocation.making_room(
                    [entry.key for entry in plan.reserved], [move.partition_id for move in plan.deferred]
                )
                return await self.writes.pending(obj, api_partition.PendingReason.FRAGMENTED, message, fields)
            return await self.writes.write_placement(state, allocator, obj, plan.placement, fields)
        for decision in outcome.decisions:
            if decision.workload.id != key:
                continue
            if isinstance(decision, queue.Wait):
                return await self.writes.pending(obj, decision.reason, decision.message, fields)
            if decision.victims:
                reclaimed = len(decision.reclaimed)
                instruments.count_preemptions(
                    state.name, priority=len(decision.victims) - reclaimed, reclaim=reclaimed
                )
                priorities = {k: w.priority for k, w in outcome.before.items()}
                evicting = await preemptions.begin(
                    self.statuses, self.partitions, obj, decision, priorities, self.evictions
                )
                preemptions.retry_evictions(state, evicting.retry_in)
                state.poke()
                return dict(views.Partition(self.partitions.get(key) or obj).status)
            return await self.writes.write_placement(state, allocator, obj, decision.placement, fields)
        if key in state.preempting or view.evicting:
            return dict(view.status)
        # already placed (another pass placed it and may not have written it yet): the same fields as that
        # write, so that a status read in between already shows them
        return await self.writes.refresh(state, obj, fields)

    async def retry_pending(self, state: SuperPodState) -> int:
        """A daemon pass: `retry` the queue, then background compaction if it is due (`compactor`)."""
        placed = await self.retry(state)
        await self.compactor.run(state)
        return placed

    async def retry(self, state: SuperPodState) -> int:
        """Finish preemptions whose victims' pods are gone, then one admission pass over the pending
        partitions that are due; returns how many were placed.

        A partition whose status write raises waits with a backoff of its own (`partitionqueue`) while the
        others are written.
        """
        await preemptions.advance(self.writes, self.evictions, state)
        await self.moves.advance(state)
        due = []
        for key in state.pending.due(time.monotonic()):
            obj = self.partitions.get(key)
            if obj is None or views.Partition(obj).deleting:
                state.pending.remove(key)
                state.waiting_since.pop(key, None)
                continue
            due.append(key)
        if not due and not tenants.quota_specs(state.model.spec):
            return 0
        decided = await self._decide(state, due)
        if decided is None:
            return 0
        allocator, outcome = decided
        placed = 0
        for key in due:
            if self.partitions.get(key) is None:  # deleted since the pass: what it was given goes back
                await self._drop(state, outcome, key)
                continue
            async with self.serial.hold(key):
                obj = self.partitions.get(key)  # the newest copy: another write may have come meanwhile
                if obj is None:
                    await self._drop(state, outcome, key)
                    continue
                try:
                    result = await self._apply(state, allocator, outcome, obj)
                except Exception as error:  # whatever failed for this one partition; cancellation passes
                    delay = state.pending.failed(key, time.monotonic())
                    asyncio.get_running_loop().call_later(delay, state.poke)
                    instruments.count_reconcile_error("partition")
                    logger.warning("partition %s: %s; trying it again in %.0f s", key, error, delay)
                    continue
            state.pending.succeeded(key)
            if result.get("phase") == api_partition.Phase.ALLOCATED.value:
                placed += 1
        await self._sync_borrowing(state, outcome, set(due))
        return placed

    def _defragment(
        self,
        state: SuperPodState,
        allocator: placement.Allocator,
        outcome: queuepass.Pass,
        objects: Mapping[str, JSON],
    ) -> None:
        """A partition left Fragmented by the pass may be placed by moving others (controller/moves.py); one
        that moves in flight make room for waits for them."""
        if not any(isinstance(decision, queue.Wait) for decision in outcome.decisions):
            return
        making_room = self.moves.making_room_for(state)
        for index, decision in enumerate(outcome.decisions):
            if not isinstance(decision, queue.Wait):
                continue
            key = decision.workload.id
            if key in making_room:  # the reserved devices count as held: it may look short of devices
                later = [
                    name for entry in state.moving.values() if entry.target == key for name in entry.then
                ]
                message = relocation.making_room(sorted(making_room[key]), sorted(set(later)))
                outcome.decisions[index] = dataclasses.replace(
                    decision, reason=api_partition.PendingReason.FRAGMENTED, message=message
                )
                continue
            if decision.reason != api_partition.PendingReason.FRAGMENTED:
                continue
            request = placement.PlacementRequest.from_spec(views.Partition(objects[key]).parse_spec())
            plan, why = self.writes.mover.plan(state.body, allocator, objects, key, request, state.moving)
            if plan is not None:
                outcome.moves[key] = plan
                for entry in plan.reserved:
                    state.moving[entry.key] = entry
            else:
                outcome.decisions[index] = dataclasses.replace(
                    decision, message=f"{decision.message}; no moves: {why}"
                )

    async def _drop(self, state: SuperPodState, outcome: queuepass.Pass, key: str) -> None:
        for decision in outcome.decisions:
            if decision.workload.id == key and isinstance(decision, queue.Admit):
                async with state.lock:
                    state.preempting.pop(key, None)
                    if (
                        state.allocator is not None
                        and state.allocator.placement_of(key) == decision.placement
                    ):
                        state.allocator.release(key)
                state.poke()

    async def _sync_borrowing(self, state: SuperPodState, outcome: queuepass.Pass, decided: set[str]) -> None:
        """Placed partitions show whether their quota borrows, which changes as others come and go."""
        if not outcome.ledger.quotas.enabled:
            return
        for key, fields in outcome.tenancy.items():
            obj = self.partitions.get(key)
            if key in decided or obj is None or key not in outcome.ledger.charged:
                continue
            view = views.Partition(obj)
            if view.evicting or key in state.preempting or not view.placed:
                continue
            if all(view.status.get(name) == value for name, value in fields.items()):
                continue
            async with self.serial.hold(key):
                await self.statuses.write(obj, _constant(fields))


def _placed(state: SuperPodState, key: str) -> bool:
    """`key` holds devices in its SuperPod's allocator now."""
    return state.allocator is not None and state.allocator.placement_of(key) is not None


def _constant(fields: JSON) -> Callable[[JSON | None, str], JSON]:
    """A status computation that writes `fields` whatever the status was."""
    return lambda previous, now: dict(fields)
