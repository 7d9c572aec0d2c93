"""Carrying out a move of a partition whose pods run: reserve, evict, switch, then place what it made room for.

`moves.Mover.plan` reserved the new devices in memory (`relocation.reserve`) under the SuperPod's lock. Then,
in this order, so that no device is ever used by two partitions and none is lost at any step:

1. `begin`: the moved partition's `status.move` records the reserved devices, its Moving condition turns True
   (MakingRoom) and an Event `Moving` names the partition it makes room for. From then on its pods are
   refused at admission, and a restarted operator holds its old and its new devices again (restore).
2. `advance`, at every pass of the SuperPod's daemon: its pods are evicted through the Eviction API
   (`eviction.Evictions`: PodDisruptionBudgets hold them back; a refusal turns the condition's reason to
   EvictionBlocked, posts a Warning Event and is asked again with backoff, never bypassed). Only the API's
   pods are trusted: the move goes on once no pod labelled with the partition is left.
3. Once every partition moved for one target has no pod left, under the SuperPod's lock: each leaves its
   old devices for the reserved ones (`relocation.switch`), and the target is placed in the room they left.
   Then each moved partition's status gets its new allocation (slot i to slot i, ranks in order, no pods,
   `move` cleared, Moving False Moved) and an Event `Moved`; its rank table is rewritten by the bindings
   loop and its controller's new pods bind to the new devices. Then the target's placement is written.

A move found in a status with no memory of it (after a restart or a takeover) is finished the same way,
for the partition its `forPartition` names. A move is abandoned (Moving False, MoveAbandoned, a Warning
Event; the partition keeps its devices and its pods bind there again) when its reserved devices cannot be held
again or failed meanwhile, when its owner turns `spec.movable` off while pods of it remain, or when its pods
are not all gone within `TIMEOUT` (a PodDisruptionBudget that never allows a disruption must not keep the
reserved devices from everybody for ever).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pydantic

from superpod import placement
from superpod.api import common, reasons, views
from superpod.controller import eviction, partitions, relocation, superpodstate

JSON = common.JSON
Event = reasons.EventReason
SuperPodState = superpodstate.SuperPodState
POLL = 2.0  # seconds: look again while pods are terminating (their deletion also wakes the daemon)
TIMEOUT = (
    600.0  # seconds a move may wait for its pods to go (on the replica carrying it out) before it is given up
)
logger = logging.getLogger(__name__)


class PodMoves:
    """Moves of running partitions, on the replica that owns their SuperPod."""

    def __init__(
        self,
        writes: partitions.Partitions,
        evictions: eviction.Evictions,
        *,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self.writes = writes
        self.partitions = writes.partitions
        self.statuses = writes.statuses
        self.events = writes.events
        self.serial = writes.serial
        self.evictions = evictions

    async def begin(self, state: SuperPodState, entries: tuple[relocation.InFlight, ...]) -> None:
        """Step 1 for each partition whose new devices were reserved; the daemon's next pass evicts."""
        for index, entry in enumerate(entries):
            obj = self.partitions.get(entry.key)
            message = (
                f"moving {entry.devices_moved} devices to make room for {entry.target}: its pods are evicted "
                "and bind again on the new devices once they are all gone"
            )
            written: JSON = {}
            if obj is not None:
                try:
                    async with self.serial.hold(entry.key):
                        written = await self.statuses.write(obj, _moving(entry, message, obj))
                except Exception:
                    # not recorded (or a lost reply: then the next pass finds the move in the status); the
                    # moves not begun yet go too
                    for dropped in entries[index:]:
                        await self._drop(state, dropped)
                    raise
            if not written:  # gone meanwhile: its reservation goes with it
                await self._drop(state, entry)
                continue
            entry.recorded = True
            logger.info("moving %s for %s", entry.key, entry.target)
            await self.events.event(obj or {}, reason=Event.MOVING, message=message)
        state.poke()

    async def advance(self, state: SuperPodState) -> None:
        """Steps 2 and 3 for every move in flight on the SuperPod (and moves found in statuses only)."""
        for key, why in await self._adopt(state):
            await self._abandon(state, key, why)
        ready: dict[str | None, list[relocation.InFlight]] = {}
        for entry in list(state.moving.values()):
            obj = self.partitions.get(entry.key)
            if obj is None or views.Partition(obj).deleting:
                await self._drop(state, entry)
                continue
            if entry.switched:  # its status write failed last time
                await self._write_moved(state, entry)
                continue
            if not entry.recorded:
                continue  # decided a moment ago: its pods are evicted once status.move says so (`begin`)
            if await self._evict(state, entry, obj):
                ready.setdefault(entry.target, []).append(entry)
            elif not views.Partition(obj).movable:
                await self._abandon(state, entry.key, "spec.movable was turned off while its pods run")
            elif self.clock() - entry.since > self.timeout:
                await self._abandon(
                    state,
                    entry.key,
                    f"its pods were not all gone within {self.timeout:.0f} s ({entry.blocked_text})",
                )
        for target, group in ready.items():
            waiting = [
                e for e in state.moving.values() if e.target == target and not e.switched and e not in group
            ]
            if target in self.partitions and waiting:
                continue  # the room opens at once, when every partition moved for it is ready
            await self._finish(state, target, group)
        if state.moving:
            asyncio.get_running_loop().call_later(POLL, state.poke)

    def making_room_for(self, state: SuperPodState) -> dict[str, list[str]]:
        """Partitions that moves in flight (in memory, or in a status this replica has not taken up yet) make
        room for, and the partitions moved for each."""
        found: dict[str, list[str]] = {}
        for entry in state.moving.values():
            if entry.target:
                found.setdefault(entry.target, []).append(entry.key)
        for key in state.allocator.partitions if state.allocator is not None else ():
            obj = self.partitions.get(key)
            move = views.Partition(obj).move if obj is not None and key not in state.moving else None
            if move and move.get("forPartition"):
                found.setdefault(str(move["forPartition"]), []).append(key)
        return found

    # ---- steps ---------------------------------------------------------------------------------------------

    async def _adopt(self, state: SuperPodState) -> list[tuple[str, str]]:
        """Moves recorded in statuses that this replica has no memory of: held again and carried on; the ones
        that cannot be, to abandon (key, why)."""
        abandon: list[tuple[str, str]] = []
        async with state.lock:
            allocator = state.allocator
            if allocator is None:
                return []
            # reservations, and the partitions with a status.move (the map's index): not every partition held
            reservations = [h for h in allocator.partition_ids() if relocation.is_reservation(h)]
            moving = sorted(k for k in self.partitions.moving if allocator.placement_of(k) is not None)
            for holder in reservations + moving:
                if relocation.is_reservation(holder):
                    key = holder[: -len(relocation.RESERVED)]
                    obj = self.partitions.get(key)
                    if key not in state.moving and (obj is None or views.Partition(obj).move is None):
                        allocator.release(holder)  # left over from a move that is over
                    continue
                obj = self.partitions.get(holder)
                move = views.Partition(obj).move if obj is not None else None
                if holder in state.moving or move is None or views.Partition(obj or {}).deleting:
                    continue
                before = allocator.placement_of(holder)
                assert before is not None
                try:
                    after = relocation.after_from_status(allocator, holder, move)
                except (ValueError, KeyError, TypeError) as error:
                    abandon.append((holder, f"status.move cannot be used: {error}"))
                    continue
                if allocator.placement_of(relocation.reservation_key(holder)) is None:
                    refused = relocation.reserve(allocator, holder, after)
                    if refused is not None:
                        abandon.append((holder, f"its new devices are not free any more: {refused.message}"))
                        continue
                target = move.get("forPartition")
                logger.info("taking up the move of %s for %s recorded in its status", holder, target)
                state.moving[holder] = relocation.InFlight(
                    holder,
                    before,
                    after,
                    str(target) if target else None,
                    relocation.moved_devices(before, after),
                    since=self.clock(),
                    recorded=True,
                )
        return abandon

    async def _evict(self, state: SuperPodState, entry: relocation.InFlight, obj: JSON) -> bool:
        """Evict the partition's pods (again, as `Evictions` paces it); True when none is left."""
        view = views.Partition(obj)
        owner = f"move:{entry.key}"
        pods = await eviction.list_pods(
            self.evictions.api, view.namespace, f"{common.PARTITION_LABEL}={view.name}"
        )
        progress = await self.evictions.evict(owner, pods)
        if progress.evicted:
            message = f"evicted pod(s) {', '.join(progress.evicted)}: the partition moves to make room for {entry.target}"
            await self.events.event(obj, reason=Event.EVICTED, message=message)
        if progress.done:
            self.evictions.forget(owner)
            return True
        if progress.blocked != entry.blocked:
            entry.blocked = progress.blocked
            message = f"moving to make room for {entry.target}: {progress.summary()}"
            refused = bool(progress.blocked)
            async with self.serial.hold(entry.key):
                await self.statuses.write(
                    obj,
                    lambda previous, now: relocation.blocked(
                        message, previous=previous, generation=view.generation, now=now, refused=refused
                    ),
                )
            if refused:
                await self.events.event(obj, reason=Event.EVICTION_BLOCKED, message=message, warning=True)
        if progress.retry_in is not None:
            asyncio.get_running_loop().call_later(progress.retry_in + 0.05, state.poke)
        return False

    async def _finish(
        self, state: SuperPodState, target: str | None, group: list[relocation.InFlight]
    ) -> None:
        """Step 3: switch the group under the lock, place its target there, then write what happened."""
        placed: placement.Placement | None = None
        refused: dict[str, str] = {}
        target_obj = self.partitions.get(target) if target else None
        async with state.lock:
            allocator = state.allocator
            if allocator is None:
                return
            for entry in group:
                conflict = relocation.switch(allocator, entry.key, entry.after)
                entry.switched = True
                if conflict is not None:
                    refused[entry.key] = conflict.message
            if target and target_obj is not None and not views.Partition(target_obj).deleting:
                placed = _place(allocator, target, target_obj)
                if placed is not None:
                    state.pending.remove(target)
                    state.waiting_since.pop(target, None)
        for entry in group:
            try:
                if entry.key in refused:
                    state.moving.pop(entry.key, None)
                    await self._abandon(
                        state, entry.key, f"its new devices could not be taken: {refused[entry.key]}"
                    )
                else:
                    await self._write_moved(state, entry)
            except Exception as error:  # written at the next pass (entry.switched); the target goes on
                logger.warning("%s: the status of its finished move was not written: %s", entry.key, error)
        state.poke()
        if placed is not None and target_obj is not None and state.allocator is not None:
            fields = state.tenancy.tenancy.get(str(target)) if state.tenancy is not None else None
            async with self.serial.hold(str(target)):
                await self.writes.write_placement(state, state.allocator, target_obj, placed, fields)

    async def _write_moved(self, state: SuperPodState, entry: relocation.InFlight) -> None:
        obj = self.partitions.get(entry.key)
        if obj is None:
            state.moving.pop(entry.key, None)
            return
        view = views.Partition(obj)
        why = f"moved {entry.devices_moved} devices to make room for {entry.target}"
        rank_table = superpodstate.rank_table_name(state, obj)
        async with self.serial.hold(entry.key):
            written = await self.statuses.write(
                obj,
                lambda previous, now: relocation.moved(
                    entry.after,
                    why,
                    previous=previous,
                    generation=view.generation,
                    now=now,
                    rank_table=rank_table,
                ),
            )
        if state.moving.get(entry.key) is entry:
            del state.moving[entry.key]
        if written:
            logger.info("moved %s for %s", entry.key, entry.target)
            await self.events.event(obj, reason=Event.MOVED, message=f"{why}; its pods bind there")

    async def _abandon(self, state: SuperPodState, key: str, why: str) -> None:
        """Give the move up: the reservation goes, the partition keeps (or got back) its old devices."""
        self.evictions.forget(f"move:{key}")
        self.writes.mover.given_up[key] = self.clock()
        async with state.lock:
            state.moving.pop(key, None)
            if state.allocator is not None:
                relocation.unreserve(state.allocator, key)
        obj = self.partitions.get(key)
        if obj is None:
            return
        message = f"the move was given up: {why}; the partition keeps its devices"
        logger.warning("%s: %s", key, message)
        generation = views.Partition(obj).generation
        async with self.serial.hold(key):
            await self.statuses.write(
                obj,
                lambda previous, now: relocation.abandoned(
                    message, previous=previous, generation=generation, now=now
                ),
            )
        await self.events.event(obj, reason=Event.MOVE_ABANDONED, message=message, warning=True)
        state.health_dirty = True  # its status is refreshed from memory (the devices it holds)
        state.poke()

    async def _drop(self, state: SuperPodState, entry: relocation.InFlight) -> None:
        """A moved partition is gone: its reservation goes (its own devices go with its release)."""
        async with state.lock:
            if state.moving.get(entry.key) is entry:
                del state.moving[entry.key]
            if state.allocator is not None:
                relocation.unreserve(state.allocator, entry.key)
        self.evictions.forget(f"move:{entry.key}")
        state.poke()


def _moving(entry: relocation.InFlight, message: str, obj: JSON) -> Callable[[JSON | None, str], JSON]:
    generation = views.Partition(obj).generation
    return lambda previous, now: relocation.moving(
        entry, message, previous=previous, generation=generation, now=now
    )


def _place(allocator: placement.Allocator, key: str, obj: JSON) -> placement.Placement | None:
    """Commit the partition the moves made room for, where the allocator now places it (None: not now)."""
    if allocator.placement_of(key) is not None:
        return None
    try:
        request = placement.PlacementRequest.from_spec(views.Partition(obj).parse_spec())
    except pydantic.ValidationError:
        return None
    decision = allocator.plan_partition(request)
    if not isinstance(decision, placement.Placement):
        return None
    allocator.commit(key, decision)
    return decision
