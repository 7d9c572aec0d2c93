"""The books against the record: what the allocator holds for each partition, checked against its status.

Allocations live in partition status (the record); the allocator in memory (the books) is ahead of the record
only while a decision is on its way to it. Should the two disagree for longer (a defect, or a write whose outcome
the operator never learned), the SuperPod's status would count devices that no partition shows, and those devices
would serve nobody until the next restart. So the SuperPod's daemon, on the replica that owns it, compares them at
most every `EVERY` seconds (`Audit.run`): for each partition the allocator holds, the devices it holds against the
devices its status names. A difference found at two audits in a row, on the same placement in memory and the same
copy of the partition, with no write of that partition under way at either, is no decision in flight, and is put
right with the partition's own lock held:

- the partition is gone (the API answers 404): its devices are released, as its deletion would have released them
  (a placement made for a copy of a partition that was deleted meanwhile, after its deletion had been handled);
- it exists: the books' placement is written into its status (the refresh that follows a write whose reply was
  lost), so what the SuperPod counts is what its partitions show. Nothing is taken from anyone: the devices were
  the partition's in memory, and no other partition was given them.

A partition being moved, preempting, in conflict, or being deleted is left out: its status is written by its own
machinery, which keeps memory and status in line (`podmoves`, `preemptions`, `restore`, `inuse`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Mapping

from superpod import placement
from superpod.api import common, views
from superpod.cluster import writer
from superpod.controller import partitions, relocation, superpodstate

JSON = common.JSON
EVERY = 30.0  # seconds between two audits of one SuperPod
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Drift:
    """A partition whose devices in memory are not the ones its status names."""

    key: str
    held: placement.Placement  # what the allocator holds (the object itself: a new decision is another one)
    version: str | None  # resourceVersion of the copy compared with; None: the partition is not in the mirror
    recorded: int  # devices its status names


Seen = tuple[
    placement.Placement, str | None
]  # a placement in memory, and the copy of its partition it matched


def drifts(
    allocator: placement.Allocator,
    partitions: Mapping[str, JSON],
    skip: Collection[str] = (),
    in_line: Mapping[str, Seen] | None = None,
) -> tuple[dict[str, Drift], dict[str, Seen]]:
    """The partitions the allocator holds whose status (in `partitions`, the mirror) names other devices, or that
    are not there at all, and the ones in line. `skip` and moves' reservations are left out, and so are
    partitions being deleted; a partition `in_line` at the last audit, with the same placement and the same
    copy, is not compared again (an audit of a quiet SuperPod costs a lookup per partition)."""
    found: dict[str, Drift] = {}
    matched: dict[str, Seen] = {}
    before = in_line or {}
    for key, held in allocator.partitions.items():
        if key in skip or relocation.is_reservation(key):
            continue
        obj = partitions.get(key)
        if obj is None:
            found[key] = Drift(key, held, None, 0)
            continue
        view = views.Partition(obj)
        if view.deleting:
            continue
        version = view.metadata.get("resourceVersion")
        last = before.get(key)
        if last is not None and last[0] is held and last[1] == version:
            matched[key] = last
            continue
        recorded = sorted(
            f"{slot.get('node')}/{device}" for slot in view.allocation for device in slot.get("devices") or ()
        )
        if recorded == sorted(held.device_ids()):
            matched[key] = (held, version)
        else:
            found[key] = Drift(key, held, version, len(recorded))
    return found, matched


class Audit:
    """Audits of the SuperPods this replica owns; remembers each SuperPod's last findings."""

    def __init__(
        self,
        reconciler: partitions.Partitions,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconciler = reconciler
        self.partitions = reconciler.partitions
        self.every = every
        self.clock = clock
        self.last: dict[str, tuple[float, dict[str, Drift]]] = {}  # SuperPod -> when, and what it found
        self.in_line: dict[str, dict[str, Seen]] = {}  # SuperPod -> partitions found in line

    async def run(self, state: superpodstate.SuperPodState) -> int:
        """One audit of the SuperPod if one is due; how many partitions were put right."""
        now = self.clock()
        at, before = self.last.get(state.name, (float("-inf"), {}))
        if now - at < self.every:
            return 0
        allocator = state.allocator
        if allocator is None:
            self.forget(state.name)
            return 0
        found, self.in_line[state.name] = drifts(
            allocator, self.partitions, self._busy(state), self.in_line.get(state.name)
        )
        self.last[state.name] = (now, found)
        settled = 0
        for key, drift in found.items():
            seen = before.get(key)
            if seen is not None and seen.held is drift.held and seen.version == drift.version:
                settled += await self._settle(state, drift)
        return settled

    def forget(self, superpod: str) -> None:
        self.last.pop(superpod, None)
        self.in_line.pop(superpod, None)

    def _busy(self, state: superpodstate.SuperPodState) -> set[str]:
        """Partitions whose status others write, and the ones with a write under way (their lock is taken)."""
        return _theirs(state) | set(self.reconciler.serial.keys())

    async def _settle(self, state: superpodstate.SuperPodState, drift: Drift) -> int:
        key = drift.key
        async with self.reconciler.serial.hold(key):
            if key in _theirs(state) or not self._holds(state, drift):
                return 0
            obj = self.partitions.get(key)
            if obj is None:
                namespace, _, name = key.partition("/")
                if await self.reconciler.statuses.api.get_or_none(writer.partition_path(namespace, name)):
                    return 0  # the mirror has not seen it yet: its arrival restores or verifies it
                if not self._holds(state, drift):
                    return 0
                self.reconciler.drop(state, key)
                logger.warning(
                    "partition %s is gone but %d devices were still held for it (%s); released",
                    key,
                    len(drift.held.device_ids()),
                    ", ".join(drift.held.device_ids()),
                )
                return 1
            held = len(drift.held.device_ids())
            if held != views.Partition(obj).npus:
                return (
                    0  # not a decision for this partition's spec (cannot happen: a new object is forgotten)
                )
            logger.warning(
                "partition %s holds %d devices in memory but its status names %d; writing the status again",
                key,
                held,
                drift.recorded,
            )
            await self.reconciler.refresh(state, obj)
            return 1

    @staticmethod
    def _holds(state: superpodstate.SuperPodState, drift: Drift) -> bool:
        return state.allocator is not None and state.allocator.placement_of(drift.key) is drift.held


def _theirs(state: superpodstate.SuperPodState) -> set[str]:
    """Partitions whose status is written by the machinery that moves, preempts or settles them."""
    return {*state.moving, *state.preempting, *state.conflicts}
