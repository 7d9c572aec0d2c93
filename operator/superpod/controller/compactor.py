"""Background compaction (`spec.defragmentation.compactAbove`): reopen whole nodes (or racks) by moving what
has no running pod.

At a pass of the SuperPod's daemon, at most every `every` seconds per SuperPod, while the fragmentation of
the SuperPod's `compactTier` (node by default) is above `compactAbove`: the pure core
(`placement.compaction.plan_compaction`) picks the touched domains with the fewest held devices whose
holders may all move and sends their slots into domains already touched, never widening a partition's span.
Only partitions without a pod bound to any slot move (whatever the policy beyond Never: compaction never
evicts), within what is left of `maxMovesPerHour` (shared with the moves that make room for a Fragmented
partition), and not while such a move is under way. The moves are carried out in memory under the
SuperPod's lock in the plan's safe order, then written as `moves.Mover.write` writes moves made at once (a
new allocation, ranks in order, a Moving condition False Moved and a Moved Event); a pod bound to a moved
partition meanwhile puts that move back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from superpod import placement
from superpod.api import common, reasons, views
from superpod.controller import moves, partitions, superpodstate
from superpod.metrics import instruments
from superpod.placement import compaction, mobility
from superpod.placement import moves as placement_moves

JSON = common.JSON
EVERY = 10.0  # seconds between two compaction passes of one SuperPod
logger = logging.getLogger(__name__)


class Compactor:
    """Compaction passes over the SuperPods the replica owns."""

    def __init__(
        self, writes: partitions.Partitions, every: float = EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.writes = writes
        self.partitions = writes.partitions
        self.mover = writes.mover
        self.every = every
        self.clock = clock
        self.last: dict[str, float] = {}  # SuperPod -> when its last pass ran
        self.refused: dict[str, str] = {}  # SuperPod -> the spec problem last reported

    async def run(self, state: superpodstate.SuperPodState) -> int:
        """One compaction pass if one is due; how many partitions moved."""
        view = views.SuperPod(state.body)
        threshold = view.compact_above
        if threshold is None or view.defragmentation_policy == mobility.Policy.NEVER.value or state.moving:
            return 0
        now = self.clock()
        if now - self.last.get(state.name, float("-inf")) < self.every:
            return 0
        self.last[state.name] = now
        tier = view.compact_tier
        refusal: str | None = None
        async with state.lock:
            allocator = state.allocator
            if allocator is None:
                return 0
            left = self.mover.left_this_hour(state.name, view.max_moves_per_hour)
            if left == 0:
                return 0
            try:
                planned = compaction.plan_compaction(
                    allocator,
                    self._workloads(allocator),
                    threshold=threshold,
                    max_moves=left,
                    tier=tier,
                    policy=mobility.Policy.UNBOUND,
                )
            except ValueError as error:
                refusal, planned = f"spec.defragmentation.compactTier: {error}", ()
            before = allocator.capacity().fragmentation_by_tier
            done: list[placement_moves.Move] = []
            for move in planned:  # each move's new devices were free before the plan (no chains)
                if isinstance(allocator.relocate(move.partition_id, move.after), placement.Conflict):
                    break  # cannot happen under the lock; stop rather than guess
                done.append(move)
            after = allocator.capacity().fragmentation_by_tier
            self.mover.made.setdefault(state.name, collections.deque()).extend(now for _ in done)
        if refusal is not None:
            await self._refuse(state, refusal)
        if not done:
            return 0
        tier_name = tier or "node"
        ratio = dict(before).get(tier_name, 0.0)
        instruments.count_moves(
            state.name,
            "Compact",
            partitions=len(done),
            devices=sum(move.devices_moved for move in done),
            before=before,
            after=after,
        )
        purpose = f"reopen whole {tier_name}s (compaction: {tier_name} fragmentation {ratio:.2f} is above {threshold:g})"
        logger.info("%s: compaction moves %d partition(s): %s", state.name, len(done), purpose)
        failed = await self.mover.write(
            done, purpose, self.partitions, lambda obj: superpodstate.rank_table_name(state, obj)
        )
        if failed:
            async with state.lock:
                if state.allocator is allocator:
                    moves.undo(allocator, failed)
        state.poke()
        asyncio.get_running_loop().call_later(self.every, state.poke)  # more may be due then
        return len(done) - len(failed)

    def _workloads(self, allocator: placement.Allocator) -> dict[str, mobility.Workload]:
        """The placed partitions that compaction may move: no pod bound, not going, not moving, not evicted
        (the others are left out, so they stay where they are)."""
        found = {}
        for key in allocator.partitions:
            obj = self.partitions.get(key)
            if obj is None:
                continue
            view = views.Partition(obj)
            if view.deleting or view.move is not None or view.evicting or view.any_bound:
                continue
            found[key] = mobility.Workload(running_pods=0)
        return found

    async def _refuse(self, state: superpodstate.SuperPodState, message: str) -> None:
        """Report a compaction setting that cannot be used, once per message, as a Warning Event."""
        if self.refused.get(state.name) == message:
            return
        self.refused[state.name] = message
        logger.warning("SuperPod %s: %s", state.name, message)
        await self.writes.events.event(
            state.body, reason=reasons.EventReason.COMPACTION_REFUSED, message=message, warning=True
        )
