"""The Grafana dashboard, as data: panels, their queries and the template variables, and its JSON.

`generate` writes `dashboard()` to `helm/superpod-operator/files/dashboard.json` (the chart ships it as a
ConfigMap for Grafana's sidecar) and `render_dashboard` draws the same panels from a Prometheus. Queries read
`superpod_*` series with `max by` (a standby replica exports the same fleet as the active one) and NPU-Exporter
series only through the recording rules of `rules` (`files/recording-rules.yaml`, which the Prometheus must
load): the joins are the most expensive queries, evaluated once per interval rather than per panel refresh. Variables: datasource, superpod, namespace, partition (multi,
with All).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from superpod.metrics import rules

UID = "superpod-operator"
SP = 'superpod=~"$superpod"'
PART = 'superpod=~"$superpod", namespace=~"$namespace", partition=~"$partition"'


@dataclasses.dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # one value now (tables, bar gauges) rather than a range


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # Grafana panel type: timeseries, table, bargauge, stat
    targets: tuple[Target, ...]
    unit: str = "short"
    width: int = 8  # of 24 columns
    height: int = 8
    description: str = ""
    stacked: bool = False


def _partition_query(series: str, extra: str = "") -> str:
    return f"max by (superpod, namespace, partition{extra}) ({series}{{{PART}}})"


def _occupancy(by: str) -> str:
    """Allocated share of the devices of each `by` (rack or node)."""

    def devices(state: str = "") -> str:
        return f"max by (superpod, node, rack, state) (superpod_node_devices{{{SP}{state}}})"

    allocated = devices(', state="allocated"')
    return f"sum by (superpod, {by}) ({allocated}) / sum by (superpod, {by}) ({devices()})"


def _quota_query(series: str) -> str:
    return f"max by (superpod, quota) ({series}{{{SP}}})"


# devices of its share a quota does not use while partitions of it wait; 0 when it is not starved
STARVED = (
    f"clamp_min({_quota_query('superpod_quota_nominal_devices')} - {_quota_query('superpod_quota_used_devices')}, 0)"
    " * on (superpod, quota)"
    f" (sum by (superpod, quota) (max by (superpod, quota, reason) (superpod_quota_pending_partitions{{{SP}}})) > bool 0)"
)


PANELS: tuple[Panel, ...] = (
    # ---- capacity and fragmentation
    Panel(
        "Devices by state",
        "timeseries",
        (Target(f"max by (superpod, state) (superpod_devices{{{SP}}})", "{{superpod}} {{state}}"),),
        stacked=True,
        description="Free, allocated, unhealthy (unheld) and reserved devices; they add up to every device.",
    ),
    Panel(
        "Largest free block per tier",
        "timeseries",
        (
            Target(
                f"max by (superpod, tier) (superpod_largest_free_block_devices{{{SP}}})",
                "{{superpod}} {{tier}}",
            ),
        ),
        description="The biggest partition block that fits inside one domain of each tier right now.",
    ),
    Panel(
        "Fragmentation per tier",
        "timeseries",
        (Target(f"max by (superpod, tier) (superpod_fragmentation_ratio{{{SP}}})", "{{superpod}} {{tier}}"),),
        unit="percentunit",
        description="Share of free devices inside domains partitions already use.",
    ),
    # ---- partitions
    Panel(
        "Partitions",
        "table",
        (
            Target(f"{_partition_query('superpod_partition_phase', ', phase')} == 1", "phase", instant=True),
            Target(_partition_query("superpod_partition_devices"), "devices", instant=True),
            Target(_partition_query("superpod_partition_nodes"), "nodes", instant=True),
            Target(_partition_query("superpod_partition_tier_span", ", tier"), "tier span", instant=True),
            Target(
                _partition_query("superpod_partition_estimated_bandwidth_bytes_per_second"),
                "bandwidth per device",
                instant=True,
            ),
        ),
        width=16,
        description="Every partition with its phase, devices, nodes, tier span and estimated bandwidth.",
    ),
    Panel(
        "Partitions by phase and pending reason",
        "timeseries",
        (
            Target(f"max by (superpod, phase) (superpod_partitions{{{SP}}})", "{{phase}}"),
            Target(f"max by (superpod, reason) (superpod_pending_partitions{{{SP}}})", "pending: {{reason}}"),
        ),
    ),
    # ---- tenants: quotas, waiting, preemptions
    Panel(
        "Quota use per tenant",
        "timeseries",
        (
            Target(_quota_query("superpod_quota_used_devices"), "{{superpod}} {{quota}} used"),
            Target(_quota_query("superpod_quota_nominal_devices"), "{{superpod}} {{quota}} nominal"),
            Target(_quota_query("superpod_quota_borrowed_devices"), "{{superpod}} {{quota}} borrowed"),
        ),
        width=12,
        description="Per quota (SuperPod spec.quotas): its nominal share, the devices its placed partitions are charged, and what it borrows above its share from idle shares of others.",
    ),
    Panel(
        "Tenants starved below their share",
        "timeseries",
        (Target(STARVED, "{{superpod}} {{quota}}"),),
        width=12,
        description="Devices of its nominal share a quota does not use while partitions of it are pending (0: not starved). The alert SuperPodTenantStarved fires after 15 minutes above 0.",
    ),
    Panel(
        "Pending partitions per tenant",
        "timeseries",
        (
            Target(
                f"sum by (superpod, quota) (max by (superpod, quota, reason) (superpod_quota_pending_partitions{{{SP}}}))",
                "{{superpod}} {{quota}}",
            ),
        ),
        width=12,
        description="Pending partitions per quota (empty quota: namespaces no quota covers); kubectl get spp -A -o wide shows each one's reason.",
    ),
    Panel(
        "Preemptions per second by reason",
        "timeseries",
        (
            Target(
                f"sum by (superpod, reason) (rate(superpod_preemptions_total{{{SP}}}[5m]))",
                "{{superpod}} {{reason}}",
            ),
        ),
        width=12,
        description="Partitions preempted: priority (by a higher-priority partition of the same quota) or reclaim (the owner of borrowed devices took them back).",
    ),
    # ---- occupancy
    Panel(
        "Occupancy by rack",
        "bargauge",
        (Target(_occupancy("rack"), "{{superpod}} rack {{rack}}", instant=True),),
        unit="percentunit",
        description="Allocated share of each rack's devices (rack: the device plugin's RackID).",
    ),
    Panel(
        "Occupancy by node",
        "bargauge",
        (Target(_occupancy("node"), "{{node}}", instant=True),),
        unit="percentunit",
        width=16,
        description="Allocated share of each node's devices.",
    ),
    # ---- link health
    Panel(
        "Unhealthy devices and UB switch faults (top nodes)",
        "timeseries",
        (
            Target(
                f"topk(8, max by (superpod, node) (superpod_node_unhealthy_devices{{{SP}}}))",
                "{{node}} unhealthy devices",
            ),
            Target(
                f"topk(8, max by (superpod, node) (superpod_node_ub_switch_faults{{{SP}}}))",
                "{{node}} UB switch faults",
            ),
        ),
    ),
    Panel(
        "RoCE links down and HCCS CRC errors (top nodes)",
        "timeseries",
        (
            Target(
                f"topk(8, max by (superpod, node) ({rules.NODE_LINKS_DOWN}{{{SP}}}))",
                "{{node}} RoCE links down",
            ),
            Target(
                f"topk(8, max by (superpod, node) ({rules.NODE_HCCS_ERRORS}{{{SP}}}))",
                "{{node}} HCCS CRC errors/s",
            ),
        ),
        description="From NPU-Exporter: npu_chip_info_link_status and npu_chip_info_hccs_statistic_info_crc_err_cnt_N.",
    ),
    Panel(
        "Link errors per tier",
        "timeseries",
        (Target(f"max by (superpod, tier) ({rules.TIER_ERRORS}{{{SP}}})", "{{superpod}} {{tier}}"),),
        description="HCCS CRC errors (hccs) and RoCE receive errors (roce) per second, every device of the SuperPoD.",
    ),
    # ---- interconnect traffic
    Panel(
        "Interconnect traffic per partition and tier (transmit)",
        "timeseries",
        (
            Target(
                f"max by (superpod, namespace, partition, tier) ({rules.PARTITION_TRANSMIT}{{{PART}}})",
                "{{namespace}}/{{partition}} {{tier}}",
            ),
        ),
        unit="Bps",
        width=12,
        description="NPU-Exporter bandwidth of each partition's devices: hccs = inside the SuperPoD, roce = between SuperPoDs.",
    ),
    Panel(
        "Interconnect traffic per SuperPoD and tier",
        "timeseries",
        (
            Target(
                f"max by (superpod, tier) ({rules.TIER_TRANSMIT}{{{SP}}})", "{{superpod}} {{tier}} transmit"
            ),
            Target(
                f"max by (superpod, tier) ({rules.TIER_RECEIVE}{{{SP}}})", "{{superpod}} {{tier}} receive"
            ),
        ),
        unit="Bps",
        width=12,
    ),
    Panel(
        "Link errors per partition and tier",
        "timeseries",
        (
            Target(
                f"max by (superpod, namespace, partition, tier) ({rules.PARTITION_ERRORS}{{{PART}}})",
                "{{namespace}}/{{partition}} {{tier}}",
            ),
        ),
        description="Errors per second on the links of each partition's devices.",
    ),
    # ---- operator health
    Panel(
        "Operator replicas up",
        "stat",
        (Target(f'sum(up{{job="{rules.OPERATOR_JOB}"}})', "replicas up", instant=True),),
        width=4,
    ),
    Panel(
        "Reconciles and errors per second",
        "timeseries",
        (
            Target(
                "sum by (resource) (rate(superpod_reconcile_seconds_count[2m]))", "{{resource}} reconciles"
            ),
            Target("sum by (resource) (rate(superpod_reconcile_errors_total[2m]))", "{{resource}} errors"),
            Target("sum(rate(superpod_webhook_errors_total[2m]))", "webhook errors"),
        ),
        width=10,
    ),
    Panel(
        "Latency p99",
        "timeseries",
        (
            Target(
                "histogram_quantile(0.99, sum by (le) (rate(superpod_placement_decision_seconds_bucket[2m])))",
                "placement decision",
            ),
            Target(
                "histogram_quantile(0.99, sum by (le, resource) (rate(superpod_reconcile_seconds_bucket[2m])))",
                "reconcile {{resource}}",
            ),
            Target(
                "histogram_quantile(0.99, sum by (le) (rate(superpod_webhook_duration_seconds_bucket[2m])))",
                "webhook",
            ),
        ),
        unit="s",
        width=10,
    ),
)


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,  # on time range change
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _layout(panels: tuple[Panel, ...]) -> list[tuple[int, int]]:
    """(x, y) of each panel, filling rows of 24 columns left to right."""
    positions = []
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        positions.append((x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return positions


def _panel_json(index: int, panel: Panel, position: tuple[int, int]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.kind == "timeseries":
        defaults["custom"] = {"stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"}}
    if panel.unit == "percentunit":
        defaults |= {"min": 0, "max": 1}
    out: dict[str, Any] = {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": position[0], "y": position[1], "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "expr": target.expr,
                "legendFormat": target.legend,
                "instant": target.instant,
                "range": not target.instant,
                "format": "table" if panel.kind == "table" else "time_series",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
            }
            for i, target in enumerate(panel.targets)
        ],
    }
    if panel.kind == "table":
        out["transformations"] = [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        f"Value #{chr(ord('A') + i)}": target.legend for i, target in enumerate(panel.targets)
                    },
                },
            },
        ]
    if panel.kind == "bargauge":
        out["options"] = {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
    return out


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard JSON (schema version 39, Grafana 10/11)."""
    return {
        "uid": UID,
        "title": "SuperPod operator",
        "description": "Capacity, fragmentation, partitions, tenants (quotas, waiting, preemptions), occupancy, link health, interconnect traffic and operator health of superpod-operator. Generated by operator/superpod/metrics/dashboard.py.",
        "tags": ["superpod", "ascend"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                _variable("superpod", "SuperPoD", "label_values(superpod_info, superpod)"),
                _variable(
                    "namespace",
                    "Namespace",
                    'label_values(superpod_partition_phase{superpod=~"$superpod"}, namespace)',
                ),
                _variable(
                    "partition",
                    "Partition",
                    'label_values(superpod_partition_phase{superpod=~"$superpod", namespace=~"$namespace"}, partition)',
                ),
            ]
        },
        "panels": [
            _panel_json(i, panel, position)
            for i, (panel, position) in enumerate(zip(PANELS, _layout(PANELS), strict=True))
        ],
    }


def queries() -> list[str]:
    """Every query of the dashboard, variables unfilled."""
    return [target.expr for panel in PANELS for target in panel.targets]


def fill(expr: str, variables: dict[str, str]) -> str:
    """A query with its `$name` variables replaced by values (regular expressions)."""
    for name, value in sorted(variables.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(f"${name}", value)
    return expr
