"""Defragmentation in churn-trace replays (`superpod bench run --defrag POLICY`), and the yardstick it is
judged by.

`Mover` is the replay's rescue: when a create is rejected as Fragmented, it asks `plan_defragmentation`
with the trace's own facts (a partition runs from its create's `at` + `bindAfter`, 30 s by default, with one
pod per slot; `movable` marks a workload that tolerates a restart), carries the moves out on the allocator
and hands the request's placement back. It counts moves, devices moved and its own CPU time.

`device_count_limit` replays the same arrivals and departures on a placement that ignores nodes, pairs and
blocks (a create is accepted while enough devices are free): the most any placement could accept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import defrag, mobility, moves, result, trace


@dataclasses.dataclass(frozen=True)
class Limit:
    """What the device-count limit accepts on a trace."""

    requested: int  # devices of every create
    accepted: int  # devices of the creates it accepted
    held_at_end: int  # devices held when the trace ends

    @property
    def acceptance(self) -> float:
        return self.accepted / self.requested if self.requested else 1.0


def device_count_limit(events: Iterable[trace.Event], usable: int) -> Limit:
    """Accept a create when `usable` minus the devices held covers it, whatever the topology."""
    live: dict[str, int] = {}
    held = requested = accepted = 0
    for event in events:
        if event.op == "delete":
            held -= live.pop(event.id, 0)
        elif event.op == "create":
            requested += event.npus
            if held + event.npus <= usable:
                live[event.id] = event.npus
                held += event.npus
                accepted += event.npus
    return Limit(requested=requested, accepted=accepted, held_at_end=held)


@dataclasses.dataclass
class MoveCounts:
    rescued: int = 0  # Fragmented creates placed after moves
    failed: int = 0  # Fragmented creates that no allowed move could place
    partitions_moved: int = 0
    devices_moved: int = 0
    pods_disturbed: int = 0
    exact: int = 0  # plans the exhaustive search proved cheapest
    cpu_ms: list[float] = dataclasses.field(default_factory=list)  # per plan_defragmentation call


class Mover:
    """The `rescue` of `trace.replay` for one allocator and one policy."""

    def __init__(
        self,
        allocator: placement_allocator.Allocator,
        events: Sequence[trace.Event],
        policy: mobility.Policy,
        *,
        cpu_clock: Callable[[], float] | None = None,
    ) -> None:
        self.allocator = allocator
        self.policy = policy
        self.cpu_clock = cpu_clock
        self.counts = MoveCounts()
        # a trace id may come back after its delete: the latest create before `at` is the one that is live
        self._creates: dict[str, trace.Event] = {}
        self._events = events
        self._seen = 0

    def __call__(
        self, event: trace.Event, rejection: result.Rejection
    ) -> result.Placement | result.Rejection:
        self._catch_up(event)
        if (
            self.policy is mobility.Policy.NEVER
            or rejection.reason is not api_partition.PendingReason.FRAGMENTED
        ):
            return rejection
        workloads = {pid: self._workload(pid, event.at) for pid in self.allocator.partitions}
        started = self.cpu_clock() if self.cpu_clock else 0.0
        outcome = defrag.plan_defragmentation(
            self.allocator, event.request(), policy=self.policy, workloads=workloads
        )
        if self.cpu_clock:
            self.counts.cpu_ms.append((self.cpu_clock() - started) * 1000.0)
        if isinstance(outcome, result.Rejection):
            self.counts.failed += 1
            return outcome
        moves.carry_out(self.allocator, outcome.moves)
        counts = self.counts
        counts.rescued += 1
        counts.partitions_moved += outcome.partitions_moved
        counts.devices_moved += outcome.devices_moved
        counts.pods_disturbed += outcome.pods_disturbed
        counts.exact += outcome.exact
        return outcome.placement

    def _catch_up(self, event: trace.Event) -> None:
        """Record every create up to this one (the replay hands over rejections only)."""
        while self._seen < len(self._events):
            seen = self._events[self._seen]
            self._seen += 1
            if seen.op == "create":
                self._creates[seen.id] = seen
            if seen is event:
                break

    def _workload(self, pid: str, now: float) -> mobility.Workload:
        create = self._creates[pid]
        bind_after = trace.BIND_AFTER if create.bind_after is None else create.bind_after
        placed = self.allocator.placement_of(pid)
        running = now >= create.at + bind_after
        pods = len(placed.slots) if placed is not None and running else 0
        return mobility.Workload(running_pods=pods, movable=create.movable)
