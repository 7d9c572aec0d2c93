"""Moves of partitions whose pods run: the devices reserved for them, and the statuses that record them. Pure.

A partition moved while its pods run (`spec.movable`, the SuperPod's policy `Movable`) holds two sets of
devices until its pods are gone: its old ones, which the pods still use, and the new ones, reserved for it.
The reservation is a holder of its own in the allocator, under `reservation_key(partition)`, for the new
devices the partition does not already hold, so no decision in between can give them away; the
partition's `status.move` records it, so a restarted operator holds both again (`reserve`). Once the pods
are gone, `switch` releases the reservation and moves the partition onto its new devices in one step under
the SuperPod's lock; its old devices are free from then on.

`InFlight` is the memory of one such move on the replica that owns the SuperPod; the status functions
derive what is written at each step (`moving`, `blocked`, `moved`, `abandoned`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from superpod import placement
from superpod.api import common, reasons
from superpod.controller import status as derive
from superpod.placement.moves import Move, Moves

JSON = common.JSON
Condition = reasons.ConditionType
Reason = reasons.PartitionReason
RESERVED = "#moving"  # never part of a partition key (names cannot hold '#')


@dataclasses.dataclass
class InFlight:
    """A partition moved while its pods run, on the replica that carries the move out."""

    key: str
    before: placement.Placement
    after: placement.Placement  # slot i of `before` moves to slot i here
    target: str | None  # the partition (namespace/name) it makes room for
    devices_moved: int
    since: float = 0.0  # when this replica began (or took up) the move, on its monotonic clock
    recorded: bool = False  # its status.move is written: its pods may be evicted
    switched: bool = False  # memory holds `after`; the status write that says so is under way
    blocked: tuple[tuple[str, str], ...] = ()  # the evictions refused at the last look (pod, why)
    then: tuple[str, ...] = ()  # partitions of the same plan that move once this stage is done (a chain)

    @property
    def blocked_text(self) -> str:
        if not self.blocked:
            return "no eviction was refused at the last look"
        pod, why = self.blocked[0]
        return f"the eviction of {pod} was refused: {why}"


@dataclasses.dataclass(frozen=True)
class Planned:
    """A plan carried out in memory: the moves done at once, and the running partitions whose new devices are
    reserved; `deferred`, the plan's moves from the first one that needs devices a reserved partition's pods
    still use (a chain): they are planned again once those pods are gone. The Fragmented partition is
    committed in memory only when no move waits for pods."""

    plan: Moves
    reserved: tuple[InFlight, ...]
    deferred: tuple[Move, ...] = ()

    @property
    def placement(self) -> placement.Placement:
        return self.plan.placement

    @property
    def at_once(self) -> tuple[Move, ...]:
        waiting = {entry.key for entry in self.reserved} | {move.partition_id for move in self.deferred}
        return tuple(move for move in self.plan.moves if move.partition_id not in waiting)


def making_room(moving: Sequence[str], then: Sequence[str] = ()) -> str:
    """The message of a partition waiting for the partitions moved for it (`moving`), and for the moves of
    its plan that follow them (`then`, a chain)."""
    names = ", ".join(moving)
    if then:
        return (
            f"making room: moving {names}; once their pods, being evicted, are gone, {', '.join(then)} "
            "move into the devices they free, then it is placed"
        )
    return f"making room: moving {names}; it is placed once their pods, being evicted, are gone"


def reservation_key(key: str) -> str:
    return key + RESERVED


def is_reservation(holder: str) -> bool:
    return holder.endswith(RESERVED)


def reserve(
    allocator: placement.Allocator, key: str, after: placement.Placement
) -> placement.Conflict | None:
    """Hold `after`'s devices that `key` does not hold already for it; a Conflict (nothing held) when one is
    held by another partition or reservation. The caller checked they are free and healthy (a plan, or a
    status the operator wrote)."""
    held_now = allocator.placement_of(key)
    own = set(held_now.device_ids()) if held_now is not None else set()
    slots = [
        placement.PlacedSlot(slot.rank, slot.node, kept, {})
        for slot in after.slots
        if (kept := tuple(device for device in slot.devices if f"{slot.node}/{device}" not in own))
    ]
    held = reservation_key(key)
    allocator.release(held)
    if not slots:
        return None
    outcome = allocator.restore(held, slots)
    return outcome if isinstance(outcome, placement.Conflict) else None


def unreserve(allocator: placement.Allocator, key: str) -> None:
    allocator.release(reservation_key(key))


def switch(allocator: placement.Allocator, key: str, after: placement.Placement) -> placement.Conflict | None:
    """The pods are gone: `key` leaves its old devices for `after` (reservation released first). On a
    Conflict (a new device failed meanwhile) it keeps its old devices and the reservation is gone."""
    unreserve(allocator, key)
    outcome = allocator.relocate(key, after)
    return outcome if isinstance(outcome, placement.Conflict) else None


def after_from_status(allocator: placement.Allocator, key: str, move: JSON) -> placement.Placement:
    """The placement `status.move.allocation` records for `key`; ValueError when it is not one."""
    slots = sorted(move.get("allocation") or [], key=lambda slot: int(slot.get("rank", 0)))
    return allocator.relocated(key, [(str(slot["node"]), list(slot.get("devices") or ())) for slot in slots])


def hold_recorded(allocator: placement.Allocator, key: str, move: JSON | None) -> bool:
    """Hold the new devices `status.move` (`move`) records for `key`, as the replica moving it does, unless
    they are held already. False when the status names no move, is unreadable, or a device is held by someone
    else (the replica carrying the move out gives it up)."""
    if move is None:
        return False
    if allocator.placement_of(reservation_key(key)) is not None:
        return True
    try:
        after = after_from_status(allocator, key, move)
    except (ValueError, KeyError, TypeError):
        return False
    return reserve(allocator, key, after) is None


def reserved_for(holder: str) -> str | None:
    """The partition a reservation holder (`reservation_key`) holds devices for; None for any other holder."""
    return holder.removesuffix(RESERVED) if is_reservation(holder) else None


def moved_devices(before: placement.Placement, after: placement.Placement) -> int:
    return sum(
        len(new.devices)
        for old, new in zip(before.slots, after.slots, strict=True)
        if (old.node, old.devices) != (new.node, new.devices)
    )


# ---- statuses ------------------------------------------------------------------------------------------------


def _moving_condition(
    previous: JSON | None, active: bool, reason: str, message: str, generation: int | None, now: str
) -> list[JSON]:
    conditions = (previous or {}).get("conditions") or []
    flag = derive.condition(conditions, Condition.MOVING, active, reason, message, generation, now)
    return [*(c for c in conditions if c.get("type") != Condition.MOVING), flag]


def moving(
    in_flight: InFlight, message: str, *, previous: JSON | None, generation: int | None, now: str
) -> JSON:
    """The move begins: `status.move` records the reserved devices; the Moving condition is True (MakingRoom).
    The allocation stays as it is: its pods still use those devices."""
    allocation = [
        slot.to_api().model_dump(by_alias=True, exclude_none=True) for slot in in_flight.after.slots
    ]
    started = ((previous or {}).get("move") or {}).get("started") or now
    return {
        "move": {"allocation": allocation, "forPartition": in_flight.target, "started": started},
        "conditions": _moving_condition(previous, True, Reason.MAKING_ROOM, message, generation, now),
    }


def blocked(message: str, *, previous: JSON | None, generation: int | None, now: str, refused: bool) -> JSON:
    """The Moving condition while the pods are evicted: EvictionBlocked when an eviction was refused."""
    reason = Reason.EVICTION_BLOCKED if refused else Reason.MAKING_ROOM
    return {"conditions": _moving_condition(previous, True, reason, message, generation, now)}


def moved(
    after: placement.Placement,
    message: str,
    *,
    previous: JSON | None,
    generation: int | None,
    now: str,
    rank_table: str | None,
) -> JSON:
    """The move is done: the partition holds `after`, no slot has a pod (they are all gone), no `move`."""
    emptied = dict(previous or {})
    emptied["allocation"] = [
        {k: v for k, v in slot.items() if k != "pod"} for slot in emptied.get("allocation") or []
    ]
    status = derive.allocated(after, previous=emptied, generation=generation, now=now, rank_table=rank_table)
    status["conditions"] = _moving_condition(
        {"conditions": status["conditions"]}, False, Reason.MOVED, message, generation, now
    )
    status["move"] = None
    return status


def abandoned(message: str, *, previous: JSON | None, generation: int | None, now: str) -> JSON:
    """The move is given up: no `move`, the Moving condition False (MoveAbandoned); the allocation stays."""
    reason = Reason.MOVE_ABANDONED
    return {
        "move": None,
        "conditions": _moving_condition(previous, False, reason, message, generation, now),
    }


def targets(in_flight: Sequence[InFlight]) -> set[str]:
    return {entry.target for entry in in_flight if entry.target}
