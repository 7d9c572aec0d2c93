"""The operator's own timings and error counts: histograms and counters the controller observes.

These are the only metrics with state of their own (a duration cannot be read back from a snapshot). They live
in `REGISTRY`, this package's registry (not prometheus_client's global one, so tests and several operators in
one process do not collide), next to the process collector and the fleet collector the exporter adds. Every
label value is created at import, so the first scrape already shows each series at zero.

The controller calls plain functions: `observe_placement(seconds)`, `observe_reconcile(resource, seconds)`,
`count_reconcile_error(resource)`, `observe_webhook(seconds, error=False)`, and `count_watch_restarts(resource,
n)` for its mirrors (list+watch), whose resources are known only when they start: each shows at zero from then;
`count_moves(superpod, reason, ...)` when it moves partitions (those series show from a SuperPod's first move).
"""

from __future__ import annotations

from collections.abc import Mapping

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry(auto_describe=True)
prometheus_client.ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes and friends

RESOURCES = ("partition", "superpod")
"""Values of the `resource` label: what a reconcile handled."""

# placement is pure CPU on an in-memory tree: 5 ms p99 on CloudMatrix 384, 500 ms on a 950 SuperCluster
_DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# reconciles and admission include API calls: docs/design.md targets webhook p99 <= 50 ms, apply-to-Allocated
# <= 250 ms
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PLACEMENT_SECONDS = prometheus_client.Histogram(
    "superpod_placement_decision_seconds",
    "Time the allocator took to decide one partition's placement (placed or rejected).",
    buckets=_DECISION_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "superpod_reconcile_seconds",
    "Time one reconcile took (a partition placed, released or refreshed; a SuperPod status written).",
    ["resource"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_ERRORS = prometheus_client.Counter(
    "superpod_reconcile_errors",
    "Reconciles that raised (kopf retries them).",
    ["resource"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = prometheus_client.Histogram(
    "superpod_webhook_duration_seconds",
    "Time the pod admission webhook took to answer one AdmissionReview.",
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ERRORS = prometheus_client.Counter(
    "superpod_webhook_errors",
    "Admission requests the webhook failed to answer (an error, not a deliberate denial).",
    registry=REGISTRY,
)

WATCH_RESTARTS = prometheus_client.Counter(
    "superpod_watch_restarts",
    "Watches of the operator's mirrors started again after an error (a broken stream, an error answer, an event "
    "that could not be read), by the resource followed.",
    ["resource"],
    registry=REGISTRY,
)

CONFLICTS = prometheus_client.Gauge(
    "superpod_partition_conflicts",
    "Partitions whose recorded placement is in conflict now (devices quarantined until it is settled), by "
    "SuperPod and reason (DeviceHeldElsewhere, DeviceMissing, NodeOutsideSuperPod, AllocationInvalid).",
    ["superpod", "reason"],
    registry=REGISTRY,
)
CONFLICTS_DETECTED = prometheus_client.Counter(
    "superpod_partition_conflicts_detected",
    "Recorded placements found in conflict when the operator rebuilt or verified its books, by reason.",
    ["reason"],
    registry=REGISTRY,
)
CONFLICT_REASONS = ("DeviceHeldElsewhere", "DeviceMissing", "NodeOutsideSuperPod", "AllocationInvalid")

for _reason in CONFLICT_REASONS:
    CONFLICTS_DETECTED.labels(reason=_reason)

PREEMPTION_REASONS = ("priority", "reclaim")
"""Values of the `reason` label of preemptions."""
PREEMPTIONS = prometheus_client.Counter(
    "superpod_preemptions",
    "Partitions preempted: by a higher-priority partition of the same quota (priority) or by the owner of "
    "borrowed devices taking them back (reclaim).",
    ["superpod", "reason"],
    registry=REGISTRY,
)

MOVE_REASONS = ("MakeRoom", "Compact")
"""Values of the `reason` label of moves: MakeRoom (for a partition the SuperPod was too fragmented for),
Compact (background compaction, spec.defragmentation.compactAbove)."""
MOVES = prometheus_client.Counter(
    "superpod_partition_moves",
    "Partitions the operator moved, by SuperPod and why.",
    ["superpod", "reason"],
    registry=REGISTRY,
)
DEVICES_MOVED = prometheus_client.Counter(
    "superpod_devices_moved",
    "Devices whose slot the operator moved to another device, by SuperPod.",
    ["superpod"],
    registry=REGISTRY,
)
DEFRAG_FRAGMENTATION = prometheus_client.Gauge(
    "superpod_defragmentation_fragmentation_ratio",
    "Fragmentation per tier just before and just after the operator's last moves on the SuperPod (after: the "
    "moves done, before the partition they made room for is placed).",
    ["superpod", "tier", "when"],
    registry=REGISTRY,
)

for _resource in RESOURCES:
    RECONCILE_SECONDS.labels(resource=_resource)
    RECONCILE_ERRORS.labels(resource=_resource)


def observe_placement(seconds: float) -> None:
    """One placement decision (`Allocator.plan_partition`) took `seconds`."""
    PLACEMENT_SECONDS.observe(seconds)


def observe_reconcile(resource: str, seconds: float) -> None:
    """One reconcile of a `resource` ("partition" or "superpod") took `seconds`."""
    RECONCILE_SECONDS.labels(resource=_known(resource)).observe(seconds)


def count_reconcile_error(resource: str) -> None:
    """A reconcile of a `resource` raised."""
    RECONCILE_ERRORS.labels(resource=_known(resource)).inc()


def observe_webhook(seconds: float, *, error: bool = False) -> None:
    """The admission webhook answered (or failed, `error=True`) after `seconds`."""
    WEBHOOK_SECONDS.observe(seconds)
    if error:
        WEBHOOK_ERRORS.inc()


def count_watch_restarts(resource: str, restarts: int) -> None:
    """A mirror of `resource` (for example `nodes`, `kube-system/configmaps`) started (0) or restarted (1)."""
    WATCH_RESTARTS.labels(resource=resource).inc(restarts)


def count_conflict(reason: str) -> None:
    """A partition's recorded placement was found in conflict, for `reason`."""
    CONFLICTS_DETECTED.labels(reason=reason).inc()


def set_conflicts(superpod: str, counts: Mapping[str, int]) -> None:
    """The SuperPod's partitions in conflict now, by reason (a reason left out is 0)."""
    for reason in sorted(set(CONFLICT_REASONS) | set(counts)):
        CONFLICTS.labels(superpod=superpod, reason=reason).set(counts.get(reason, 0))


def count_moves(
    superpod: str,
    reason: str,
    *,
    partitions: int,
    devices: int,
    before: tuple[tuple[str, float], ...],
    after: tuple[tuple[str, float], ...],
) -> None:
    """The operator moved `partitions` partitions (`devices` devices) on `superpod` for `reason`; the
    fragmentation per tier (`Capacity.fragmentation_by_tier`) before and after."""
    if reason not in MOVE_REASONS:
        raise ValueError(f"reason must be one of {', '.join(MOVE_REASONS)}, not {reason!r}")
    MOVES.labels(superpod=superpod, reason=reason).inc(partitions)
    DEVICES_MOVED.labels(superpod=superpod).inc(devices)
    for when, tiers in (("before", before), ("after", after)):
        for tier, ratio in tiers:
            DEFRAG_FRAGMENTATION.labels(superpod=superpod, tier=tier, when=when).set(ratio)


def _known(resource: str) -> str:
    if resource not in RESOURCES:
        raise ValueError(f"resource must be one of {', '.join(RESOURCES)}, not {resource!r}")
    return resource


def count_preemptions(superpod: str, *, priority: int = 0, reclaim: int = 0) -> None:
    """Victims of one preemption on `superpod`, by reason."""
    for reason, count in (("priority", priority), ("reclaim", reclaim)):
        PREEMPTIONS.labels(superpod=superpod, reason=reason).inc(count)
