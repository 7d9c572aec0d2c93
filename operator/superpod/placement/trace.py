"""Churn traces for `superpod bench`: generation and replay, with the metrics the issue asks for.

A trace is a list of events `{"at": seconds, "op": "create"|"delete", "id": str, "npus": int,
"blockSize"?: int, "maxTier"?: str, "devicesPerPod"?: int, "wholeNodes"?: bool, "movable"?: bool,
"bindAfter"?: seconds}` (JSON lines on disk; the command does the I/O). `movable` and `bindAfter` matter to
defragmentation only (`superpod.placement.defragbench`): a partition runs from `at + bindAfter` (default
30 s), and `movable` says its workload tolerates a restart elsewhere. Nothing here reads a clock of its own: `replay` is handed one, so tests can pass a
fake clock and the command passes `time.perf_counter`.

The generator (the job-size facts of docs/design.md section 8): most requests are small (1, 2, 4, 8, 16 devices:
fine-tuning and inference), a minority large (32 to 384 on a CloudMatrix 384, 64 to 2,048 on larger
machines: training). Half of the requests that fit one node ask for one node (maxTier node); half of the
bigger ones that fit one domain of the tier below the widest (a rack of 64 on the 950) ask for one such
domain, and half of those bigger still come in blocks of that domain.
Arrivals are Poisson at the rate that offers `load` of the machine; lifetimes are exponential.

Phases: while the first `churn_share` of the requests arrive, a request is emitted only if the *ideal*
occupancy (the sum of live sizes, as if placement were perfect) stays under a cap that ramps up to `load`
and then holds, with departures; arrivals offer `pressure` times that, so the cap binds. A request that
does not fit waits in a queue for up to one mean lifetime while later ones that fit go first (backfill, as a
batch scheduler does), so big requests are delayed rather than filtered out. Every rejection in this phase
is the allocator's doing (fragmentation), never a genuine lack of devices. Then a fill phase without
departures sends the machine's unit of training jobs until one cannot fit even ideally: where the profile
has racks between its nodes and its widest tier (atlas-950, -960, the supercluster, GB200), whole racks each
limited to one rack (the next job that wants a rack of its own); else (cloudmatrix-384, 910A/B) 1, 2 or 4
whole nodes. Every allocator meets a first rejection, and the better it kept whole racks (nodes) free, the
fuller the machine is by then.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from superpod.placement import allocator as placement_allocator
from superpod.placement import request as placement_request
from superpod.placement import result
from superpod.topology import tiers as topology_tiers
from superpod.topology.tiers import Tier

SMALL_SIZES = (1, 2, 4, 8, 16)
BIND_AFTER = 30.0  # seconds from a create until its pods run, unless the event says (`bindAfter`)
SMALL_WEIGHTS = (0.3, 0.2, 0.2, 0.15, 0.15)
LARGE_SHARE = 0.12


@dataclasses.dataclass(frozen=True)
class Event:
    at: float
    op: str  # create or delete
    id: str
    npus: int = 0
    block_size: int | None = None
    max_tier: str | None = None
    devices_per_pod: int | None = None
    whole_nodes: bool = False
    # tenant traces (`superpod.placement.tenancy`): a create's tenant, priority, run time and policy; a
    # "quota" event's borrowing (its id is the quota's name, npus its nominal share)
    tenant: str | None = None
    priority: int | None = None
    duration: float | None = None
    preemption_policy: str | None = None
    borrowing: str | None = None
    movable: bool = False  # defragmentation may move it while it runs (policy Movable)
    bind_after: float | None = None  # seconds from `at` until its pods run (default BIND_AFTER)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": round(self.at, 6), "op": self.op, "id": self.id}
        if self.op == "create":
            out["npus"] = self.npus
            for key, value in (
                ("blockSize", self.block_size),
                ("maxTier", self.max_tier),
                ("devicesPerPod", self.devices_per_pod),
            ):
                if value is not None:
                    out[key] = value
            if self.whole_nodes:
                out["wholeNodes"] = True
            if self.movable:
                out["movable"] = True
            if self.bind_after is not None:
                out["bindAfter"] = self.bind_after
        if self.op == "quota":
            out["npus"] = self.npus
        extra: tuple[tuple[str, object], ...] = (
            ("tenant", self.tenant),
            ("priority", self.priority),
            ("duration", None if self.duration is None else round(self.duration, 6)),
            ("preemptionPolicy", self.preemption_policy),
            ("borrowing", self.borrowing),
        )
        for name, field in extra:
            if field is not None:
                out[name] = field
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Event:
        return cls(
            at=float(raw["at"]),
            op=str(raw["op"]),
            id=str(raw["id"]),
            npus=int(raw.get("npus", 0)),
            block_size=raw.get("blockSize"),
            max_tier=raw.get("maxTier"),
            devices_per_pod=raw.get("devicesPerPod"),
            whole_nodes=bool(raw.get("wholeNodes", False)),
            tenant=raw.get("tenant"),
            priority=raw.get("priority"),
            duration=raw.get("duration"),
            preemption_policy=raw.get("preemptionPolicy"),
            borrowing=raw.get("borrowing"),
            movable=bool(raw.get("movable", False)),
            bind_after=None if raw.get("bindAfter") is None else float(raw["bindAfter"]),
        )

    def request(self) -> placement_request.PlacementRequest:
        return placement_request.PlacementRequest(
            npus=self.npus,
            block_size=self.block_size,
            max_tier=self.max_tier,
            devices_per_pod=self.devices_per_pod,
            whole_nodes=self.whole_nodes,
        )


def large_sizes(usable: int) -> tuple[int, ...]:
    """Training sizes for a machine of `usable` devices: 32..384 on a CloudMatrix 384, up to 2,048 above."""
    if usable <= 1024:
        return tuple(size for size in (32, 64, 128, 256, 384) if size <= usable // 2)
    return tuple(size for size in (64, 128, 256, 512, 1024, 2048) if size <= usable // 4)


def generate(
    allocator: placement_allocator.Allocator,
    *,
    seed: int,
    load: float = 0.9,
    requests: int = 3000,
    churn_share: float = 0.8,
    pressure: float = 1.5,
    mean_lifetime: float = 600.0,
) -> list[Event]:
    """A churn trace for the allocator's tree (only its shape is used, never its state)."""
    rng = random.Random(seed)
    tree = allocator.tree
    usable = allocator.capacity().free
    big = large_sizes(usable)
    # large jobs may come in blocks of the tier just below the widest one, when that is above the node
    below_top = tree.profile.tiers[-2] if len(tree.profile.tiers) > 1 else tree.profile.tiers[-1]
    group = below_top if tree.profile.tiers.index(below_top) > tree.node_tier else None
    node_size = tree.profile.devices_per_node
    mean_size = sum(s * w for s, w in zip(SMALL_SIZES, SMALL_WEIGHTS, strict=True)) * (1 - LARGE_SHARE)
    mean_size += LARGE_SHARE * (sum(big) / len(big) if big else 0)
    # arrivals offer `pressure` times the load the cap admits, so the cap binds and the machine sits at `load`
    rate = pressure * load * usable / (mean_size * mean_lifetime)
    churn_end = churn_share * requests / rate
    ramp = min(mean_lifetime, churn_end / 4)

    def cap(at: float) -> float:
        return load * usable * min(1.0, at / ramp)

    events: list[Event] = []
    departures: list[tuple[float, int, int]] = []  # (at, serial, size)
    waiting: list[tuple[float, Event]] = []  # (give up at, request), first come first served
    live = 0
    at = 0.0
    serial = 0

    def admit(now: float) -> None:
        nonlocal live, serial
        keep: list[tuple[float, Event]] = []
        for give_up, event in waiting:
            if serial >= requests:
                break
            if live + event.npus <= cap(now):
                events.append(dataclasses.replace(event, at=now, id=f"p{serial:05d}"))
                live += event.npus
                lifetime = rng.expovariate(1 / mean_lifetime)
                heapq.heappush(departures, (now + lifetime, serial, event.npus))
                serial += 1
            elif give_up > now:
                keep.append((give_up, event))
        waiting[:] = keep

    while serial < requests:
        at += rng.expovariate(rate)
        while departures and departures[0][0] <= min(at, churn_end):
            gone_at, gone, size = heapq.heappop(departures)
            events.append(Event(at=gone_at, op="delete", id=f"p{gone:05d}"))
            live -= size
            admit(gone_at)
        if at >= churn_end:
            # the churn ends: what still waits is dropped, not admitted in one go under the fill's cap
            at = churn_end
            break
        # a request that does not fit waits (backfilled by later ones) for up to one mean lifetime
        waiting.append((at + mean_lifetime, draw(rng, at, 0, big, node_size, group)))
        admit(at)
    # fill, no departures, until one request cannot fit even ideally (it is sent too): whole racks, each
    # limited to its rack, where the profile has racks between nodes and the widest tier; else 1, 2 or 4
    # whole nodes
    levels = len(tree.profile.tiers) - tree.node_tier
    rack = tree.profile.tiers[tree.node_tier + 1] if levels > 2 else None
    while True:
        at += rng.expovariate(rate)
        size = rack.domain_size if rack is not None else node_size * rng.choice((1, 2, 4))
        max_tier = rack.name if rack is not None else None
        events.append(Event(at=at, op="create", id=f"p{serial:05d}", npus=size, max_tier=max_tier))
        serial += 1
        live += size
        if live > usable:
            break
    rounded = [dataclasses.replace(event, at=round(event.at, 6)) for event in events]  # as written to JSON
    return sorted(rounded, key=lambda e: e.at)  # stable: ties keep the order they happened in


