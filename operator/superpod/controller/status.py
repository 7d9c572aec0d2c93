"""Status of the custom resources, derived by pure functions of what the operator decided and observed.

The one place that says what a partition's phase, reason and conditions are, for the fleet's placements and
repairs (`allocated`, `pending`, `failed`), for a deleted partition that pods still hold (`terminating`) and
for the admission webhook's slot bindings (`binding`), so the two writers use the same words and neither rewrites
the other's. A condition (`condition`) and whether a derived status differs from the written one (`changed`) are
the same for every resource: `superpodstatus` derives a SuperPod's status with them.

Every function takes the time now (`now`, RFC 3339, as Kubernetes writes timestamps) from its caller: a
condition's lastTransitionTime moves only when its status changes, as Kubernetes API conventions ask, and
tests pass a fixed clock. The operator writes a status only when the derived one differs from what the object
already shows (see `changed`), so a quiet cluster costs no writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from superpod import placement
from superpod.api import common, reasons
from superpod.api import partition as api_partition

JSON = common.JSON
Phase = api_partition.Phase
Condition = reasons.ConditionType
PendingReason = api_partition.PendingReason
BINDABLE = frozenset({Phase.ALLOCATED.value, Phase.BOUND.value})
"""Phases a binding change moves between (Allocated <-> Bound); a Degraded partition stays Degraded."""
_PLACED_CONDITIONS = frozenset({Condition.ALLOCATED.value, Condition.BOUND.value, Condition.DEGRADED.value})
"""The conditions `allocated` derives; others (the rank table's RankTableWritten) belong to other writers."""


def condition(
    previous: Sequence[JSON] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> JSON:
    """A condition; its lastTransitionTime moves only when its status changes."""
    value = "True" if status else "False"
    old = next((c for c in previous or () if c.get("type") == type_), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == value and old.get("lastTransitionTime")
        else now
    )
    out: JSON = {
        "type": str(type_),
        "status": value,
        "reason": str(reason),
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def complete(allocation: Sequence[JSON]) -> bool:
    """Whether every slot has a pod (and there is a slot)."""
    return bool(allocation) and all(slot.get("pod") for slot in allocation)


def bound_condition(
    previous: Sequence[JSON] | None, allocation: Sequence[JSON], generation: int | None, now: str
) -> JSON:
    """The Bound condition of a partition whose slots are `allocation`."""
    done = complete(allocation)
    return condition(
        previous,
        Condition.BOUND,
        done,
        reasons.PartitionReason.ALL_SLOTS_BOUND if done else reasons.PartitionReason.WAITING_FOR_PODS,
        "every slot has a pod" if done else "pods labelled with the partition are bound at admission",
        generation,
        now,
    )


def allocated(
    decision: placement.Placement,
    *,
    previous: JSON | None,
    generation: int | None,
    now: str,
    failed: Sequence[str] = (),
    repair_problem: str | None = None,
    rank_table: str | None = None,
    tenancy: JSON | None = None,
) -> JSON:
    """Status of a placed partition.

    Pod bindings (`pod` of a slot, written at admission) are kept for slots whose node and devices did not
    change. The phase is Degraded while the partition holds failed devices (`node/device`), else Bound when
    every slot has a pod, else Allocated. `repair_problem` says why failed devices could not be replaced.
    `rank_table` names the rank table ConfigMap (written with the allocation: one status write, not two).
    `tenancy` holds the quota, priority and borrowing fields (`queuepass.Tenancy.fields`).
    """
    previous = previous or {}
    conditions = previous.get("conditions")
    bound = {
        (slot.get("rank"), slot.get("node"), tuple(slot.get("devices") or ())): slot["pod"]
        for slot in previous.get("allocation") or []
        if slot.get("pod")
    }
    slots = []
    for slot in decision.slots:
        out = slot.to_api().model_dump(by_alias=True, exclude_none=True)
        pod = bound.get((slot.rank, slot.node, slot.devices))
        if pod:
            out["pod"] = pod
        slots.append(out)
    devices = sum(len(slot["devices"]) for slot in slots)
    message = (
        f"{devices} devices on {decision.node_count} node(s) within one {decision.tier_span}"
        f" ({decision.bandwidth_gbps:g} GB/s per device)"
    )
    if failed:
        phase = Phase.DEGRADED
        reason = (
            reasons.PartitionReason.REPAIR_IMPOSSIBLE
            if repair_problem
            else reasons.PartitionReason.DEVICE_FAILED
        )
        detail = f"devices failed: {', '.join(failed)}"
        if repair_problem:
            detail += f"; no repair: {repair_problem}"
        degraded = condition(conditions, Condition.DEGRADED, True, reason, detail, generation, now)
    else:
        phase = Phase.BOUND if complete(slots) else Phase.ALLOCATED
        reason = reasons.PartitionReason.PLACED
        degraded = condition(
            conditions,
            Condition.DEGRADED,
            False,
            reasons.PartitionReason.HEALTHY,
            "every device is healthy",
            generation,
            now,
        )
    status: JSON = {
        "observedGeneration": generation,
        "phase": phase.value,
        "reason": reason.value,
        "message": degraded["message"] if failed else message,
        "allocation": slots,
        "tierSpan": decision.tier_span,
        "nodeCount": decision.node_count,
        "estimatedBandwidthGBps": decision.bandwidth_gbps,
        "conditions": [
            condition(
                conditions,
                Condition.ALLOCATED,
                True,
                reasons.PartitionReason.PLACED,
                message,
                generation,
                now,
            ),
            bound_condition(conditions, slots, generation, now),
            degraded,
            # conditions other writers own (RankTableWritten) are kept as they are; a conflict is over
            *_resolved(conditions, "re-placed", generation, now),
        ],
    }
    if rank_table is not None:
        status["rankTable"] = rank_table
    status["preemptedBy"] = None
    return status | (tenancy or {})


def pending(
    reason: str,
    message: str,
    *,
    previous: JSON | None,
    generation: int | None,
    now: str,
    tenancy: JSON | None = None,
    preempted_by: str | None = None,
) -> JSON:
    """Status of a partition that is not placed; `allocation` and the placement fields are cleared.
    `preempted_by` names the partition that took its devices (reason Preempted).

    A preempted partition keeps reason Preempted and `preemptedBy` until it is placed again (`allocated`
    clears them): whatever it now waits for goes into the message, so `kubectl get spp` still tells a
    victim from a partition that was never placed."""
    kept = (previous or {}).get("preemptedBy") if preempted_by is None else None
    if kept:
        preempted_by = str(kept)
        if reason not in (PendingReason.PREEMPTED, PendingReason.PREEMPTING):  # it preempting shows as such
            message = f"preempted by {kept}; waits to be placed again: {reason}: {message}"
            reason = PendingReason.PREEMPTED.value
    status = _unplaced(Phase.PENDING, reason, message, previous, generation, now)
    status["preemptedBy"] = preempted_by
    return status | (tenancy or {}) | {"borrowing": None, "borrowedNpus": None}


def evicting(
    preemptor: str, message: str, *, previous: JSON | None, generation: int | None, now: str
) -> JSON:
    """Status of a preempted partition whose pods are being evicted: Pending, reason Preempted, no longer
    admitting pods, but its allocation stays in status until its pods are gone, so that a restarted operator
    still holds those devices and gives them to nobody while the pods may use them."""
    previous = previous or {}
    reason = api_partition.PendingReason.PREEMPTED.value
    conditions = previous.get("conditions")
    allocated_condition = condition(conditions, Condition.ALLOCATED, False, reason, message, generation, now)
    return {
        "observedGeneration": generation,
        "phase": Phase.PENDING.value,
        "reason": reason,
        "message": message,
        "preemptedBy": preemptor,
        "borrowing": None,
        "borrowedNpus": None,
        "conditions": [
            allocated_condition,
            *(c for c in conditions or () if c.get("type") != Condition.ALLOCATED),
        ],
    }


def failed(message: str, *, previous: JSON | None, generation: int | None, now: str) -> JSON:
    """Status of a partition whose spec cannot be read (Failed, InvalidSpec): it is never placed."""
    reason = reasons.PartitionReason.INVALID_SPEC
    return _unplaced(Phase.FAILED, reason, message, previous, generation, now)


def _unplaced(
    phase: Phase, reason: str, message: str, previous: JSON | None, generation: int | None, now: str
) -> JSON:
    conditions = (previous or {}).get("conditions")
    return {
        "observedGeneration": generation,
        "phase": phase.value,
        "reason": str(reason),
        "message": message,
        "allocation": None,
        "tierSpan": None,
        "nodeCount": None,
        "estimatedBandwidthGBps": None,
        "conditions": [
            condition(conditions, Condition.ALLOCATED, False, reason, message, generation, now),
            *(
                c
                for c in _resolved(conditions, "released", generation, now)
                if c.get("type") == Condition.CONFLICT
            ),
        ],
    }


def _resolved(conditions: Sequence[JSON] | None, how: str, generation: int | None, now: str) -> list[JSON]:
    """The conditions the placement fields do not derive, kept, with a Conflict that was True turned False."""
    out = []
    for old in conditions or ():
        if old.get("type") in _PLACED_CONDITIONS:
            continue
        if old.get("type") == Condition.CONFLICT and old.get("status") == "True":
            message = f"{how} after {old.get('reason')}: {old.get('message')}"
            resolved = reasons.ConflictReason.RESOLVED
            old = condition(conditions, Condition.CONFLICT, False, resolved, message, generation, now)
        out.append(old)
    return out


def conflicted(
    held: placement.Placement | None,
    reason: str,
    message: str,
    *,
    previous: JSON | None,
    generation: int | None,
    now: str,
    rank_table: str | None = None,
) -> JSON:
    """Status of a partition whose recorded placement is in conflict (`conflicts.Record`): Degraded with a
    Conflict condition, `allocation` only what it holds now (`held`: its quarantined devices, or its own
    placement when its status was edited by hand). Each slot keeps its pod (the pod may still run there)."""
    previous = previous or {}
    conditions = previous.get("conditions")
    flag = condition(conditions, Condition.CONFLICT, True, reason, message, generation, now)
    if held is None:
        status = _unplaced(Phase.PENDING, reason, message, previous, generation, now)
        status["conditions"] = [*status["conditions"][:1], flag]
        return status
    status = allocated(held, previous=previous, generation=generation, now=now, rank_table=rank_table)
    pods = {
        (slot.get("rank"), slot.get("node")): slot["pod"]
        for slot in previous.get("allocation") or []
        if slot.get("pod")
    }
    for slot in status["allocation"]:
        pod = pods.get((slot["rank"], slot["node"]))
        if pod and not slot.get("pod"):
            slot["pod"] = pod
    status["phase"] = Phase.DEGRADED.value
    status["reason"] = str(reason)
    status["message"] = message
    status["conditions"] = [c for c in status["conditions"] if c.get("type") != Condition.CONFLICT] + [flag]
    return status


def terminating(
    pods: Sequence[str],
    count: int,
    reason: str,
    message: str,
    *,
    previous: JSON | None,
    generation: int | None,
    now: str,
) -> JSON:
    """Status of a deleted partition that pods still hold (`pods`: some of their names, `count`: how many).

    Only the phase, its words, the pods and the Terminating condition change: the allocation, the rank table
    and the other conditions stay as they are (the partition keeps its devices until the pods are gone).
    """
    conditions = [
        c for c in (previous or {}).get("conditions") or () if c.get("type") != Condition.TERMINATING
    ]
    return {
        "phase": Phase.TERMINATING.value,
        "reason": str(reason),
        "message": message,
        "inUseBy": list(pods),
        "inUseByCount": count,
        "conditions": [
            condition(
                (previous or {}).get("conditions"),
                Condition.TERMINATING,
                True,
                reason,
                message,
                generation,
                now,
            ),
            *conditions,
        ],
    }


def unplaced(status: JSON) -> bool:
    """Whether `status` is of a partition that is not placed (Pending or Failed)."""
    return status.get("phase") in (Phase.PENDING.value, Phase.FAILED.value)


def binding(previous: JSON | None, allocation: list[JSON], generation: int | None, now: str) -> JSON:
    """The status fields a binding change writes: allocation, phase (Allocated <-> Bound), Bound condition.

    The Bound condition keeps its place among the conditions; a Degraded partition keeps its phase.
    """
    previous = previous or {}
    old = previous.get("conditions") or []
    bound = bound_condition(old, allocation, generation, now)
    conditions = [c for c in old if c.get("type") != Condition.BOUND]
    position = next((i for i, c in enumerate(old) if c.get("type") == Condition.BOUND), len(conditions))
    conditions.insert(position, bound)
    out: JSON = {"allocation": allocation, "conditions": conditions}
    if previous.get("phase") in BINDABLE:
        out["phase"] = (Phase.BOUND if complete(allocation) else Phase.ALLOCATED).value
    return out


def changed(current: JSON | None, desired: JSON) -> bool:
    """Whether writing `desired` would change `current` (timestamps of unchanged conditions are kept)."""
    current = current or {}
    for key, value in desired.items():
        if key == "conditions":
            old = {c.get("type"): c for c in current.get("conditions") or []}
            for new in value:
                before = old.get(new["type"], {})
                if any(
                    before.get(k) != new.get(k) for k in ("status", "reason", "message", "observedGeneration")
                ):
                    return True
        elif current.get(key) != value:
            return True
    return False
