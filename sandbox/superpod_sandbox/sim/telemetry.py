"""NPU-Exporter-compatible metrics for the simulated devices: counters that integrate the traffic model.

Names, types and labels follow MindCluster's NPU-Exporter (`component/npu-exporter/collector/metrics`): every
series is a gauge (as NPU-Exporter declares them, counts included) with the card labels `id, model_name,
vdie_id, pcie_bus_info, namespace, pod_name, container_name` (the last three name the pod using the device, else
empty). One endpoint serves the whole fleet, so the combined exposition adds a `node` label (what a
ServiceMonitor's relabelling adds for a per-node exporter); the per-node exposition has the exact label set.

| series | meaning here |
|---|---|
| npu_chip_info_health_status | 1 healthy, 0 unhealthy or recovering |
| npu_chip_info_network_status | 1 healthy, 0 network fault or recovering |
| npu_chip_info_link_status | RoCE port: 1 UP, 0 DOWN (network fault, recovering) |
| npu_chip_link_up_num | how many times the port came up (1 at start, +1 per heal of a network fault) |
| npu_chip_info_hccs_statistic_info_tx_cnt_N / rx_cnt_N | HCCS/UB messages (one per 256 bytes) on link N, intra-SuperPoD traffic spread evenly over the links |
| npu_chip_info_hccs_statistic_info_crc_err_cnt_N | grows 20/s per link while the node has a UB switch fault |
| npu_chip_info_hccs_bandwidth_info_total_tx / total_rx | current intra-SuperPoD rate, MB/s |
| npu_chip_info_bandwidth_tx / rx | current RoCE rate, MB/s |
| npu_chip_roce_tx_all_pkt_num / rx_all_pkt_num | RoCE packets (one per 4,096 bytes) |
| npu_chip_roce_rx_err_pkt_num | grows 500/s while the device has a network fault |

HCCS links are numbered 1..7 as NPU-Exporter does on A3 SuperPoD and 910B boards (its hccsBeginIndex is 1).
Real NPU-Exporter reports HCCS only on 910B and A3 and UB port counters on Atlas 950; the simulator uses the
HCCS names on every Ascend profile so one dashboard reads them all. GB200 nodes get no series (DCGM's domain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping

from superpod_sandbox.sim import hardware, layout, traffic

HCCS_LINKS = tuple(range(1, 8))
HCCS_MESSAGE_BYTES = 256
ROCE_PACKET_BYTES = 4096
CRC_ERRORS_PER_SECOND = 20.0
ROCE_RX_ERRORS_PER_SECOND = 500.0
MEGABYTE = 1e6

CARD_LABELS = ("id", "model_name", "vdie_id", "pcie_bus_info", "namespace", "pod_name", "container_name")

HELP = {
    "npu_chip_info_health_status": "the npu health status",
    "npu_chip_info_network_status": "the npu network health status",
    "npu_chip_info_link_status": "the npu link status",
    "npu_chip_link_up_num": "the npu interface receive link-up num",
    "npu_chip_info_hccs_bandwidth_info_total_tx": "total sent data bandwidth",
    "npu_chip_info_hccs_bandwidth_info_total_rx": "total received data bandwidth",
    "npu_chip_info_bandwidth_tx": "the npu interface transport speed, unit is 'MB/s'",
    "npu_chip_info_bandwidth_rx": "the npu interface receive speed, unit is 'MB/s'",
    "npu_chip_roce_tx_all_pkt_num": "npu interface receive roce-tx-all-pkt-num",
    "npu_chip_roce_rx_all_pkt_num": "npu interface receive roce-rx-all-pkt-num",
    "npu_chip_roce_rx_err_pkt_num": "npu interface receive roce-rx-err-pkt-num",
    **{
        f"npu_chip_info_hccs_statistic_info_tx_cnt_{n}": f"transmitted message count for hccs {n}"
        for n in HCCS_LINKS
    },
    **{
        f"npu_chip_info_hccs_statistic_info_rx_cnt_{n}": f"received message count for hccs {n}"
        for n in HCCS_LINKS
    },
    **{
        f"npu_chip_info_hccs_statistic_info_crc_err_cnt_{n}": f"crc error count for hccs {n}"
        for n in HCCS_LINKS
    },
}
"""Metric name -> help text (NPU-Exporter's), in exposition order."""
METRICS = tuple(HELP)


@dataclasses.dataclass(frozen=True)
class DeviceStatus:
    """What the exporter observes about one device at one instant."""

    healthy: bool = True  # chip health
    network_ok: bool = True
    switch_fault: bool = False  # the node has a UB switch fault
    node_down: bool = False  # the node's kubelet and exporter are gone: no series
    namespace: str = ""
    pod_name: str = ""
    container_name: str = ""


@dataclasses.dataclass
class Counters:
    """Cumulative per-device counters (mutable: they only grow)."""

    hccs_tx_bytes: float = 0.0
    hccs_rx_bytes: float = 0.0
    roce_tx_bytes: float = 0.0
    roce_rx_bytes: float = 0.0
    crc_errors: float = 0.0
    roce_rx_errors: float = 0.0
    link_up_num: int = 1
    link_up: bool = True


class Telemetry:
    """The counters of every device of a fleet, advanced by the traffic model."""

    def __init__(self, fleet: layout.Layout) -> None:
        self.fleet = fleet
        self.counters: dict[tuple[str, str], Counters] = {
            (node.name, device): Counters() for node in fleet.nodes for device in node.devices
        }
        self.rates: dict[tuple[str, str], traffic.Rates] = {}
        self.status: dict[tuple[str, str], DeviceStatus] = {}
        self._labels: dict[tuple[str, int, str, str, str, bool], str] = {}  # label sets seen, rendered once

    def advance(
        self,
        seconds: float,
        rates: Mapping[tuple[str, str], traffic.Rates],
        status: Mapping[tuple[str, str], DeviceStatus],
    ) -> None:
        """Integrate `seconds` at the current rates, then take the new rates and status."""
        for key, counters in self.counters.items():
            current = self.rates.get(key, traffic.Rates())
            seen = self.status.get(key, DeviceStatus())
            counters.hccs_tx_bytes += current.intra_superpod * seconds
            counters.hccs_rx_bytes += current.intra_superpod * seconds
            counters.roce_tx_bytes += current.roce * seconds
            counters.roce_rx_bytes += current.roce * seconds
            if seen.switch_fault:
                counters.crc_errors += CRC_ERRORS_PER_SECOND * seconds
            if not seen.network_ok:
                counters.roce_rx_errors += ROCE_RX_ERRORS_PER_SECOND * seconds
            new = status.get(key, DeviceStatus())
            up = new.network_ok and new.healthy
            if up and not counters.link_up:
                counters.link_up_num += 1
            counters.link_up = up
        self.rates = dict(rates)
        self.status = dict(status)

    def exposition(self, node_names: Iterable[str] | None = None, *, node_label: bool = True) -> str:
        """Prometheus text format for the given nodes (default: all), NPU-Exporter names and labels."""
        samples: list[list[str]] = [[] for _ in METRICS]
        for _ in self.collect(samples, node_names, node_label=node_label):
            pass
        return render(samples)

    def collect(
        self, samples: list[list[str]], node_names: Iterable[str] | None = None, *, node_label: bool = True
    ) -> Iterator[None]:
        """Append every sample line to `samples` (one list per METRICS entry), yielding after each node.

        The yields let an event loop serve other work while a big fleet's exposition is built.
        """
        if self.fleet.hardware.family is hardware.Family.GPU:
            return
        wanted = set(node_names) if node_names is not None else None
        model = _escape(self.fleet.hardware.facts.model_name)
        idle = traffic.Rates()
        healthy = DeviceStatus()
        for node in self.fleet.nodes:
            if wanted is not None and node.name not in wanted:
                continue
            node_part = f',node="{_escape(node.name)}"' if node_label else ""
            for index, device in enumerate(node.devices):
                key = (node.name, device)
                status = self.status.get(key, healthy)
                if status.node_down:
                    continue
                cache_key = (
                    node.name,
                    index,
                    status.namespace,
                    status.pod_name,
                    status.container_name,
                    node_label,
                )
                labels = self._labels.get(cache_key)
                if labels is None:
                    labels = (
                        f'{{id="{layout.device_index(device)}",model_name="{model}",'
                        f'vdie_id="{node.superpod_id:02x}{node.index:04x}{index:02x}",'
                        f'pcie_bus_info="0000:{(0x01 + 0x10 * index) % 256:02x}:00.0",'
                        f'namespace="{_escape(status.namespace)}",pod_name="{_escape(status.pod_name)}",'
                        f'container_name="{_escape(status.container_name)}"{node_part}}} '
                    )
                    self._labels[cache_key] = labels
                values = _values(self.counters[key], self.rates.get(key, idle), status)
                for series, name, value in zip(samples, METRICS, values, strict=True):
                    series.append(f"{name}{labels}{value}")
            yield


def render(samples: list[list[str]]) -> str:
    """The exposition text of collected samples: each family's HELP and TYPE, then its samples."""
    lines: list[str] = []
    for name, series in zip(METRICS, samples, strict=True):
        if not series:
            continue
        lines.append(f"# HELP {name} {HELP[name]}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(series)
    return "\n".join(lines) + "\n" if lines else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _rate(bytes_per_second: float) -> str:
    return f"{bytes_per_second / MEGABYTE:.3f}".rstrip("0").rstrip(".")


def _values(counters: Counters, rate: traffic.Rates, status: DeviceStatus) -> list[str]:
    """The device's sample values, formatted, in METRICS order."""
    up = "1" if status.network_ok and status.healthy else "0"
    per_link_tx = str(int(counters.hccs_tx_bytes / HCCS_MESSAGE_BYTES / len(HCCS_LINKS)))
    per_link_rx = str(int(counters.hccs_rx_bytes / HCCS_MESSAGE_BYTES / len(HCCS_LINKS)))
    per_link_crc = str(int(counters.crc_errors))
    intra, roce = _rate(rate.intra_superpod), _rate(rate.roce)
    return [
        "1" if status.healthy else "0",
        up,
        up,
        str(counters.link_up_num),
        intra,
        intra,
        roce,
        roce,
        str(int(counters.roce_tx_bytes // ROCE_PACKET_BYTES)),
        str(int(counters.roce_rx_bytes // ROCE_PACKET_BYTES)),
        str(int(counters.roce_rx_errors)),
        *([per_link_tx] * len(HCCS_LINKS)),
        *([per_link_rx] * len(HCCS_LINKS)),
        *([per_link_crc] * len(HCCS_LINKS)),
    ]
