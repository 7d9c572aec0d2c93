"""Tenant traces for `superpod bench`: quotas, priorities and preemption, generated and replayed.

A tenant trace starts with one `quota` event per tenant (`id` its name, `npus` its nominal share,
`borrowing`), then `create` events that carry `tenant`, `priority`, `duration` (seconds of run time) and
sometimes `preemptionPolicy: Never`; there are no deletes: a partition ends when it has run its
duration. Generation (`generate`): K tenants share the usable devices by random weights (whole nodes
each; the last tenant may not borrow when K >= 3). Each tenant alternates busy periods (mean an hour),
when it asks for `pressure` times its share, and quiet ones (mean half an hour) at a tenth of that, so
tenants borrow each other's idle shares and then want them back. Sizes and tiers are drawn as in
`superpod.placement.trace` (never above the tenant's share); priorities 0 (65%), 100 (30%, a tenth of
them `preemptionPolicy: Never`) and 1000 (5%, urgent).

Replay (`replay`) runs the queue (`superpod.placement.queue`) after every arrival and departure, with a
victim picker: the project's (`plan_preemption`) or Kueue's classic (`plan_classic`). A preempted
partition goes back to the queue with the run time it has left (it resumes from a checkpoint); a victim of
a useless preemption too, each after a requeue backoff of a minute (as Kueue's). Per tenant, the *share of its nominal quota it could use when it had demand* is
the time integral of min(used, entitled) over that of entitled, where entitled = min(nominal, used + the
pending partitions that fit within the share, oldest first). Nothing here reads a clock of its own.
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import random
from collections.abc import Callable, Sequence
from typing import Any

from superpod.placement import allocator as placement_allocator
from superpod.placement import classic_preemption, preemption, queue, result, trace
from superpod.placement import quota as placement_quota
from superpod.placement import request as placement_request

PRIORITIES = ((0, 0.65), (100, 0.30), (1000, 0.05))
NEVER_SHARE = 0.1  # of priority-100 partitions, those with preemptionPolicy Never
REQUEUE_AFTER = 60.0  # seconds a preempted partition waits before it is queued again


def generate(
    allocator: placement_allocator.Allocator,
    *,
    seed: int,
    tenants: int,
    requests: int = 3000,
    pressure: float = 1.3,
    mean_lifetime: float = 600.0,
    busy: float = 3600.0,
    quiet: float = 1800.0,
) -> list[trace.Event]:
    """A tenant trace for the allocator's tree (only its shape is used)."""
    if tenants < 1:
        raise ValueError("--tenants must be at least 1")
    rng = random.Random(seed)
    tree = allocator.tree
    usable = allocator.capacity().free
    node_size = tree.profile.devices_per_node
    weights = [rng.uniform(1.0, 3.0) for _ in range(tenants)]
    shares = [int(usable * w / sum(weights)) // node_size * node_size for w in weights]
    shares[-1] = usable - sum(shares[:-1])
    names = [f"team-{i + 1}" for i in range(tenants)]
    events = [
        trace.Event(
            at=0.0,
            op="quota",
            id=name,
            npus=share,
            borrowing="Never" if tenants >= 3 and i == tenants - 1 else "Allowed",
        )
        for i, (name, share) in enumerate(zip(names, shares, strict=True))
    ]
    big = trace.large_sizes(usable)
    below_top = tree.profile.tiers[-2] if len(tree.profile.tiers) > 1 else tree.profile.tiers[-1]
    group = below_top if tree.profile.tiers.index(below_top) > tree.node_tier else None
    small_mean = sum(s * w for s, w in zip(trace.SMALL_SIZES, trace.SMALL_WEIGHTS, strict=True))
    busy_share = busy / (busy + quiet)
    rates = []
    for share in shares:
        fitting = [size for size in big if size <= share]
        mean = small_mean * (1 - trace.LARGE_SHARE) + trace.LARGE_SHARE * (
            sum(fitting) / len(fitting) if fitting else small_mean
        )
        rates.append(pressure * share / (mean * mean_lifetime))
    expected = sum(rate * (busy_share + 0.1 * (1 - busy_share)) for rate in rates)
    horizon = 2.0 * requests / expected  # ample (draws above a share are skipped); cut to `requests` below
    creates: list[trace.Event] = []
    for name, share, rate in zip(names, shares, rates, strict=True):
        at = 0.0
        busy_now = rng.random() < busy_share
        switch = rng.expovariate(1 / (busy if busy_now else quiet))
        while at < horizon:
            at += rng.expovariate(rate if busy_now else rate * 0.1)
            while at > switch:
                busy_now = not busy_now
                switch += rng.expovariate(1 / (busy if busy_now else quiet))
            if at >= horizon:
                break
            drawn = trace.draw(rng, at, 0, [s for s in big if s <= share], node_size, group)
            if drawn.npus > share:
                continue
            priority = rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
            never = priority == 100 and rng.random() < NEVER_SHARE
            creates.append(
                dataclasses.replace(
                    drawn,
                    tenant=name,
                    priority=priority,
                    duration=max(30.0, rng.expovariate(1 / mean_lifetime)),
                    preemption_policy="Never" if never else None,
                )
            )
    creates.sort(key=lambda e: (e.at, e.tenant or ""))
    creates = creates[:requests]
    events += [
        dataclasses.replace(event, at=round(event.at, 6), id=f"p{serial:05d}")
        for serial, event in enumerate(creates)
    ]
    return events


def quotas_of(events: Sequence[trace.Event], usable: int) -> placement_quota.Quotas:
    return placement_quota.Quotas(
        [
            placement_quota.Quota(
                event.id, event.npus, placement_quota.Borrowing(event.borrowing or "Allowed")
            )
            for event in events
            if event.op == "quota"
        ],
        usable,
    )


@dataclasses.dataclass
class TenantStats:
    nominal: int
    entitled_area: float = 0.0
    served_area: float = 0.0
    placed: int = 0
    preempted: int = 0  # its partitions preempted

    def share_used(self) -> float | None:
        return self.served_area / self.entitled_area if self.entitled_area else None


@dataclasses.dataclass
class TenancyMetrics:
    algorithm: str
    tenants: dict[str, TenantStats]
    requests: int = 0
    completed: int = 0
    admissions: int = 0
    placed_devices: int = 0
    preemptions: int = 0  # admissions (or useless attempts) that evicted partitions
    victims: int = 0
    reclaims: int = 0  # victims taken back from borrowing tenants
    devices_preempted: int = 0
    useless: int = 0  # preemptions whose victims' devices did not place the preemptor
    urgent_waits: list[float] = dataclasses.field(default_factory=list)
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    cpu_ms: list[float] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        shares = {name: stats.share_used() for name, stats in self.tenants.items()}
        waits = sorted(self.urgent_waits)
        lat = sorted(self.latencies_ms)
        cpu = sorted(self.cpu_ms)
        return {
            "algorithm": self.algorithm,
            "requests": self.requests,
            "admissions": self.admissions,
            "completed": self.completed,
            "tenants": {
                name: {
                    "nominal": stats.nominal,
                    "shareUsed": None if shares[name] is None else round(shares[name] or 0.0, 4),
                    "placed": stats.placed,
                    "preempted": stats.preempted,
                }
                for name, stats in self.tenants.items()
            },
            "minShareUsed": round(min((v for v in shares.values() if v is not None), default=1.0), 4),
            "preemptions": self.preemptions,
            "victims": self.victims,
            "reclaims": self.reclaims,
            "devicesPreempted": self.devices_preempted,
            "preemptedPerPlacedDevice": (
                round(self.devices_preempted / self.placed_devices, 4) if self.placed_devices else None
            ),
            "uselessPreemptions": self.useless,
            "urgentWaitP50s": round(trace.percentile(waits, 0.5), 1),
            "urgentWaitP99s": round(trace.percentile(waits, 0.99), 1),
            "pickerP50Ms": round(trace.percentile(lat, 0.5), 3),
            "pickerP99Ms": round(trace.percentile(lat, 0.99), 3),
            "cpuP99Ms": round(trace.percentile(cpu, 0.99), 3),
        }


PICKERS: dict[str, queue.Picker] = {
    "superpod": preemption.plan_preemption,
    "kueue-classic": classic_preemption.plan_classic,
}


def replay(
    events: Sequence[trace.Event],
    allocator: placement_allocator.Allocator,
    *,
    algorithm: str,
    clock: Callable[[], float],
    cpu_clock: Callable[[], float],
    reserve_after: float = queue.RESERVE_AFTER,
    requeue_after: float = REQUEUE_AFTER,
) -> TenancyMetrics:
    """Run the trace through the queue with the named victim picker (see the module docstring)."""
    usable = allocator.capacity().free
    quotas = quotas_of(events, usable)
    ledger = placement_quota.Ledger(quotas)
    metrics = TenancyMetrics(
        algorithm, {name: TenantStats(quotas.nominal(name)) for name in quotas.tenants() if name}
    )
    chosen = PICKERS[algorithm]

    def timed(*args: Any) -> Any:
        started, cpu_started = clock(), cpu_clock()
        outcome = chosen(*args)
        metrics.cpu_ms.append((cpu_clock() - cpu_started) * 1000.0)
        metrics.latencies_ms.append((clock() - started) * 1000.0)
        return outcome

    requests: dict[str, placement_request.PlacementRequest] = {}
    pending: dict[str, placement_quota.Workload] = {}
    placed: dict[str, placement_quota.Workload] = {}
    left: dict[str, float] = {}  # run time left (pending) or end time (running)
    arrived: dict[str, float] = {}
    known: dict[str, placement_quota.Workload] = {}
    ends: list[tuple[float, str]] = []
    creates = [event for event in events if event.op == "create"]
    position = 0
    now = 0.0
    backoff: list[tuple[float, str]] = []  # preempted partitions come back to the queue at these times
    held_back: dict[str, placement_quota.Workload] = {}
    while position < len(creates) or ends or backoff:
        next_arrival = creates[position].at if position < len(creates) else float("inf")
        while ends and ends[0][1] not in placed:
            heapq.heappop(ends)  # preempted meanwhile
        next_end = ends[0][0] if ends else float("inf")
        next_back = backoff[0][0] if backoff else float("inf")
        upcoming = min(next_arrival, next_end, next_back)
        if upcoming == float("inf"):
            break
        _account(metrics, ledger, {**pending, **held_back} if held_back else pending, upcoming - now)
        now = upcoming
        if next_back <= min(next_arrival, next_end):
            _, pid = heapq.heappop(backoff)
            pending[pid] = held_back.pop(pid)
        elif next_end <= next_arrival:
            _, pid = heapq.heappop(ends)
            if pid in placed and left.get(pid) == now:
                allocator.release(pid)
                ledger.refund(pid)
                placed.pop(pid)
                metrics.completed += 1
        else:
            event = creates[position]
            position += 1
            metrics.requests += 1
            requests[event.id] = event.request()
            pending[event.id] = placement_quota.Workload(
                event.id,
                event.npus,
                quotas.tenant_of(event.tenant),
                event.priority or 0,
                placement_quota.PreemptionPolicy(event.preemption_policy or "PreemptLowerPriority"),
                created=event.at,
                queued=event.at,
            )
            left[event.id] = event.duration or 600.0
            arrived[event.id] = event.at
            known[event.id] = pending[event.id]
        decisions = queue.admit(
            allocator,
            ledger,
            list(pending.values()),
            requests,
            placed,
            now,
            reserve_after=reserve_after,
            picker=timed,
        )
        for decision in decisions:
            evicted = decision.victims
            if isinstance(decision, queue.Admit):
                workload = decision.workload
                pending.pop(workload.id)
                left[workload.id] = now + left[workload.id]
                heapq.heappush(ends, (left[workload.id], workload.id))
                metrics.admissions += 1
                metrics.placed_devices += workload.npus
                stats = metrics.tenants.get(workload.tenant)
                if stats is not None:
                    stats.placed += 1
                if workload.priority >= 1000 and workload.id in arrived:
                    metrics.urgent_waits.append(now - arrived.pop(workload.id))
            elif evicted:
                metrics.useless += 1
            if evicted:
                metrics.preemptions += 1
            for victim in evicted:
                workload = known[victim]
                metrics.reclaims += workload.tenant != decision.workload.tenant
                # back in the queue after the requeue backoff (Kueue waits too): without it a picker whose
                # preemption was useless evicts, sees its victims placed again, and evicts them again
                held_back[victim] = dataclasses.replace(workload, queued=now)
                heapq.heappush(backoff, (now + requeue_after, victim))
                left[victim] = left[victim] - now  # run time left: it resumes from a checkpoint
                metrics.victims += 1
                metrics.devices_preempted += workload.npus
                stats = metrics.tenants.get(workload.tenant)
                if stats is not None:
                    stats.preempted += 1
    return metrics


def _account(
    metrics: TenancyMetrics,
    ledger: placement_quota.Ledger,
    pending: dict[str, placement_quota.Workload],
    span: float,
) -> None:
    if span <= 0:
        return
    waiting: dict[str, list[placement_quota.Workload]] = {}
    for workload in pending.values():
        waiting.setdefault(workload.tenant, []).append(workload)
    for name, stats in metrics.tenants.items():
        used = ledger.used_by(name)
        entitled = min(used, stats.nominal)
        room = stats.nominal - used
        for workload in sorted(waiting.get(name, ()), key=lambda w: (w.created, w.id)):
            if room <= 0:
                break
            if workload.npus <= room:
                entitled += workload.npus
                room -= workload.npus
        stats.entitled_area += entitled * span
        stats.served_area += min(used, entitled) * span


def latency(
    allocator: placement_allocator.Allocator,
    *,
    decisions: int,
    fill: float,
    seed: int,
    tenants: int,
    clock: Callable[[], float],
    cpu_clock: Callable[[], float],
) -> dict[str, Any]:
    """Victim-search latency: fill to `fill` with trace-like partitions of random tenants (quotas of
    equal shares, all may borrow) and priorities, then time both pickers on the same state for
    `decisions` urgent preemptors (priority 1000; trace sizes and tiers, and every other one 8 to 1,024
    devices larger than what is free, in whole nodes), each followed by churn (a random partition leaves, new ones fill
    back). `searched` are the decisions where the preemptor did not fit as things were. The garbage
    collector is off during each timed call, as in timeit."""
    rng = random.Random(seed)
    tree = allocator.tree
    usable = allocator.capacity().free
    node_size = tree.profile.devices_per_node
    share = usable // tenants // node_size * node_size
    quotas = placement_quota.Quotas(
        [placement_quota.Quota(f"team-{i + 1}", share) for i in range(tenants)], usable
    )
    ledger = placement_quota.Ledger(quotas)
    placed: dict[str, placement_quota.Workload] = {}
    big = trace.large_sizes(usable)
    below_top = tree.profile.tiers[-2] if len(tree.profile.tiers) > 1 else tree.profile.tiers[-1]
    group = below_top if tree.profile.tiers.index(below_top) > tree.node_tier else None
    serial = 0

    def draw(
        priority: int | None = None,
    ) -> tuple[placement_quota.Workload, placement_request.PlacementRequest]:
        nonlocal serial
        serial += 1
        event = trace.draw(rng, 0.0, serial, big, node_size, group)
        chosen = (
            priority
            if priority is not None
            else rng.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
        )
        workload = placement_quota.Workload(
            f"s{serial}",
            event.npus,
            f"team-{rng.randrange(tenants) + 1}",
            chosen,
            created=float(serial),
            running_pods=rng.choice((0, 1, 1, 2)),
        )
        return workload, event.request()

    def top_up() -> None:
        misses = 0
        while allocator.state.total_held < fill * usable and misses < 200:
            workload, request = draw()
            if allocator.state.total_held + workload.npus > fill * usable:
                misses += 1
                continue
            decision = allocator.plan_partition(request)
            if isinstance(decision, result.Placement) and ledger.quota_refusal(workload) is None:
                allocator.commit(workload.id, decision)
                placed[workload.id] = workload
                ledger.charge(workload)
            else:
                misses += 1

    top_up()
    rows: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "cpu": [], "swall": [], "scpu": []} for name in PICKERS
    }
    searched = found = victims = devices = useless = classic_victims = classic_devices = ours_useless = 0
    for decision in range(decisions):
        preemptor, request = draw(priority=1000)
        fits = isinstance(allocator.plan_partition(request), result.Placement)
        if decision % 2 and fits:
            # every other decision must search, the case the latency target is about: an urgent training
            # job of whole nodes, 8 to 1,024 devices more than are free
            npus = (allocator.state.total_free // node_size + rng.randint(1, 128)) * node_size
            preemptor = dataclasses.replace(preemptor, npus=npus)
            request = placement_request.PlacementRequest(npus)
            fits = isinstance(allocator.plan_partition(request), result.Placement)
        searched += not fits
        for name, picker in PICKERS.items():
            # as timeit does, no garbage collection inside the timed call: a full collection of this
            # process's heap (the allocator's books) costs about 10 ms wherever it happens to fall
            gc.disable()
            try:
                started, cpu_started = clock(), cpu_clock()
                outcome = picker(allocator, request, preemptor, placed, ledger)
                cpu = (cpu_clock() - cpu_started) * 1000.0
                wall = (clock() - started) * 1000.0
            finally:
                gc.enable()
            rows[name]["wall"].append(wall)
            rows[name]["cpu"].append(cpu)
            if not fits:
                rows[name]["swall"].append(wall)
                rows[name]["scpu"].append(cpu)
                if isinstance(outcome, preemption.Preemption) and outcome.victims:
                    found += 1
                    victims += len(outcome.victims)
                    devices += outcome.cost.devices
                    with allocator.released(outcome.victims):  # checked, not assumed
                        ours_useless += not isinstance(allocator.plan_partition(request), result.Placement)
                if isinstance(outcome, classic_preemption.ClassicPreemption) and outcome.victims:
                    classic_victims += len(outcome.victims)
                    classic_devices += sum(placed[v].npus for v in outcome.victims)
                    useless += outcome.placement is None
        # churn: one random partition leaves, the fill is topped up
        if placed:
            gone = rng.choice(sorted(placed))
            allocator.release(gone)
            ledger.refund(gone)
            placed.pop(gone)
        top_up()
    out: dict[str, Any] = {
        "profile": tree.profile.name,
        "devices": tree.total_devices,
        "utilization": round(allocator.state.total_held / usable, 3),
        "partitions": len(placed),
        "decisions": decisions,
        "searched": searched,
        "preempted": found,
        "victims": victims,
        "devicesPreempted": devices,
        "classicVictims": classic_victims,
        "classicDevicesPreempted": classic_devices,
        "useless": ours_useless,
        "classicUseless": useless,
    }
    for name, values in rows.items():
        for key, title in (("wall", ""), ("cpu", "Cpu"), ("swall", "Searched"), ("scpu", "SearchedCpu")):
            ordered = sorted(values[key])
            out[f"{name}{title}P50Ms"] = round(trace.percentile(ordered, 0.5), 3)
            out[f"{name}{title}P99Ms"] = round(trace.percentile(ordered, 0.99), 3)
    return out
