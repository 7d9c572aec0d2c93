"""The baseline victim picker, for `superpod bench` only: Kueue's classic preemption, blind to topology.

The same victims are allowed as in `superpod.placement.preemption` (`Rules`), taken in Kueue's order,
lowest priority first, then youngest, until enough devices would be free in total (and quotas are met);
then, as Kueue does, each victim is given back in reverse order when the count still suffices without it.
Only then is the preemptor planned with the victims released: when the freed devices do not form a
placement, the preemption was useless (the victims are evicted and the preemptor still waits), which is
what topology-blind preemption does (Kueue #5243).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import preemption, result
from superpod.placement import quota as placement_quota
from superpod.placement import request as placement_request


@dataclasses.dataclass(frozen=True)
class ClassicPreemption:
    victims: tuple[str, ...]
    placement: result.Placement | None  # None: the victims' devices do not place the preemptor (useless)


def plan_classic(
    allocator: placement_allocator.Allocator,
    request: placement_request.PlacementRequest,
    preemptor: placement_quota.Workload,
    placed: Mapping[str, placement_quota.Workload],
    ledger: placement_quota.Ledger,
) -> ClassicPreemption | result.Rejection:
    """Kueue's classic choice (see the module docstring); changes nothing."""
    rules = preemption.Rules(ledger, preemptor)
    direct = allocator.plan_partition(request)
    if isinstance(direct, result.Placement) and rules.needs_nothing:
        return ClassicPreemption((), direct)
    if isinstance(direct, result.Rejection) and direct.reason == api_partition.PendingReason.UNSATISFIABLE:
        return direct
    reason = (
        direct.reason if isinstance(direct, result.Rejection) else api_partition.PendingReason.QUOTA_EXCEEDED
    )
    if rules.never:
        return result.Rejection(reason, "its preemptionPolicy is Never")
    candidates = {
        pid: preemption.Victim(
            workload,
            ledger.tenant(workload),
            allocator.held_by(pid),
            sum(mask.bit_count() for mask in allocator.held_by(pid).values()),
        )
        for pid in allocator.partitions
        if (workload := placed.get(pid)) is not None and rules.eligible(workload)
    }
    free = allocator.state.total_free
    chosen: list[preemption.Victim] = []
    for workload in preemption.victim_order(victim.workload for victim in candidates.values()):
        victim = candidates[workload.id]
        if not rules.allows_partial([*chosen, victim]):
            continue
        chosen.append(victim)
        if free + sum(v.devices for v in chosen) >= preemptor.npus and rules.allows(chosen):
            break
    else:
        return result.Rejection(reason, "preempting every allowed partition would not free enough devices")
    # fill back: give back, latest first, every victim the count does not need
    for victim in list(reversed(chosen)):
        rest = [v for v in chosen if v is not victim]
        if free + sum(v.devices for v in rest) >= preemptor.npus and rules.allows(rest):
            chosen = rest
    ids = tuple(v.workload.id for v in chosen)
    with allocator.released(ids):
        plan = allocator.plan_partition(request)
    return ClassicPreemption(ids, plan if isinstance(plan, result.Placement) else None)
