"""Status of a SuperPod, derived by a pure function of its model, its nodes' problems and its quotas.

Counts and largest free blocks from the allocator's capacity, the Ready and Degraded conditions, Overlap while
another SuperPod selects some of its nodes, and, with quotas, their usage and the QuotasFit condition. Like a
partition's status (`status`), it takes the time now from its caller, and the operator writes it only when it
differs from what the SuperPod shows (`status.changed`).
"""

from __future__ import annotations

from collections.abc import Iterable

from superpod import placement
from superpod.api import common, reasons
from superpod.cluster import inventory
from superpod.controller import status

JSON = common.JSON
Condition = reasons.ConditionType


def derive(
    *,
    capacity: placement.Capacity | None,
    resource_name: str,
    nodes: int,
    ready_nodes: int,
    problems: Iterable[inventory.NodeProblem],
    previous: JSON | None,
    generation: int | None,
    now: str,
    error: str | None = None,
    overlap: str | None = None,
    quotas: list[JSON] | None = None,
    quota_problem: str | None = None,
) -> JSON:
    """Status of a SuperPod: counts, largest blocks, fragmentation, Ready and Degraded conditions, Overlap
    while another SuperPod selects some of its nodes (`overlap` says which and who keeps them); with quotas,
    their usage (`quotas`) and the QuotasFit condition (False with `quota_problem`)."""
    conditions = (previous or {}).get("conditions")
    problems = sorted(problems, key=lambda p: (p.reason, p.node))
    out: JSON = {
        "observedGeneration": generation,
        "resourceName": resource_name,
        "nodes": nodes,
        "readyNodes": ready_nodes,
    }
    if capacity is not None:
        out |= {
            "devices": capacity.api_devices().model_dump(by_alias=True),
            "partitions": capacity.partitions,
            "largestFreeBlock": [block.model_dump(by_alias=True) for block in capacity.api_blocks()],
            "fragmentation": round(capacity.fragmentation, 4),
        }
    why = reasons.SuperPodReason
    if error is not None:
        ready = status.condition(conditions, Condition.READY, False, why.INVALID_SPEC, error, generation, now)
    elif nodes == 0:
        message = "no node matches the SuperPod's selector"
        ready = status.condition(conditions, Condition.READY, False, why.NO_NODES, message, generation, now)
    else:
        message = f"{ready_nodes} of {nodes} nodes ready"
        ready = status.condition(
            conditions, Condition.READY, ready_nodes > 0, why.DISCOVERED, message, generation, now
        )
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        message = first.message + more
        degraded = status.condition(
            conditions, Condition.DEGRADED, True, first.reason, message, generation, now
        )
    else:
        message = "all member nodes report valid devices"
        degraded = status.condition(
            conditions, Condition.DEGRADED, False, why.HEALTHY, message, generation, now
        )
    out["conditions"] = [ready, degraded]
    if overlap is not None:
        out["conditions"].append(
            status.condition(conditions, Condition.OVERLAP, True, why.NODES_SHARED, overlap, generation, now)
        )
    elif any(c.get("type") == Condition.OVERLAP for c in conditions or ()):
        message = "no other SuperPod selects its nodes"
        out["conditions"].append(
            status.condition(conditions, Condition.OVERLAP, False, why.NO_OVERLAP, message, generation, now)
        )
    out["quotas"] = quotas  # None clears what a removed spec.quotas left
    if quotas is not None:
        fit = quota_problem is None
        out["conditions"].append(
            status.condition(
                conditions,
                Condition.QUOTAS_FIT,
                fit,
                why.QUOTAS_FIT if fit else why.QUOTAS_EXCEED_CAPACITY,
                "the nominal shares fit in the usable devices" if fit else str(quota_problem),
                generation,
                now,
            )
        )
    return out
