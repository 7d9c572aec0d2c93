"""The traffic model per tier and the NPU-Exporter-compatible exposition whose counters integrate it."""

from __future__ import annotations

import pytest
from prometheus_client import parser
from superpod_sandbox.sim import hardware, layout, telemetry, traffic

A3 = layout.build(hardware.describe("cloudmatrix-384"), node_count=4)
BW = traffic.Bandwidths.of(A3.hardware.profile)


def _job(spread: list[tuple[str, int]], superpod: str = "sp0") -> dict[str, list[traffic.Member]]:
    members = [
        traffic.Member(node, f"Ascend910-{i}", superpod, "ns/p", "ns", "p", "main")
        for node, count in spread
        for i in range(count)
    ]
    return {"ns/job": members}


def test_a_job_inside_one_node_sends_only_over_the_node_tier():
    rates = traffic.rates(_job([("n0", 4)]), BW, has_superpod=True)
    rate = rates[("n0", "Ascend910-0")]
    assert rate.node == pytest.approx(traffic.DUTY * BW.node)
    assert (rate.superpod, rate.roce) == (0.0, 0.0)


def test_a_job_on_more_nodes_moves_more_of_its_traffic_to_the_higher_tier():
    two = traffic.rates(_job([("n0", 4), ("n1", 4)]), BW, has_superpod=True)[("n0", "Ascend910-0")]
    four = traffic.rates(_job([("n0", 2), ("n1", 2), ("n2", 2), ("n3", 2)]), BW, has_superpod=True)[
        ("n0", "Ascend910-0")
    ]
    assert four.superpod > two.superpod > 0
    assert four.node < two.node


def test_peers_in_another_superpod_talk_over_roce_and_without_superpods_every_other_node_does():
    members = _job([("n0", 2)])["ns/job"] + _job([("x0", 2)], superpod="")["ns/job"]
    rate = traffic.rates({"j": members}, BW, has_superpod=True)[("n0", "Ascend910-0")]
    assert rate.roce == pytest.approx(traffic.DUTY * BW.roce * 2 / 3)
    flat = traffic.rates(_job([("n0", 2), ("n1", 2)]), BW, has_superpod=False)[("n0", "Ascend910-0")]
    assert flat.superpod == 0.0 and flat.roce > 0


def test_silent_and_network_faulty_devices_stop_sending():
    job = _job([("n0", 2), ("n1", 2)])
    rates = traffic.rates(
        job,
        BW,
        has_superpod=False,
        silent=frozenset({("n0", "Ascend910-0")}),
        no_roce=frozenset({("n1", "Ascend910-0")}),
    )
    assert rates[("n0", "Ascend910-0")] == traffic.Rates()
    assert rates[("n1", "Ascend910-0")].roce == 0.0 and rates[("n1", "Ascend910-0")].node > 0


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples, name, **labels) -> float:
    matches = [
        value for (n, pairs), value in samples.items() if n == name and labels.items() <= dict(pairs).items()
    ]
    assert len(matches) == 1, (name, labels, len(matches))
    return matches[0]


def test_the_exposition_parses_with_npu_exporter_names_labels_and_zero_values_at_start():
    exporter = telemetry.Telemetry(A3)
    samples = _samples(exporter.exposition())
    node = A3.nodes[1].name
    assert _value(samples, "npu_chip_info_health_status", node=node, id="3") == 1
    assert _value(samples, "npu_chip_info_hccs_statistic_info_tx_cnt_1", node=node, id="3") == 0
    labels = dict(next(pairs for (name, pairs) in samples if name == "npu_chip_info_link_status"))
    assert set(labels) == {*telemetry.CARD_LABELS, "node"}
    assert labels["model_name"] == "Ascend910"
    assert len([1 for (name, _) in samples if name == "npu_chip_info_health_status"]) == 4 * 16
    per_node = _samples(exporter.exposition([node], node_label=False))
    assert {dict(pairs).get("node") for (_, pairs) in per_node} == {None}


def test_counters_grow_with_traffic_and_errors_and_gauges_move_on_faults():
    exporter = telemetry.Telemetry(A3)
    n0, n1 = A3.nodes[0].name, A3.nodes[1].name
    job = {
        "j": [
            traffic.Member(n, f"Ascend910-{i}", "sp0", "ns/p", "ns", "p", "main")
            for n in (n0, n1)
            for i in range(2)
        ]
    }
    rates = traffic.rates(job, BW, has_superpod=True)
    faulty = {
        (n1, "Ascend910-1"): telemetry.DeviceStatus(
            network_ok=False, switch_fault=True, namespace="ns", pod_name="p", container_name="main"
        ),
        (n0, "Ascend910-0"): telemetry.DeviceStatus(namespace="ns", pod_name="p", container_name="main"),
    }
    exporter.advance(0.0, rates, faulty)
    exporter.advance(10.0, rates, faulty)
    samples = _samples(exporter.exposition())
    sent = _value(samples, "npu_chip_info_hccs_statistic_info_tx_cnt_1", node=n0, id="0", pod_name="p")
    assert sent == int(rates[(n0, "Ascend910-0")].intra_superpod * 10 / 256 / 7)
    assert _value(samples, "npu_chip_info_hccs_bandwidth_info_total_tx", node=n0, id="0") > 0
    assert _value(samples, "npu_chip_info_network_status", node=n1, id="1") == 0
    assert _value(samples, "npu_chip_info_link_status", node=n1, id="1") == 0
    assert _value(samples, "npu_chip_roce_rx_err_pkt_num", node=n1, id="1") == 5000
    assert _value(samples, "npu_chip_info_hccs_statistic_info_crc_err_cnt_7", node=n1, id="1") == 200
    exporter.advance(10.0, rates, {})
    samples = _samples(exporter.exposition())
    assert _value(samples, "npu_chip_info_hccs_statistic_info_tx_cnt_1", node=n0, id="0") == pytest.approx(
        2 * sent, abs=1
    )
    assert _value(samples, "npu_chip_link_up_num", node=n1, id="1") == 2


def test_a_down_node_has_no_series_and_gb200_has_none_at_all():
    exporter = telemetry.Telemetry(A3)
    down = {(A3.nodes[0].name, d): telemetry.DeviceStatus(node_down=True) for d in A3.nodes[0].devices}
    exporter.advance(1.0, {}, down)
    assert A3.nodes[0].name not in exporter.exposition()
    gb200 = telemetry.Telemetry(layout.build(hardware.describe("nvidia-gb200-nvl72")))
    assert gb200.exposition() == ""
