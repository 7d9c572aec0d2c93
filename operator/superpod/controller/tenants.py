"""Who a partition belongs to and what it weighs: its quota, its priority, its charge. Pure.

The placement core knows tenants as quota names and partitions as `placement.quota.Workload`s; this module
turns the API's objects into those: a SuperPod's `spec.quotas` into `Quotas` over its usable devices, a
partition's namespace into its quota (the first quota that lists the namespace or whose namespaceSelector
matches its labels; none: the unquoted tenant), its PriorityClass into a priority and a preemption policy.
The facts that need the API (PriorityClass objects, namespace labels) are read by `clusterfacts` and passed
in as plain mappings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from superpod.api import superpod as api_superpod
from superpod.api import views
from superpod.cluster import selectors
from superpod.placement import quota as placement_quota

UNQUOTED = placement_quota.UNQUOTED


@dataclasses.dataclass(frozen=True)
class PriorityClass:
    """What the operator reads of a scheduling.k8s.io/v1 PriorityClass."""

    name: str
    value: int
    preemption_policy: placement_quota.PreemptionPolicy = (
        placement_quota.PreemptionPolicy.PREEMPT_LOWER_PRIORITY
    )
    global_default: bool = False

    @classmethod
    def from_object(cls, obj: Mapping[str, object]) -> PriorityClass:
        metadata = obj.get("metadata") or {}
        assert isinstance(metadata, Mapping)
        policy = str(obj.get("preemptionPolicy") or placement_quota.PreemptionPolicy.PREEMPT_LOWER_PRIORITY)
        value = obj.get("value") or 0
        return cls(
            name=str(metadata.get("name") or ""),
            value=int(value) if isinstance(value, int | str) else 0,
            preemption_policy=(
                placement_quota.PreemptionPolicy.NEVER
                if policy == placement_quota.PreemptionPolicy.NEVER
                else placement_quota.PreemptionPolicy.PREEMPT_LOWER_PRIORITY
            ),
            global_default=bool(obj.get("globalDefault")),
        )


DEFAULT_PRIORITY = PriorityClass(name="", value=0)
SYSTEM_PREFIX = "system-"  # Kubernetes reserves PriorityClass names with this prefix for its own components
HIGHEST_USER_PRIORITY = 1_000_000_000  # values above it are system classes' only (scheduling/types.go)


def reserved(priority_class: PriorityClass) -> bool:
    """A class Kubernetes keeps for its own critical components (system-node-critical and the like): a
    partition naming it would outrank every tenant's work, so none may use it."""
    return priority_class.name.startswith(SYSTEM_PREFIX) or priority_class.value > HIGHEST_USER_PRIORITY


def priority_of(name: str | None, classes: Mapping[str, PriorityClass]) -> PriorityClass | None:
    """The partition's PriorityClass: the one it names (None when no such class exists), else the
    globalDefault class (the one with the highest value if several claim it, as the scheduler does), else
    priority 0."""
    if name:
        return classes.get(name)
    defaults = [pc for pc in classes.values() if pc.global_default]
    return max(defaults, key=lambda pc: (pc.value, pc.name)) if defaults else DEFAULT_PRIORITY


def quota_specs(spec: api_superpod.SuperPodSpec | None) -> Sequence[api_superpod.QuotaSpec]:
    return (spec.quotas or []) if spec is not None else []


def needs_namespace_labels(spec: api_superpod.SuperPodSpec | None) -> bool:
    return any(quota.namespace_selector is not None for quota in quota_specs(spec))


def quotas(spec: api_superpod.SuperPodSpec | None, usable: int) -> placement_quota.Quotas:
    """The SuperPod's quotas over its `usable` (non-reserve) devices."""
    return placement_quota.Quotas(
        [
            placement_quota.Quota(quota.name, quota.npus, placement_quota.Borrowing(quota.borrowing.value))
            for quota in quota_specs(spec)
        ],
        usable,
    )


def tenant_of(
    namespace: str, spec: api_superpod.SuperPodSpec | None, labels: Mapping[str, str] | None
) -> str:
    """The quota covering `namespace` (the first that lists it or selects its `labels`), else UNQUOTED.
    A namespace whose labels are unknown (`labels` None) is matched by name only."""
    for quota in quota_specs(spec):
        if quota.namespaces is not None:
            if namespace in quota.namespaces:
                return quota.name
        elif labels is not None and selectors.matches(quota.namespace_selector, labels):
            return quota.name
    return UNQUOTED


def seconds(timestamp: str) -> float:
    """An RFC 3339 creationTimestamp as seconds since the epoch (0 when absent or unreadable)."""
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def workload(
    view: views.Partition,
    *,
    tenant: str,
    priority: PriorityClass,
    queued: float | None = None,
) -> placement_quota.Workload:
    """A partition as quotas, the queue and preemption see it."""
    return placement_quota.Workload(
        id=view.key,
        npus=view.npus,
        tenant=tenant,
        priority=priority.value,
        preemption_policy=priority.preemption_policy,
        created=seconds(view.created),
        queued=queued,
        running_pods=len(view.bound_pods),
    )


def quota_problem(quotas: placement_quota.Quotas) -> str | None:
    """Why the nominal shares cannot all be met (they add up to more than the usable devices), or None."""
    return quotas.problem() if quotas.enabled else None
