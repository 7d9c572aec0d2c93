"""The operator's admission pass, offline, for `superpod plan`: quotas, priorities and preemption.

Each partition is decided when it arrives (in file order, as `kubectl apply` creates them), by the pass
the operator runs when a partition is created (`controller.queuepass`): within the SuperPod's quotas, with
its PriorityClass (PriorityClass documents in the input; none: priority 0), preempting what it may.
Victims turn Pending, Preempted; the plan does not place them again. `explain` gives each partition's
`placement.explain` line (`--explain`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.controller import queuepass, tenants
from superpod.placement import allocator as placement_allocator
from superpod.placement import explain as placement_explain
from superpod.placement import queue, result
from superpod.placement import quota as placement_quota

JSON = dict[str, Any]
Decision = result.Placement | result.Rejection


@dataclasses.dataclass
class Outcome:
    decisions: dict[str, Decision]  # partition -> its placement or why it waits, in arrival order
    explanations: dict[str, str]  # partition -> one line: why
    usage: tuple[placement_quota.TenantUsage, ...]  # per quota, at the end (empty without quotas)
    borrowed: dict[str, int]  # placed partition -> its devices beyond its quota's share


def facts(documents: Sequence[JSON]) -> queuepass.Facts:
    """PriorityClasses and Namespace labels given in the input."""
    classes: dict[str, tenants.PriorityClass] = {}
    labels: dict[str, Mapping[str, str] | None] = {}
    for doc in documents:
        metadata = doc.get("metadata") or {}
        if doc.get("kind") == "PriorityClass":
            priority_class = tenants.PriorityClass.from_object(doc)
            classes[priority_class.name] = priority_class
        elif doc.get("kind") == "Namespace":
            labels[str(metadata.get("name", ""))] = dict(metadata.get("labels") or {})
    return queuepass.Facts(classes, labels)


def decide(
    allocator: placement_allocator.Allocator,
    spec: api_superpod.SuperPodSpec | None,
    partitions: Sequence[tuple[str, JSON]],
    given: queuepass.Facts,
) -> Outcome:
    """Decide on `partitions` ((id, object) in arrival order), one pass each; `allocator` is changed."""
    tenancy = queuepass.Tenancy(spec, queuepass.usable_devices(allocator), given)
    objects: dict[str, JSON] = {}
    decisions: dict[str, Decision] = {}
    explanations: dict[str, str] = {}
    ledger = placement_quota.Ledger(tenancy.quotas)
    for pid, obj in partitions:
        objects[pid] = {key: value for key, value in obj.items() if key != "status"}
        outcome = queuepass.run(
            allocator, tenancy, objects, [pid], now=0.0, since={pid: 0.0}, reserve_after=float("inf")
        )
        ledger = outcome.ledger
        before = placement_quota.Ledger(tenancy.quotas, outcome.before.values())
        for refused in outcome.refused:
            if refused.failed:
                raise ValueError(f"partition {pid}: {refused.message}")
            decisions[pid] = result.Rejection(api_partition.PendingReason(refused.reason), refused.message)
            explanations[pid] = f"waits for its PriorityClass: {refused.message}"
        for decision in outcome.decisions:
            explanations[pid] = placement_explain.explain(decision, before, outcome.before)
            if isinstance(decision, queue.Wait):
                decisions[pid] = result.Rejection(decision.reason, decision.message)
                continue
            decisions[pid] = decision.placement
            for victim in decision.victims:
                line = placement_explain.preempted(outcome.before[victim], decision, before)
                decisions[victim] = result.Rejection(api_partition.PendingReason.PREEMPTED, line)
                explanations[victim] = line
    usage = tuple(u for u in ledger.usage() if u.tenant) if ledger.quotas.enabled else ()
    return Outcome(decisions, explanations, usage, ledger.borrowed_by_partition())
