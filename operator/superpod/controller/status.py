"""Status of the custom resources, derived by pure functions of what the operator decided and observed.

The operator writes a status only when the derived one differs from what the object already shows (see
`changed`), so a quiet cluster costs no writes. Conditions keep their lastTransitionTime while their status
stays the same, as Kubernetes API conventions ask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from superpod import placement
from superpod.api import partition as api_partition
from superpod.cluster import inventory, writer

JSON = dict[str, Any]


def condition(
    previous: Sequence[JSON] | None,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> JSON:
    """A condition; its lastTransitionTime moves only when its status changes."""
    value = "True" if status else "False"
    old = next((c for c in previous or () if c.get("type") == type_), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == value and old.get("lastTransitionTime")
        else writer.now()
    )
    out: JSON = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


_PLACED_CONDITIONS = frozenset({"Allocated", "Bound", "Degraded"})


def allocated(
    decision: placement.Placement,
    *,
    previous: JSON | None,
    generation: int | None,
    failed: Sequence[str] = (),
    repair_problem: str | None = None,
    rank_table: str | None = None,
) -> JSON:
    """Status of a placed partition.

    Pod bindings (`pod` of a slot, written at admission) are kept for slots whose node and devices did not
    change. The phase is Degraded while the partition holds failed devices (`node/device`), else Bound when
    every slot has a pod, else Allocated. `repair_problem` says why failed devices could not be replaced.
    `rank_table` names the rank table ConfigMap (written with the allocation: one status write, not two).
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
    all_bound = bool(slots) and all(slot.get("pod") for slot in slots)
    if failed:
        phase = api_partition.Phase.DEGRADED
        reason = "RepairImpossible" if repair_problem else "DeviceFailed"
        detail = f"devices failed: {', '.join(failed)}"
        if repair_problem:
            detail += f"; no repair: {repair_problem}"
        degraded = condition(conditions, "Degraded", True, reason, detail, generation)
    else:
        phase = api_partition.Phase.BOUND if all_bound else api_partition.Phase.ALLOCATED
        reason = "Placed"
        degraded = condition(conditions, "Degraded", False, "Healthy", "every device is healthy", generation)
    status: JSON = {
        "observedGeneration": generation,
        "phase": phase.value,
        "reason": reason,
        "message": degraded["message"] if failed else message,
        "allocation": slots,
        "tierSpan": decision.tier_span,
        "nodeCount": decision.node_count,
        "estimatedBandwidthGBps": decision.bandwidth_gbps,
        "conditions": [
            condition(conditions, "Allocated", True, "Placed", message, generation),
            condition(
                conditions,
                "Bound",
                all_bound,
                "AllSlotsBound" if all_bound else "WaitingForPods",
                "every slot has a pod"
                if all_bound
                else "pods labelled with the partition are bound at admission",
                generation,
            ),
            degraded,
            # conditions other writers own (RankTableWritten) are kept as they are
            *(c for c in conditions or () if c.get("type") not in _PLACED_CONDITIONS),
        ],
    }
    if rank_table is not None:
        status["rankTable"] = rank_table
    return status


def pending(reason: str, message: str, *, previous: JSON | None, generation: int | None) -> JSON:
    """Status of a partition that is not placed; `allocation` and the placement fields are cleared."""
    conditions = (previous or {}).get("conditions")
    return {
        "observedGeneration": generation,
        "phase": api_partition.Phase.PENDING.value,
        "reason": reason,
        "message": message,
        "allocation": None,
        "tierSpan": None,
        "nodeCount": None,
        "estimatedBandwidthGBps": None,
        "conditions": [condition(conditions, "Allocated", False, reason, message, generation)],
    }


def superpod(
    *,
    capacity: placement.Capacity | None,
    resource_name: str,
    nodes: int,
    ready_nodes: int,
    problems: Iterable[inventory.NodeProblem],
    previous: JSON | None,
    generation: int | None,
    error: str | None = None,
) -> JSON:
    """Status of a SuperPod: counts, largest blocks, fragmentation, Ready and Degraded conditions."""
    conditions = (previous or {}).get("conditions")
    problems = sorted(problems, key=lambda p: (p.reason, p.node))
    status: JSON = {
        "observedGeneration": generation,
        "resourceName": resource_name,
        "nodes": nodes,
        "readyNodes": ready_nodes,
    }
    if capacity is not None:
        status |= {
            "devices": capacity.api_devices().model_dump(by_alias=True),
            "partitions": capacity.partitions,
            "largestFreeBlock": [block.model_dump(by_alias=True) for block in capacity.api_blocks()],
            "fragmentation": round(capacity.fragmentation, 4),
        }
    if error is not None:
        ready = condition(conditions, "Ready", False, "InvalidSpec", error, generation)
    elif nodes == 0:
        ready = condition(
            conditions, "Ready", False, "NoNodes", "no node matches the SuperPod's selector", generation
        )
    else:
        message = f"{ready_nodes} of {nodes} nodes ready"
        ready = condition(conditions, "Ready", ready_nodes > 0, "Discovered", message, generation)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        degraded = condition(conditions, "Degraded", True, first.reason, first.message + more, generation)
    else:
        degraded = condition(
            conditions, "Degraded", False, "Healthy", "all member nodes report valid devices", generation
        )
    status["conditions"] = [ready, degraded]
    return status


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