def mark_movable(
    events: Iterable[Event], share: float, seed: int, bind_after: float | None = None
) -> list[Event]:
    """The trace with each create marked movable with probability `share` (its own random stream, so the
    trace is otherwise the one `generate` gave), and given `bind_after` when that is set."""
    rng = random.Random(f"movable-{seed}")
    marked = []
    for event in events:
        if event.op == "create":
            movable = rng.random() < share
            event = dataclasses.replace(
                event, movable=movable, bind_after=event.bind_after if bind_after is None else bind_after
            )
        marked.append(event)
    return marked


def draw(
    rng: random.Random, at: float, serial: int, big: Sequence[int], node_size: int, group: Tier | None
) -> Event:
    """One request. Small ones that fit a node ask for one node half the time; bigger ones that fit a
    `group` domain (the tier below the widest, such as a rack) ask for one such domain half the time, and
    bigger still come in blocks of that domain half the time."""
    pid = f"p{serial:05d}"
    large = bool(big) and rng.random() < LARGE_SHARE
    size = rng.choice(big) if large else rng.choices(SMALL_SIZES, SMALL_WEIGHTS)[0]
    max_tier = block = None
    if size <= node_size:
        max_tier = topology_tiers.NODE if rng.random() < 0.5 else None
    elif group is not None and size <= group.domain_size:
        max_tier = group.name if rng.random() < 0.5 else None
    elif group is not None and size % group.domain_size == 0:
        block = group.domain_size if rng.random() < 0.5 else None
    return Event(at=at, op="create", id=pid, npus=size, block_size=block, max_tier=max_tier)


