"""The fleet's gauges, computed from a `FleetSnapshot` on every scrape (a prometheus_client custom collector).

No bookkeeping on changes: `FleetCollector.collect()` takes a snapshot and derives every series from it, so what
Prometheus sees is what the operator holds at that instant. Label values are bounded: states, phases and pending
reasons come from fixed lists (unknown values become `Other`), tiers from the profile, nodes and partitions from
the cluster (as kube-state-metrics does), and one info series per allocated device (as NPU-Exporter has one
series per device). For each SuperPod every state, phase and reason is present, at zero when nothing is in it.

`SERIES` is the catalogue (name, type, labels, meaning) that docs/metrics.md lists; a test holds them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import core, registry

from superpod.api import partition as api_partition
from superpod.metrics import snapshot as fleet_snapshot

DEVICE_STATES = ("free", "allocated", "unhealthy", "reserved")
DOMAIN_STATES = ("empty", "partial", "full", "reserved")
NODE_STATES = ("ready", "not_ready", "left_out")
PHASES = tuple(phase.value for phase in api_partition.Phase)
PENDING_REASONS = (*(reason.value for reason in api_partition.PendingReason), "Other")
OTHER = "Other"
GIGABYTE = 1e9


@dataclasses.dataclass(frozen=True)
class Series:
    """One metric family the exporter serves."""

    name: str
    type: str  # gauge, counter, histogram
    labels: tuple[str, ...]
    help: str


_P = ("superpod", "namespace", "partition")
SERIES: tuple[Series, ...] = (
    Series("superpod_info", "gauge", ("superpod", "profile"), "1 per SuperPod the operator knows, with its hardware profile."),
    Series("superpod_devices", "gauge", ("superpod", "state"), "Devices by state (free, allocated, unhealthy, reserved); the states add up to every device of the SuperPod."),
    Series("superpod_domains", "gauge", ("superpod", "tier", "state"), "Domains of each tier (node and wider) by occupancy: empty (every device free), partial, full (no free device), reserved (reserve nodes only)."),
    Series("superpod_largest_free_block_devices", "gauge", ("superpod", "tier"), "Most free devices inside one domain of the tier: the largest block a partition could get within that tier."),
    Series("superpod_fragmentation_ratio", "gauge", ("superpod", "tier"), "Share of free devices inside domains of the tier that partitions already use (0: every free device is in an untouched domain)."),
    Series("superpod_nodes", "gauge", ("superpod", "state"), "Member nodes: ready, not_ready, left_out (device information unusable)."),
    Series("superpod_node_devices", "gauge", ("superpod", "node", "rack", "state"), "Devices of one node by state; rack is the device plugin's RackID (empty when unknown)."),
    Series("superpod_node_unhealthy_devices", "gauge", ("superpod", "node"), "Unhealthy devices of one node (unhealthy, network-unhealthy, recovering or separated), held by a partition or not."),
    Series("superpod_node_ub_switch_faults", "gauge", ("superpod", "node"), "UB (HCCS-L2) switch faults the node's device plugin reports."),
    Series("superpod_partitions", "gauge", ("superpod", "phase"), "Partitions by phase (Pending, Allocated, Bound, Degraded, Failed, Terminating)."),
    Series("superpod_pending_partitions", "gauge", ("superpod", "reason"), "Pending partitions by reason (InsufficientCapacity, Fragmented, Unsatisfiable, SuperPodNotFound, SuperPodNotReady, Other)."),
    Series("superpod_quota_nominal_devices", "gauge", ("superpod", "quota"), "A quota's nominal share of the SuperPod (spec.quotas[].npus)."),
    Series("superpod_quota_used_devices", "gauge", ("superpod", "quota"), "Devices the quota's placed partitions are charged (their npus)."),
    Series("superpod_quota_borrowed_devices", "gauge", ("superpod", "quota"), "Devices the quota uses above its nominal share (idle shares of other quotas)."),
    Series("superpod_quota_pending_partitions", "gauge", ("superpod", "quota", "reason"), "Pending partitions by quota and reason (quota empty: namespaces no quota covers)."),
    Series("superpod_preemptions_total", "counter", ("superpod", "reason"), "Partitions preempted, by reason: priority (a higher-priority partition of the same quota) or reclaim (the owner of borrowed devices took them back)."),
    Series("superpod_partition_phase", "gauge", (*_P, "phase"), "1 for the partition's current phase, 0 for the others."),
    Series("superpod_partition_devices", "gauge", _P, "Devices a placed partition holds."),
    Series("superpod_partition_nodes", "gauge", _P, "Nodes a placed partition spans."),
    Series("superpod_partition_tier_span", "gauge", (*_P, "tier"), "The tightest tier one of whose domains holds the whole partition; the value is the tier's index in the profile (0 = tightest)."),
    Series("superpod_partition_estimated_bandwidth_bytes_per_second", "gauge", _P, "Per-device bandwidth of the partition's tier span, from the profile's tier model (one direction)."),
    Series("superpod_partition_device_info", "gauge", (*_P, "node", "device", "id"), "1 per device a partition holds; id is NPU-Exporter's device id, so its series join on (node, id)."),
    Series("superpod_placement_decision_seconds", "histogram", (), "Time the allocator took to decide one placement."),
    Series("superpod_reconcile_seconds", "histogram", ("resource",), "Time one reconcile took, by resource (partition, superpod)."),
    Series("superpod_reconcile_errors_total", "counter", ("resource",), "Reconciles that raised, by resource."),
    Series("superpod_webhook_duration_seconds", "histogram", (), "Time the pod admission webhook took to answer."),
    Series("superpod_webhook_errors_total", "counter", (), "Admission requests the webhook failed to answer."),
    Series("superpod_partition_conflicts", "gauge", ("superpod", "reason"), "Partitions whose recorded placement is in conflict now, by reason; their devices are quarantined until it is settled."),
    Series("superpod_partition_conflicts_detected_total", "counter", ("reason",), "Recorded placements found in conflict, by reason."),
)  # fmt: skip


def _gauge(name: str) -> core.GaugeMetricFamily:
    series = next(s for s in SERIES if s.name == name)
    return core.GaugeMetricFamily(series.name, series.help, labels=list(series.labels))


def device_id(device: str) -> str:
    """NPU-Exporter's `id` label of a device: the device plugin names devices `<prefix><id>`."""
    _, _, suffix = device.rpartition("-")
    return suffix if suffix.isdigit() else device


