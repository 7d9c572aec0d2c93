"""Moves that make room for a partition the SuperPod is too fragmented for (`Pending` `Fragmented`).

When the allocator answers Fragmented (enough free devices, no placement meets the constraints), `plan` asks
the pure core (`placement.plan_defragmentation`) for the cheapest moves under the SuperPod's
`spec.defragmentation`: its policy, and `maxMovesPerHour` counted over the last hour on this replica. A plan
is carried out in memory under the SuperPod's lock, in the plan's safe order, so no other decision sees the
devices twice.

A partition with no pod bound to any slot moves at once: `write` writes its new allocation (its ranks in the
same order, the rank table rewritten by the bindings loop), a Moving condition and a Moved Event naming the
partition it made room for, and the Fragmented partition is committed in the room left and written placed.
A pod bound to a moved slot between the decision and the write (an admission racing the move) stops the
move: the status is not written and memory is put back.

A partition whose pods run moves only when its `spec.movable` is true and the policy is `Movable`: its new
devices are reserved (`relocation.reserve`), and the rest is `podmoves`'s: its pods are evicted, and once they
are gone it switches to the new devices and the Fragmented partition is placed.

A reservation takes only devices that are free now (or the partition's own). A plan may chain moves: a move
into devices that an earlier move of the plan frees. When the earlier one is a running partition's, its old
devices free only once its pods are gone, so the plan is carried out in stages: the moves up to the first one
that needs such devices begin now; that one and the rest (`Planned.deferred`) wait. Once the stage's pods are
gone and its partitions have switched, the Fragmented partition is planned again (an admission pass): the
devices the next move needs are free then, and it is reserved like any other. So every step uses only devices
that are free or reserved for it, every reservation is of free devices (as a restarted operator holds it again
from `status.move`), and no device is ever used by two pods.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from superpod import placement
from superpod.api import common, reasons, views
from superpod.controller import partitionwrite, relocation
from superpod.controller import status as derive
from superpod.metrics import instruments
from superpod.placement import mobility
from superpod.placement import moves as placement_moves

JSON = common.JSON
HOUR = 3600.0
logger = logging.getLogger(__name__)


class PodBoundMeanwhile(Exception):
    """A pod bound to a partition while it was being moved: the move is not written."""


class Mover:
    """Plans and writes moves; remembers when moves were made, per SuperPod, for the hourly budget."""

    def __init__(
        self, statuses: partitionwrite.StatusWriter, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.statuses = statuses
        self.events = statuses.writer
        self.clock = clock
        self.made: dict[str, collections.deque[float]] = {}  # SuperPod -> when each move was made
        self.given_up: dict[
            str, float
        ] = {}  # partition -> when a move of it was abandoned (not again for an hour)

    def left_this_hour(self, superpod: str, limit: int) -> int:
        made = self.made.setdefault(superpod, collections.deque())
        now = self.clock()
        while made and made[0] <= now - HOUR:
            made.popleft()
        return max(0, limit - len(made))

    def plan(
        self,
        superpod: JSON,
        allocator: placement.Allocator,
        partitions: Mapping[str, JSON],
        key: str,
        request: placement.PlacementRequest,
        busy: Collection[str] = (),
    ) -> tuple[relocation.Planned | None, str]:
        """Under the SuperPod's lock: the moves carried out in memory (and `key` committed when no move waits
        for pods), or None and why not. `busy`: partitions being moved already (they stay where they are)."""
        view = views.SuperPod(superpod)
        policy = mobility.Policy(view.defragmentation_policy)
        if policy is mobility.Policy.NEVER:
            return None, "the SuperPod's defragmentation policy is Never"
        left = self.left_this_hour(view.name, view.max_moves_per_hour)
        if left == 0:
            return None, f"no moves left this hour (maxMovesPerHour {view.max_moves_per_hour})"
        workloads = {}
        now = self.clock()
        for pid, when in list(self.given_up.items()):
            if when <= now - HOUR:
                del self.given_up[pid]
        for pid in allocator.partitions:
            obj = partitions.get(pid)
            if obj is None or pid in busy or pid in self.given_up:
                continue  # unknown here (a reservation), moving, or its last move was given up: stays
            part = views.Partition(obj)
            if part.deleting or part.move is not None or part.evicting:
                continue
            workloads[pid] = mobility.Workload(running_pods=len(part.bound_pods), movable=part.movable)
        found = placement.plan_defragmentation(allocator, request, policy=policy, workloads=workloads)
        if isinstance(found, placement.Rejection):
            return None, found.message
        if len(found.moves) > left:
            return None, (
                f"making room needs {len(found.moves)} moves, {left} left this hour "
                f"(maxMovesPerHour {view.max_moves_per_hour})"
            )
        before = allocator.capacity().fragmentation_by_tier
        done: list[placement_moves.Move] = []
        reserved: list[relocation.InFlight] = []
        deferred: tuple[placement_moves.Move, ...] = ()
        for index, move in enumerate(found.moves):
            if move.pods_disturbed:
                refused = relocation.reserve(allocator, move.partition_id, move.after)
                if refused is not None and _waits_for(refused, reserved):
                    deferred = found.moves[index:]
                    break
                if refused is None:
                    reserved.append(
                        relocation.InFlight(
                            move.partition_id,
                            move.before,
                            move.after,
                            key,
                            move.devices_moved,
                            since=self.clock(),
                        )
                    )
                    continue
            else:
                moved = allocator.relocate(move.partition_id, move.after)
                if not isinstance(moved, placement.Conflict):
                    done.append(move)
                    continue
                if _waits_for(moved, reserved):
                    deferred = found.moves[index:]
                    break
            undo(allocator, done, reserved)
            return None, f"the move of {move.partition_id} was refused"
        for entry in reserved:
            entry.then = tuple(move.partition_id for move in deferred)
        after = allocator.capacity().fragmentation_by_tier
        if not reserved:
            try:
                allocator.commit(key, found.placement)
            except ValueError as error:
                undo(allocator, done, reserved)
                return None, str(error)
        begun = len(found.moves) - len(deferred)
        made = self.made.setdefault(view.name, collections.deque())
        made.extend(self.clock() for _ in range(begun))
        instruments.count_moves(
            view.name,
            "MakeRoom",
            partitions=begun,
            devices=found.devices_moved - sum(move.devices_moved for move in deferred),
            before=before,
            after=after,
        )
        return relocation.Planned(found, tuple(reserved), deferred), ""

    async def write(
        self,
        moved: Sequence[placement_moves.Move],
        purpose: str,
        partitions: Mapping[str, JSON],
        rank_table: Callable[[JSON], str | None],
    ) -> list[placement_moves.Move]:
        """Write each partition moved at once (its status and a Moved Event saying it moved to `purpose`, for
        example "make room for team-a/x"); returns the moves that were not written."""
        failed: list[placement_moves.Move] = []
        for move in moved:
            obj = partitions.get(move.partition_id)
            if obj is None:
                failed.append(move)
                continue
            why = f"moved {move.devices_moved} devices to {purpose}"
            generation = views.Partition(obj).generation
            table = rank_table(obj)

            try:
                written = await self.statuses.write(obj, moved_status(move, why, generation, table))
            except PodBoundMeanwhile:
                logger.warning(
                    "%s: a pod bound while it was moved to %s; the move is abandoned", move, purpose
                )
                failed.append(move)
                continue
            if written:
                await self.events.event(obj, reason=reasons.EventReason.MOVED, message=why)
        return failed


def _waits_for(refused: placement.Conflict, reserved: Sequence[relocation.InFlight]) -> bool:
    """Whether a move was refused only because partitions moved earlier in the plan, whose pods still run,
    hold the devices it needs (they free once those pods are gone)."""
    return bool(refused.held_by) and set(refused.held_by) <= {entry.key for entry in reserved}


def moved_status(
    move: placement_moves.Move, why: str, generation: int | None, rank_table: str | None
) -> Callable[[JSON | None, str], JSON]:
    """The status computation of a partition moved without pods; PodBoundMeanwhile if one bound meanwhile."""

    def compute(previous: JSON | None, now: str) -> JSON:
        if any(slot.get("pod") for slot in (previous or {}).get("allocation") or []):
            raise PodBoundMeanwhile(move.partition_id)
        status = derive.allocated(
            move.after, previous=previous, generation=generation, now=now, rank_table=rank_table
        )
        status["conditions"] = [
            *(c for c in status["conditions"] if c.get("type") != reasons.ConditionType.MOVING),
            moving_condition(previous, why, generation, now),
        ]
        status["move"] = None
        return status

    return compute


def moving_condition(previous: JSON | None, message: str, generation: int | None, now: str) -> JSON:
    """The Moving condition after a move is done (False, Moved)."""
    conditions = (previous or {}).get("conditions")
    reason = reasons.PartitionReason.MOVED
    return derive.condition(conditions, reasons.ConditionType.MOVING, False, reason, message, generation, now)


def undo(
    allocator: placement.Allocator,
    done: list[placement_moves.Move],
    reserved: Collection[relocation.InFlight] = (),
) -> None:
    """Put moves carried out in memory back, latest first, and drop the reservations (best effort: a
    refusal is logged)."""
    for entry in reserved:
        relocation.unreserve(allocator, entry.key)
    for move in reversed(done):
        if isinstance(allocator.relocate(move.partition_id, move.before), placement.Conflict):
            logger.warning("could not put %s back where it was", move.partition_id)
