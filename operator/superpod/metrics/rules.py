"""Alert and recording rules, as data; `generate` writes them as plain Prometheus rule files into the chart.

Alerts go to `helm/superpod-operator/files/alerts.yaml` (the chart's PrometheusRule embeds it), recording rules
to `files/recording-rules.yaml`. Every alert carries a `runbook` annotation: the first thing to run or read.
Expressions aggregate with `max by` over operator series, since a standby replica exports the same fleet as the
active one, and reach NPU-Exporter series only through `promql`'s joins.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from superpod.metrics import promql

OPERATOR_JOB = "superpod-operator"
"""The scrape job of the operator: the chart's ServiceMonitor sets it from app.kubernetes.io/part-of."""
FRAGMENTATION_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str  # `for`
    severity: str  # warning or critical
    summary: str
    description: str
    runbook: str


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="SuperPodPartitionDegraded",
        expr='max by (superpod, namespace, partition) (superpod_partition_phase{phase="Degraded"}) == 1',
        duration="2m",
        severity="warning",
        summary="Partition {{ $labels.namespace }}/{{ $labels.partition }} is degraded",
        description="Partition {{ $labels.namespace }}/{{ $labels.partition }} on SuperPoD {{ $labels.superpod }} holds failed devices and runs below its placement.",
        runbook="kubectl -n {{ $labels.namespace }} describe superpodpartition {{ $labels.partition }}: the Degraded condition names the failed devices and whether a repair onto a reserve node is possible; with repairPolicy Manual, delete the pods on the failed devices to let them move.",
    ),
    Alert(
        name="SuperPodDeviceUnhealthy",
        expr="max by (superpod, node) (superpod_node_unhealthy_devices) > 0",
        duration="5m",
        severity="warning",
        summary="{{ $value }} unhealthy NPU devices on node {{ $labels.node }}",
        description="The Ascend device plugin reports unhealthy, network-unhealthy, recovering or separated devices on node {{ $labels.node }} of SuperPoD {{ $labels.superpod }}; they are out of the free pool.",
        runbook="kubectl -n kube-system get configmap mindx-dl-deviceinfo-{{ $labels.node }} -o jsonpath='{.data.DeviceInfoCfg}': the -Unhealthy, -NetworkUnhealthy and -Fault lists name the devices and fault codes; drain the node if they persist.",
    ),
    Alert(
        name="SuperPodUBSwitchFault",
        expr=(
            "(max by (superpod, node) (superpod_node_ub_switch_faults) > 0)"
            f" or ({promql.node_hccs_errors()} > 0)"
        ),
        duration="1m",
        severity="critical",
        summary="UB switch fault seen from node {{ $labels.node }} of SuperPoD {{ $labels.superpod }}",
        description="The device plugin reports a UB (HCCS-L2) switch fault for node {{ $labels.node }}, or its HCCS links count CRC errors: bandwidth between the SuperPoD's nodes is cut.",
        runbook="kubectl -n kube-system get configmap mindx-dl-deviceinfo-{{ $labels.node }} -o jsonpath='{.data.SwitchInfoCfg}': the fault codes name the switch chip and port; open a hardware ticket and check the Degraded partitions on the node.",
    ),
    Alert(
        name="SuperPodPartitionsPendingWhileFragmented",
        expr=(
            "(sum by (superpod) (max by (superpod, reason)"
            ' (superpod_pending_partitions{reason=~"Fragmented|InsufficientCapacity"})) > 0)'
            " and on (superpod)"
            f' (max by (superpod) (superpod_fragmentation_ratio{{tier="node"}}) > {FRAGMENTATION_THRESHOLD:g})'
        ),
        duration="15m",
        severity="warning",
        summary="Partitions wait while SuperPoD {{ $labels.superpod }} is fragmented",
        description="{{ $value }} partitions are pending for capacity on SuperPoD {{ $labels.superpod }} while more than half of its free devices sit on nodes other partitions already use.",
        runbook="kubectl get spp -A: the pending ones show reason Fragmented or InsufficientCapacity and a message with the largest free block; superpod_largest_free_block_devices shows what fits now; finishing or recreating small partitions frees whole nodes.",
    ),
    Alert(
        name="SuperPodTenantStarved",
        expr=(
            "(max by (superpod, quota) (superpod_quota_used_devices)"
            " < max by (superpod, quota) (superpod_quota_nominal_devices))"
            " and on (superpod, quota)"
            " (sum by (superpod, quota) (max by (superpod, quota, reason) (superpod_quota_pending_partitions)) > 0)"
        ),
        duration="15m",
        severity="warning",
        summary="Quota {{ $labels.quota }} of SuperPoD {{ $labels.superpod }} waits below its nominal share",
        description="Quota {{ $labels.quota }} uses {{ $value }} devices of SuperPoD {{ $labels.superpod }}, less than its nominal share, while partitions of it are pending.",
        runbook="kubectl get spp -A -o wide: the quota's pending partitions show their reason (QuotaExceeded names the numbers; Preempting waits for victims' pods to be evicted: check PodDisruptionBudgets); kubectl get spod {{ $labels.superpod }} -o jsonpath='{.status.quotas}' shows who borrows.",
    ),
    Alert(
        name="SuperPodOperatorDown",
        expr=f'absent(up{{job="{OPERATOR_JOB}"}} == 1)',
        duration="5m",
        severity="critical",
        summary="No superpod-operator replica is being scraped",
        description="Prometheus has no healthy superpod-operator target: partitions are not placed, and labelled pods are rejected by the webhook (failurePolicy Fail).",
        runbook="kubectl -n <release namespace> get pods -l app.kubernetes.io/part-of=superpod-operator, then kubectl logs on the failing pod; check the ServiceMonitor still selects the metrics Service.",
    ),
    Alert(
        name="SuperPodWebhookErrors",
        expr="sum(rate(superpod_webhook_errors_total[5m])) > 0",
        duration="5m",
        severity="warning",
        summary="The superpod admission webhook is failing requests",
        description="{{ $value }} webhook errors per second: labelled pods are not being bound to their partition slots.",
        runbook="kubectl logs the operator for /mutate-pods errors; check the webhook certificate matches the Service (kubectl get mutatingwebhookconfiguration superpod-operator -o yaml, caBundle).",
    ),
)