def families(snap: fleet_snapshot.FleetSnapshot) -> Iterator[core.Metric]:
    """Every gauge family of the snapshot."""
    yield from _superpod_families(snap.superpods)
    yield from _partition_families(snap)


def _superpod_families(superpods: Iterable[fleet_snapshot.SuperPodSnapshot]) -> Iterator[core.Metric]:
    info, devices, domains = _gauge("superpod_info"), _gauge("superpod_devices"), _gauge("superpod_domains")
    blocks, fragmentation = (
        _gauge("superpod_largest_free_block_devices"),
        _gauge("superpod_fragmentation_ratio"),
    )
    nodes, node_devices = _gauge("superpod_nodes"), _gauge("superpod_node_devices")
    nominal, used, borrowed = (
        _gauge("superpod_quota_nominal_devices"),
        _gauge("superpod_quota_used_devices"),
        _gauge("superpod_quota_borrowed_devices"),
    )
    node_unhealthy, switches = (
        _gauge("superpod_node_unhealthy_devices"),
        _gauge("superpod_node_ub_switch_faults"),
    )
    for pod in superpods:
        info.add_metric([pod.name, pod.profile], 1)
        capacity = pod.capacity
        counts = (
            (capacity.free, capacity.allocated, capacity.unhealthy, capacity.reserved)
            if capacity
            else (0, 0, 0, 0)
        )
        for state, count in zip(DEVICE_STATES, counts, strict=True):
            devices.add_metric([pod.name, state], count)
        if capacity is not None:
            for tier, size in capacity.largest_free_block:
                blocks.add_metric([pod.name, tier], size)
            for tier, ratio in capacity.fragmentation_by_tier:
                fragmentation.add_metric([pod.name, tier], ratio)
        ready = sum(1 for node in pod.nodes if node.ready)
        for state, count in zip(NODE_STATES, (ready, len(pod.nodes) - ready, pod.left_out), strict=True):
            nodes.add_metric([pod.name, state], count)
        for tier, by_state in _domain_states(pod).items():
            for state in DOMAIN_STATES:
                domains.add_metric([pod.name, tier, state], by_state.get(state, 0))
        for node in pod.nodes:
            values = (node.free, node.allocated, node.unhealthy, node.reserved)
            for state, count in zip(DEVICE_STATES, values, strict=True):
                node_devices.add_metric([pod.name, node.name, node.rack, state], count)
            node_unhealthy.add_metric([pod.name, node.name], node.unhealthy_total)
            switches.add_metric([pod.name, node.name], node.switch_faults)
        for quota in pod.quotas:
            nominal.add_metric([pod.name, quota.name], quota.nominal)
            used.add_metric([pod.name, quota.name], quota.used)
            borrowed.add_metric([pod.name, quota.name], quota.borrowed)
    yield from (info, devices, domains, blocks, fragmentation, nodes, node_devices, node_unhealthy, switches)
    yield from (nominal, used, borrowed)


