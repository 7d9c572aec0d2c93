"""Defragmentation in churn-trace replays (`superpod bench run --defrag POLICY`), and the yardstick it is
judged by.

`Mover` is the replay's rescue: when a create is rejected as Fragmented, it asks `plan_defragmentation`
with the trace's own facts (a partition runs from its create's `at` + `bindAfter`, 30 s by default, with one
pod per slot; `movable` marks a workload that tolerates a restart), carries the moves out on the allocator
and hands the request's placement back. It counts moves, devices moved and its own CPU time.

With a `Compaction`, the mover also compacts after each departure (`after_event`): while the node
fragmentation exceeds the threshold, `plan_compaction` under the same policy, within a budget of moves per
hour of trace time.

`device_count_limit` replays the same arrivals and departures on a placement that ignores nodes, pairs and
blocks (a create is accepted while enough devices are free): the most any placement could accept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import compaction, defrag, mobility, moves, result, trace


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


@dataclasses.dataclass(frozen=True)
class Compaction:
    """Background compaction in a replay."""

    threshold: float  # fragmentation of the tier above which it runs
    per_hour: int  # partitions it may move per hour of trace time (the rate limit)
    tier: str | None = None  # the tier whose domains it reopens (default: nodes)


@dataclasses.dataclass
class MoveCounts:
    fragmented: int = 0  # creates rejected as Fragmented (under every policy, Never included)
    rescued: int = 0  # Fragmented creates placed after moves
    failed: int = 0  # Fragmented creates that no allowed move could place
    movers: int = 0  # partitions the policy let move, summed over the Fragmented creates it planned for
    whole_node_movers: int = 0  # of those, partitions whose every slot is a whole node
    # at the first Fragmented create: how long ago the youngest partition not made of whole nodes was created
    # (whichever the policy; None before any Fragmented create, or when every partition holds whole nodes)
    youngest_small_age: float | None = None
    partitions_moved: int = 0
    devices_moved: int = 0
    pods_disturbed: int = 0
    exact: int = 0  # plans the exhaustive search proved cheapest
    compaction_moves: int = 0  # partitions moved by background compaction (also in partitions_moved)
    compaction_devices: int = 0
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
        compact: Compaction | None = None,
    ) -> None:
        self.allocator = allocator
        self.compact = compact
        self._compacted: list[tuple[float, int]] = []  # (at, partitions moved) in the last hour
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
        if rejection.reason is not api_partition.PendingReason.FRAGMENTED:
            return rejection
        self.counts.fragmented += 1
        if self.counts.fragmented == 1:
            ages = [
                event.at - self._creates[pid].at
                for pid in self.allocator.partitions
                if not self._whole_nodes(pid)
            ]
            self.counts.youngest_small_age = round(min(ages), 1) if ages else None
        if self.policy is mobility.Policy.NEVER:
            return rejection
        workloads = self._workloads(event.at)
        self._count_movers(workloads)
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

    def after(self, event: trace.Event) -> None:
        """The replay's `after_event`: compact after a departure, within the hour's budget."""
        setting = self.compact
        if setting is None or event.op != "delete" or self.policy is mobility.Policy.NEVER:
            return
        level = compaction.level_of(self.allocator, setting.tier)
        if self.allocator.state.fragmentation(level) <= setting.threshold:
            return
        self._compacted = [(at, count) for at, count in self._compacted if at > event.at - 3600.0]
        budget = setting.per_hour - sum(count for _, count in self._compacted)
        if budget <= 0:
            return
        self._catch_up(event)
        planned = compaction.plan_compaction(
            self.allocator,
            self._workloads(event.at),
            threshold=setting.threshold,
            max_moves=budget,
            tier=setting.tier,
            policy=self.policy,
        )
        if not planned:
            return
        moves.carry_out(self.allocator, planned)
        self._compacted.append((event.at, len(planned)))
        counts = self.counts
        devices = sum(move.devices_moved for move in planned)
        counts.compaction_moves += len(planned)
        counts.compaction_devices += devices
        counts.partitions_moved += len(planned)
        counts.devices_moved += devices
        counts.pods_disturbed += sum(move.pods_disturbed for move in planned)

    def _count_movers(self, workloads: dict[str, mobility.Workload]) -> None:
        """Count the partitions the policy lets move now, and those of them holding only whole nodes (their
        slots can only go to whole free nodes: such moves exchange whole nodes, never opening room inside a
        domain they do not leave)."""
        for pid, workload in workloads.items():
            if not mobility.may_move(self.policy, workload):
                continue
            self.counts.movers += 1
            self.counts.whole_node_movers += self._whole_nodes(pid)

    def _whole_nodes(self, pid: str) -> bool:
        """Whether every slot of the placed partition is a whole node."""
        tree = self.allocator.tree
        placed = self.allocator.placement_of(pid)
        return placed is not None and all(
            len(slot.devices) == len(tree.by_name[slot.node].devices) for slot in placed.slots
        )

    def _workloads(self, now: float) -> dict[str, mobility.Workload]:
        return {pid: self._workload(pid, now) for pid in self.allocator.partitions}

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


@dataclasses.dataclass(frozen=True)
class Recovered:
    """What one compaction pass recovers on a snapshot of a replay (`compaction_snapshot`)."""

    fragmentation_before: float  # of the tier (see superpod.placement.state)
    fragmentation_after: float
    free_domains_before: int  # whole domains of the tier no partition uses (reserve nodes left out)
    free_domains_after: int
    moves: int
    devices_moved: int
    held: int  # devices held in the snapshot


def free_domains(allocator: placement_allocator.Allocator, level: int) -> int:
    """Domains of `level` (0: nodes) in which no device is held, and no node is a reserve node."""
    tree = allocator.tree
    held = allocator.state.held_count[level]
    return sum(
        1
        for domain, found in enumerate(tree.levels[level])
        if not held[domain]
        and not any(tree.nodes[n].reserve for n in range(found.first_node, found.end_node))
    )


def compaction_snapshot(
    allocator: placement_allocator.Allocator,
    workloads: dict[str, mobility.Workload],
    *,
    threshold: float,
    max_moves: int,
    tier: str | None = None,
) -> Recovered:
    """One pass of `plan_compaction` on a copy of `allocator` (Unbound: only partitions without a running pod
    move, as the operator compacts): the tier's fragmentation and whole free domains before and after."""
    level = compaction.level_of(allocator, tier)
    trial = allocator.copy()
    planned = compaction.plan_compaction(
        trial, workloads, threshold=threshold, max_moves=max_moves, tier=tier, policy=mobility.Policy.UNBOUND
    )
    before = (trial.state.fragmentation(level), free_domains(trial, level))
    moves.carry_out(trial, planned)
    return Recovered(
        fragmentation_before=round(before[0], 6),
        fragmentation_after=round(trial.state.fragmentation(level), 6),
        free_domains_before=before[1],
        free_domains_after=free_domains(trial, level),
        moves=len(planned),
        devices_moved=sum(move.devices_moved for move in planned),
        held=trial.state.total_held,
    )


def running_workloads(
    allocator: placement_allocator.Allocator, events: Sequence[trace.Event], now: float
) -> dict[str, mobility.Workload]:
    """Each placed partition's workload at `now` by the trace's facts: running from its create's `at` +
    `bindAfter` (30 s by default), one pod per slot."""
    creates = {event.id: event for event in events if event.op == "create" and event.at <= now}
    found = {}
    for pid, placed in allocator.partitions.items():
        create = creates[pid]
        bind_after = trace.BIND_AFTER if create.bind_after is None else create.bind_after
        pods = len(placed.slots) if now >= create.at + bind_after else 0
        found[pid] = mobility.Workload(running_pods=pods, movable=create.movable)
    return found
