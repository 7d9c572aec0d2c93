"""The pending queue of one SuperPod: the order partitions are admitted in, and one admission pass.

Order (`order`): partitions whose tenant is within its nominal share once they are placed first (when the
SuperPod has quotas), then by priority (highest first), then by age (oldest `created` first), then by id.
With no quotas and no priorities that is the age order the operator has always used.

A pass (`admit`) walks the queue in that order. Each partition is placed if quotas allow it and it fits;
else it may preempt (`superpod.placement.preemption`); else it waits with a reason (`QuotaExceeded`,
`InsufficientCapacity`, `Fragmented`, `Unsatisfiable`), and the pass goes on: a partition that cannot be
placed does not block smaller ones behind it (backfill).

Anti-starvation: backfill alone could starve a large partition forever (small ones keep taking the devices
that free up). So the first partition in the order that has waited `reserve_after` seconds (10 minutes by
default) and still cannot be placed gets a *reservation*: the placement it would have once the cheapest
set of running partitions has left (`plan_reservation`); the free devices of that placement are held for
it for the rest of the pass, so the partitions behind it may use only other devices, and as the
partitions it waits for leave, nothing else takes their devices. One reservation per pass; partitions
refused by quota get none.

Pure: the pass reads no clock (`now` is passed in) and works on the allocator and ledger it is given: it
commits what it admits and releases its victims, as the operator does before writing statuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import classic_preemption, preemption, result
from superpod.placement import quota as placement_quota
from superpod.placement import request as placement_request

PendingReason = api_partition.PendingReason
RESERVE_AFTER = 600.0  # seconds the head of the queue waits before it gets a reservation
RESERVATION = "reservation/"
SEARCHES = 8  # preemption searches per pass; partitions after that only try to fit as things are  # prefix of the allocator id holding a reservation's devices during a pass

Picker = Callable[
    [
        placement_allocator.Allocator,
        placement_request.PlacementRequest,
        placement_quota.Workload,
        Mapping[str, placement_quota.Workload],
        placement_quota.Ledger,
    ],
    preemption.Preemption | classic_preemption.ClassicPreemption | result.Rejection,
]


@dataclasses.dataclass(frozen=True)
class Admit:
    """Placed (committed in the allocator), after its victims were released."""

    workload: placement_quota.Workload
    placement: result.Placement
    victims: tuple[str, ...] = ()
    reclaimed: tuple[str, ...] = ()  # the victims taken back from borrowing tenants


@dataclasses.dataclass(frozen=True)
class Wait:
    """Not placed in this pass, and why."""

    workload: placement_quota.Workload
    reason: api_partition.PendingReason
    message: str
    reserved: bool = False  # it holds a reservation (see the module docstring)
    victims: tuple[str, ...] = ()  # evicted for nothing (only a topology-blind picker does that)


def order(
    pending: Iterable[placement_quota.Workload], ledger: placement_quota.Ledger
) -> list[placement_quota.Workload]:
    """Within share first (when there are quotas), then highest priority, then oldest, then by id."""
    enabled = ledger.quotas.enabled
    return sorted(
        pending,
        key=lambda w: (0 if not enabled or ledger.within_share(w) else 1, -w.priority, w.created, w.id),
    )


def admit(
    allocator: placement_allocator.Allocator,
    ledger: placement_quota.Ledger,
    pending: Sequence[placement_quota.Workload],
    requests: Mapping[str, placement_request.PlacementRequest],
    placed: MutableMapping[str, placement_quota.Workload],
    now: float,
    *,
    reserve_after: float = RESERVE_AFTER,
    picker: Picker = preemption.plan_preemption,
    searches: int = SEARCHES,
) -> list[Admit | Wait]:
    """One pass over `pending` (see the module docstring). `requests` gives each pending partition's
    placement request, `placed` the placed partitions' facts (updated: admitted ones added, victims
    removed); `queued` of a pending workload is when it started waiting. At most `searches` partitions
    per pass search for victims (the first in the order that do not fit as things are): a search costs
    milliseconds, and a long queue of partitions that cannot preempt would otherwise be searched again on
    every pass."""
    decisions: list[Admit | Wait] = []
    unplaceable: dict[placement_request.PlacementRequest, result.Rejection] = {}  # until something is freed
    failed: dict[tuple[object, ...], tuple[api_partition.PendingReason, str]] = {}
    reservation: str | None = None
    try:
        for workload in order(pending, ledger):
            request = requests[workload.id]
            refusal = ledger.quota_refusal(workload)
            memo = (
                request,
                ledger.tenant(workload),
                workload.priority,
                workload.preemption_policy,
                refusal is None,
            )
            if memo in failed:
                reason, message = failed[memo]
                decisions.append(Wait(workload, reason, message))
                continue
            outcome: preemption.Preemption | classic_preemption.ClassicPreemption | result.Rejection
            direct = unplaceable.get(request) or allocator.plan_partition(request)
            if refusal is None and isinstance(direct, result.Placement):
                outcome = preemption.Preemption(
                    (),
                    direct,
                    preemption.Cost(preemption.LOWEST_PRIORITY, 0, 0, 0, _tier(allocator, direct), 0.0),
                )
            elif searches <= 0 or workload.preemption_policy == placement_quota.PreemptionPolicy.NEVER:
                assert isinstance(direct, result.Rejection) or refusal is not None
                outcome = (
                    direct
                    if isinstance(direct, result.Rejection)
                    else result.Rejection(PendingReason.QUOTA_EXCEEDED, refusal or "")
                )
                if searches <= 0:
                    outcome = dataclasses.replace(
                        outcome, message=f"{outcome.message}; no preemption tried in this pass"
                    )
            else:
                searches -= 1
                outcome = picker(allocator, request, workload, placed, ledger)
            if isinstance(direct, result.Rejection):
                unplaceable[request] = direct
            if isinstance(outcome, result.Rejection):
                failed[memo] = (outcome.reason, outcome.message)
                reserved = False
                if (
                    reservation is None
                    and outcome.reason not in (PendingReason.QUOTA_EXCEEDED, PendingReason.UNSATISFIABLE)
                    and workload.queued is not None
                    and now - workload.queued >= reserve_after
                ):
                    reservation = _reserve(allocator, request, workload, placed)
                    reserved = reservation is not None
                decisions.append(Wait(workload, outcome.reason, outcome.message, reserved=reserved))
                continue
            for victim in outcome.victims:
                allocator.release(victim)
                ledger.refund(victim)
                placed.pop(victim, None)
            if outcome.victims:
                failed.clear()  # victims may free more than the preemptor takes
                unplaceable.clear()
            if outcome.placement is None:
                decisions.append(
                    Wait(
                        workload,
                        PendingReason.FRAGMENTED,
                        "the devices its victims freed do not place it",
                        victims=outcome.victims,
                    )
                )
                continue
            allocator.commit(workload.id, outcome.placement)
            admitted = dataclasses.replace(workload, queued=None)
            ledger.charge(admitted)
            placed[workload.id] = admitted
            reclaimed = outcome.reclaimed if isinstance(outcome, preemption.Preemption) else ()
            decisions.append(Admit(admitted, outcome.placement, outcome.victims, reclaimed))
    finally:
        if reservation is not None:
            allocator.release(reservation)
    return decisions


def _tier(allocator: placement_allocator.Allocator, placement: result.Placement) -> int:
    return allocator.tree.profile.tier_index(placement.tier_span) or 0


def _reserve(
    allocator: placement_allocator.Allocator,
    request: placement_request.PlacementRequest,
    workload: placement_quota.Workload,
    placed: Mapping[str, placement_quota.Workload],
) -> str | None:
    """Hold, under a reservation id, the free devices of the placement `workload` waits for."""
    plan = preemption.plan_reservation(allocator, request, workload, placed)
    if plan is None:
        return None
    tree = allocator.tree
    slots: list[api_partition.Slot] = []
    for node_name, devices in plan.placement.held:
        node = tree.by_name[node_name]
        free = allocator.state.free[node.index]
        index = tree.device_index[node_name]
        mine = [device for device in devices if free >> index[device] & 1]
        if mine and not node.reserve:
            slots.append(api_partition.Slot(rank=len(slots), node=node_name, devices=mine))
    if not slots:
        return None
    holder = RESERVATION + workload.id
    outcome = allocator.restore(holder, slots)
    return holder if isinstance(outcome, result.Placement) else None