def _domain_states(pod: fleet_snapshot.SuperPodSnapshot) -> dict[str, dict[str, int]]:
    """tier -> occupancy state -> domains, for the node tier and wider (tiers in profile order)."""
    totals: dict[tuple[str, str], list[int]] = {}  # (tier, domain) -> free, allocated, unhealthy, reserved
    for node in pod.nodes:
        for tier, domain in node.domains:
            acc = totals.setdefault((tier, domain), [0, 0, 0, 0])
            for i, value in enumerate((node.free, node.allocated, node.unhealthy, node.reserved)):
                acc[i] += value
    result: dict[str, dict[str, int]] = {tier: {} for tier in pod.tiers if any(t == tier for t, _ in totals)}
    for (tier, _), (free, allocated, unhealthy, reserved) in totals.items():
        if reserved and not free and not allocated:
            state = "reserved"
        elif not (allocated or unhealthy or reserved):
            state = "empty"
        elif free == 0:
            state = "full"
        else:
            state = "partial"
        result[tier][state] = result[tier].get(state, 0) + 1
    return result


def _partition_families(snap: fleet_snapshot.FleetSnapshot) -> Iterator[core.Metric]:
    by_phase, pending = _gauge("superpod_partitions"), _gauge("superpod_pending_partitions")
    phase_of, devices, nodes = (
        _gauge("superpod_partition_phase"),
        _gauge("superpod_partition_devices"),
        _gauge("superpod_partition_nodes"),
    )
    span, bandwidth, device_info = (
        _gauge("superpod_partition_tier_span"),
        _gauge("superpod_partition_estimated_bandwidth_bytes_per_second"),
        _gauge("superpod_partition_device_info"),
    )
    tiers = {pod.name: pod.tiers for pod in snap.superpods}
    quota_pending = _gauge("superpod_quota_pending_partitions")
    with_quotas = {pod.name for pod in snap.superpods if pod.quotas}
    quota_reasons: dict[tuple[str, str], dict[str, int]] = {
        (pod.name, quota.name): {} for pod in snap.superpods for quota in pod.quotas
    }
    phase_counts: dict[str, dict[str, int]] = {pod.name: {} for pod in snap.superpods}
    reason_counts: dict[str, dict[str, int]] = {pod.name: {} for pod in snap.superpods}
    for part in snap.partitions:
        phase = part.phase if part.phase in PHASES else OTHER
        counts = phase_counts.setdefault(part.superpod, {})
        counts[phase] = counts.get(phase, 0) + 1
        if phase == api_partition.Phase.PENDING.value:
            reason = part.reason if part.reason in PENDING_REASONS else OTHER
            reasons = reason_counts.setdefault(part.superpod, {})
            reasons[reason] = reasons.get(reason, 0) + 1
            if part.superpod in with_quotas:
                by_quota = quota_reasons.setdefault((part.superpod, part.quota), {})
                by_quota[reason] = by_quota.get(reason, 0) + 1
        labels = [part.superpod, part.namespace, part.name]
        for value in PHASES:
            phase_of.add_metric([*labels, value], 1 if value == part.phase else 0)
        placed = part.placement
        if placed is None:
            continue
        held = [(node, device) for node, node_devices in placed.held for device in node_devices]
        devices.add_metric(labels, len(held))
        nodes.add_metric(labels, placed.node_count)
        order = tiers.get(part.superpod, ())
        span.add_metric(
            [*labels, placed.tier_span], order.index(placed.tier_span) if placed.tier_span in order else -1
        )
        bandwidth.add_metric(labels, placed.bandwidth_gbps * GIGABYTE)
        for node, device in held:
            device_info.add_metric([*labels, node, device, device_id(device)], 1)
    for pod_name, counts in sorted(phase_counts.items()):
        for phase in (*PHASES, *([OTHER] if OTHER in counts else [])):
            by_phase.add_metric([pod_name, phase], counts.get(phase, 0))
    for pod_name, reasons in sorted(reason_counts.items()):
        for reason in PENDING_REASONS:
            pending.add_metric([pod_name, reason], reasons.get(reason, 0))
    for (pod_name, quota_name), reasons in sorted(quota_reasons.items()):
        for reason in PENDING_REASONS:
            quota_pending.add_metric([pod_name, quota_name, reason], reasons.get(reason, 0))
    yield from (by_phase, pending, quota_pending, phase_of, devices, nodes, span, bandwidth, device_info)


class FleetCollector(registry.Collector):
    """Registers with a CollectorRegistry; each scrape calls `capture()` once."""

    def __init__(self, capture: Callable[[], fleet_snapshot.FleetSnapshot]) -> None:
        self._capture = capture

    def describe(self) -> Iterable[core.Metric]:
        return ()  # do not take a snapshot at registration

    def collect(self) -> Iterable[core.Metric]:
        return list(families(self._capture()))
