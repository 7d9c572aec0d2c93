"""PromQL that joins NPU-Exporter's per-device series onto partitions, nodes and SuperPods.

One builder per question; `rules` records each of them (the dashboard reads the recorded series, since these
joins are the most expensive queries of the stack) and the UB switch alert uses `node_hccs_errors` inline.

NPU-Exporter names and labels (MindCluster `npu-exporter`, docs/design.md section 5): every series carries the
device's `id`; a per-node exporter is scraped with a `node` label (set it from `__meta_kubernetes_pod_node_name`
in the scrape config; the simulator's fleet endpoint adds it). NPU-Exporter's own `namespace`/`pod_name` labels
name the pod using the device and may be renamed by the scrape (`exported_namespace`), so every join first sums
the exporter side `by (node, id)` and takes partition names from `superpod_partition_device_info` only.

Tiers of traffic: `hccs` is what NPU-Exporter's HCCS counters see, everything inside the SuperPoD (inside the
node and over the UB/HCCS-L2 switches: NPU-Exporter cannot tell the two apart); `roce` is RoCE between
SuperPoDs or servers (the cluster tier). Bandwidth gauges are MB/s; the rules give bytes per second.
"""

from __future__ import annotations

MEGABYTE = 1e6
RATE_WINDOW = "2m"  # two scrapes at the chart's 30 s interval, with room for one missed scrape

PARTITION_LABELS = "superpod, namespace, partition"
TIERS = ("hccs", "roce")

_TRANSMIT = {"hccs": "npu_chip_info_hccs_bandwidth_info_total_tx", "roce": "npu_chip_info_bandwidth_tx"}
_RECEIVE = {"hccs": "npu_chip_info_hccs_bandwidth_info_total_rx", "roce": "npu_chip_info_bandwidth_rx"}
HCCS_LINKS = range(8)  # NPU-Exporter numbers HCCS links from 0 (910B) or 1 (A3 SuperPoD), at most 8
HCCS_CRC_ERRORS = "npu_chip_info_hccs_statistic_info_crc_err_cnt_{link}"
ROCE_ERRORS = "npu_chip_roce_rx_err_pkt_num"
DIRECTIONS = ("transmit", "receive")


def device_bytes(direction: str, tier: str) -> str:
    """Bytes per second per device (labels node, id) on one tier, one direction."""
    names = _TRANSMIT if direction == "transmit" else _RECEIVE
    return f"(sum by (node, id) ({names[tier]}) * {MEGABYTE:g})"


def device_errors(tier: str) -> str:
    """Link errors per second per device (labels node, id): HCCS CRC errors or RoCE receive errors.

    Each HCCS link has its own counter name. `rate()` over a name regex would yield one nameless series per
    link with the same labels, which Prometheus refuses, and a subquery over their sum costs a hundred
    evaluations per point; so each link's rate gets a `link` label and the union is summed.
    """
    if tier == "roce":
        return f"sum by (node, id) (rate({ROCE_ERRORS}[{RATE_WINDOW}]))"
    links = " or ".join(
        f'label_replace(rate({HCCS_CRC_ERRORS.format(link=link)}[{RATE_WINDOW}]), "link", "{link}", "", "")'
        for link in HCCS_LINKS
    )
    return f"sum by (node, id) ({links})"


def partition_devices() -> str:
    """(node, id) -> partition, value 1 (a join table); `group` also collapses the copies two operator replicas
    export."""
    return f"group by ({PARTITION_LABELS}, node, id) (superpod_partition_device_info)"


def superpod_nodes() -> str:
    """node -> SuperPod, value 1, for every member node (allocated or not): `group`, not the device counts, so
    multiplying by it keeps the exporter's value."""
    return "group by (superpod, node) (superpod_node_devices)"


def _tiered(per_tier: dict[str, str]) -> str:
    parts = [f'label_replace({expr}, "tier", "{tier}", "", "")' for tier, expr in per_tier.items()]
    return " or ".join(parts)


def _per_partition(device_expr: str) -> str:
    return (
        f"sum by ({PARTITION_LABELS}) ({device_expr} * on (node, id) group_left ({PARTITION_LABELS})"
        f" {partition_devices()})"
    )


def _per_superpod(device_expr: str) -> str:
    return f"sum by (superpod) ({device_expr} * on (node) group_left (superpod) {superpod_nodes()})"


def partition_traffic(direction: str) -> str:
    """Bytes per second of each partition's devices, by tier (labels superpod, namespace, partition, tier)."""
    return _tiered({tier: _per_partition(device_bytes(direction, tier)) for tier in TIERS})


def partition_errors() -> str:
    """Link errors per second of each partition's devices, by tier."""
    return _tiered({tier: _per_partition(device_errors(tier)) for tier in TIERS})


def superpod_traffic(direction: str) -> str:
    """Bytes per second of every device of each SuperPod, by tier (labels superpod, tier)."""
    return _tiered({tier: _per_superpod(device_bytes(direction, tier)) for tier in TIERS})


def superpod_errors() -> str:
    """Link errors per second of every device of each SuperPod, by tier."""
    return _tiered({tier: _per_superpod(device_errors(tier)) for tier in TIERS})


def node_links_down() -> str:
    """RoCE ports down per node (NPU-Exporter's link status 0), labels superpod, node."""
    return (
        "sum by (superpod, node) ((1 - max by (node, id) (npu_chip_info_link_status))"
        f" * on (node) group_left (superpod) {superpod_nodes()})"
    )


def node_hccs_errors() -> str:
    """HCCS CRC errors per second per node, labels superpod, node."""
    return (
        f"sum by (superpod, node) ({device_errors('hccs')} * on (node) group_left (superpod)"
        f" {superpod_nodes()})"
    )