@dataclasses.dataclass(frozen=True)
class Recording:
    record: str
    expr: str


WINDOW = promql.RATE_WINDOW
PARTITION_TRANSMIT = "superpod_partition:interconnect_transmit_bytes_per_second:sum"
PARTITION_RECEIVE = "superpod_partition:interconnect_receive_bytes_per_second:sum"
PARTITION_ERRORS = f"superpod_partition:interconnect_errors_per_second:rate{WINDOW}"
TIER_TRANSMIT = "superpod_tier:interconnect_transmit_bytes_per_second:sum"
TIER_RECEIVE = "superpod_tier:interconnect_receive_bytes_per_second:sum"
TIER_ERRORS = f"superpod_tier:interconnect_errors_per_second:rate{WINDOW}"
NODE_LINKS_DOWN = "superpod_node:npu_links_down:sum"
NODE_HCCS_ERRORS = f"superpod_node:hccs_crc_errors_per_second:rate{WINDOW}"

RECORDINGS: tuple[Recording, ...] = (
    Recording(PARTITION_TRANSMIT, promql.partition_traffic("transmit")),
    Recording(PARTITION_RECEIVE, promql.partition_traffic("receive")),
    Recording(PARTITION_ERRORS, promql.partition_errors()),
    Recording(TIER_TRANSMIT, promql.superpod_traffic("transmit")),
    Recording(TIER_RECEIVE, promql.superpod_traffic("receive")),
    Recording(TIER_ERRORS, promql.superpod_errors()),
    Recording(NODE_LINKS_DOWN, promql.node_links_down()),
    Recording(NODE_HCCS_ERRORS, promql.node_hccs_errors()),
)
"""Level `superpod_partition` has labels superpod, namespace, partition, tier; `superpod_tier` superpod, tier;
`superpod_node` superpod, node (tier hccs/roce as in `promql`)."""


def alert_groups() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "superpod-operator.alerts",
                "rules": [
                    {
                        "alert": alert.name,
                        "expr": alert.expr,
                        "for": alert.duration,
                        "labels": {"severity": alert.severity},
                        "annotations": {
                            "summary": alert.summary,
                            "description": alert.description,
                            "runbook": alert.runbook,
                        },
                    }
                    for alert in ALERTS
                ],
            }
        ]
    }


def recording_groups() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "superpod-operator.interconnect",
                "rules": [{"record": rule.record, "expr": rule.expr} for rule in RECORDINGS],
            }
        ]
    }