@dataclasses.dataclass
class Metrics:
    algorithm: str
    requests: int = 0
    placed: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    blocks: int = 0
    ideal_blocks: int = 0
    tier_span_sum: float = 0.0
    nodes_sum: int = 0
    utilization_at_first_rejection: float | None = None
    peak_utilization: float = 0.0
    utilization_area: float = 0.0
    fragmentation_area: float = 0.0
    rack_fragmentation_area: float | None = None  # None: the profile has no racks between nodes and root
    duration: float = 0.0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_ms: list[float] = dataclasses.field(default_factory=list)
    requested_devices: int = 0  # of every create
    placed_devices: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        cpu = sorted(self.cpu_ms)
        return {
            "algorithm": self.algorithm,
            "requests": self.requests,
            "placed": self.placed,
            "rejected": dict(sorted(self.rejected.items())),
            "idealTierRate": round(self.ideal_blocks / self.blocks, 4) if self.blocks else None,
            "meanTierSpan": round(self.tier_span_sum / self.placed, 3) if self.placed else None,
            "meanNodesPerPartition": round(self.nodes_sum / self.placed, 3) if self.placed else None,
            "utilizationAtFirstRejection": (
                round(self.utilization_at_first_rejection, 4)
                if self.utilization_at_first_rejection is not None
                else None
            ),
            "peakUtilization": round(self.peak_utilization, 4),
            "meanUtilization": round(self.utilization_area / self.duration, 4) if self.duration else None,
            "meanFragmentation": round(self.fragmentation_area / self.duration, 4) if self.duration else None,
            "meanRackFragmentation": (
                round(self.rack_fragmentation_area / self.duration, 4)
                if self.duration and self.rack_fragmentation_area is not None
                else None
            ),
            "decisionP50Ms": round(percentile(ordered, 0.50), 3),
            "decisionP99Ms": round(percentile(ordered, 0.99), 3),
            "cpuP50Ms": round(percentile(cpu, 0.50), 3),
            "cpuP99Ms": round(percentile(cpu, 0.99), 3),
            "deviceAcceptance": (
                round(self.placed_devices / self.requested_devices, 6) if self.requested_devices else None
            ),
        }


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def replay(
    events: Iterable[Event],
    allocator: placement_allocator.Allocator,
    *,
    clock: Callable[[], float],
    cpu_clock: Callable[[], float] | None = None,
    on_decision: Callable[[Event, result.Placement | result.Rejection], None] | None = None,
    rescue: Callable[[Event, result.Rejection], result.Placement | result.Rejection] | None = None,
    after_event: Callable[[Event], None] | None = None,
) -> Metrics:
    """Apply the trace to `allocator`; deletes of rejected creates are ignored.

    Utilization is allocated / (total - reserved - unhealthy at start), and fragmentation the node-level
    fragmentation of the capacity summary (and, where the profile has racks below its widest tier, the
    rack-level one), all averaged over time as step functions of `at`. meanTierSpan
    is the mean index of the partition's tier span in the profile's tier list (0 = tightest). Latency is
    measured with `clock` (wall time) and, when given, `cpu_clock` (this thread's CPU time, which a busy
    shared machine does not inflate). `rescue`, given a rejected create, may change the allocator (move
    partitions) and return a placement to commit instead (`superpod.placement.defragbench`); it is not timed
    here. `after_event` is called once each event is applied (background compaction may move partitions
    then).
    """
    metrics = Metrics(algorithm=allocator.policy.name)
    rack_level = 1 if len(allocator.tree.levels) > 2 else None  # the level above nodes, when not the root
    if rack_level is not None:
        metrics.rack_fragmentation_area = 0.0
    tier_rank = {tier.name: i for i, tier in enumerate(allocator.tree.profile.tiers)}
    usable = allocator.capacity().free or 1
    placed_ids: set[str] = set()
    last_at: float | None = None
    first_at: float | None = None
    ideal_cache: dict[placement_request.PlacementRequest, tuple[str, str] | None] = {}
    previous: Event | None = None
    for event in events:
        if after_event is not None and previous is not None:
            after_event(previous)
        previous = event
        utilization = allocator.state.total_held / usable
        if last_at is not None:
            metrics.utilization_area += utilization * (event.at - last_at)
            metrics.fragmentation_area += allocator.state.fragmentation(0) * (event.at - last_at)
            if metrics.rack_fragmentation_area is not None and rack_level is not None:
                metrics.rack_fragmentation_area += allocator.state.fragmentation(rack_level) * (
                    event.at - last_at
                )
        else:
            first_at = event.at
        last_at = event.at
        if event.op == "quota":  # tenant traces: quotas matter to `superpod.placement.tenancy` only
            continue
        if event.op == "delete":
            if event.id in placed_ids:
                placed_ids.discard(event.id)
                allocator.release(event.id)
            continue
        metrics.requests += 1
        request = event.request()
        started = clock()
        cpu_started = cpu_clock() if cpu_clock else 0.0
        decision = allocator.plan_partition(request)
        if cpu_clock:
            metrics.cpu_ms.append((cpu_clock() - cpu_started) * 1000.0)
        metrics.latencies_ms.append((clock() - started) * 1000.0)
        metrics.requested_devices += event.npus
        if rescue is not None and isinstance(decision, result.Rejection):
            decision = rescue(event, decision)
        if on_decision is not None:
            on_decision(event, decision)
        if isinstance(decision, result.Rejection):
            metrics.rejected[decision.reason.value] = metrics.rejected.get(decision.reason.value, 0) + 1
            if metrics.utilization_at_first_rejection is None:
                metrics.utilization_at_first_rejection = utilization
            continue
        allocator.commit(event.id, decision)
        placed_ids.add(event.id)
        metrics.placed += 1
        metrics.placed_devices += event.npus
        metrics.tier_span_sum += tier_rank[decision.tier_span]
        metrics.nodes_sum += decision.node_count
        if request not in ideal_cache:
            ideal_cache[request] = allocator.ideal_tiers(request)
        ideal = ideal_cache[request]
        metrics.blocks += len(decision.block_tiers)
        if ideal is not None:
            metrics.ideal_blocks += sum(
                1 for tier in decision.block_tiers if tier_rank[tier] <= tier_rank[ideal[0]]
            )
        metrics.peak_utilization = max(metrics.peak_utilization, allocator.state.total_held / usable)
    if after_event is not None and previous is not None:
        after_event(previous)
    if last_at is not None and first_at is not None:
        metrics.duration = last_at - first_at
    return metrics
