"""The simulated NPU-Exporter on the sandbox: valid exposition, traffic counters that grow, errors on faults."""

from __future__ import annotations

import aiohttp
from prometheus_client import parser
from superpod_sandbox.sim import control, devicefaults

from tests.integration.sim.conftest import eventually, pod


async def _scrape(url: str) -> dict[tuple[str, str, str], float]:
    """(metric, node, device id) -> value, parsed with prometheus_client's parser."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, sample.labels.get("node", ""), sample.labels["id"]): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _running(api, name: str) -> bool:
    return (await api.get(f"/api/v1/namespaces/train/pods/{name}"))["status"].get("phase") == "Running"


async def test_a_job_across_two_nodes_grows_hccs_ub_counters_and_faults_move_error_counters(a3, api):
    first, second = a3.node_names[0], a3.node_names[1]
    for name, node in (("job-0", first), ("job-1", second)):
        await api.create(
            "/api/v1/namespaces/train/pods",
            pod(
                name,
                2,
                node_name=node,
                labels={"superpod.dev/partition": "p1"},
                annotations={"huawei.com/Ascend910": "Ascend910-0,Ascend910-1"},
            ),
        )
    for name in ("job-0", "job-1"):
        await eventually(lambda name=name: _running(api, name))
    url = a3.metrics_url
    tx = ("npu_chip_info_hccs_statistic_info_tx_cnt_1", first, "0")

    async def counting():
        samples = await _scrape(url)
        return samples if samples[tx] > 0 else None

    before = await eventually(counting)
    assert before[("npu_chip_info_hccs_bandwidth_info_total_tx", first, "0")] > 0
    assert before[("npu_chip_info_hccs_statistic_info_tx_cnt_1", first, "5")] == 0  # an idle device
    after = await eventually(lambda: _grown(url, tx, before[tx]))
    assert after[tx] > before[tx]

    await control.inject(api, second, devicefaults.Kind.NETWORK, "Ascend910-1")
    await control.inject(api, second, devicefaults.Kind.SWITCH)
    errors = ("npu_chip_roce_rx_err_pkt_num", second, "1")
    crc = ("npu_chip_info_hccs_statistic_info_crc_err_cnt_7", second, "1")

    async def erring():
        samples = await _scrape(url)
        return samples if samples[errors] > 0 and samples[crc] > 0 else None

    faulty = await eventually(erring)
    assert faulty[("npu_chip_info_link_status", second, "1")] == 0
    assert faulty[("npu_chip_info_network_status", second, "1")] == 0
    assert faulty[("npu_chip_info_health_status", second, "1")] == 1

    await control.inject(api, second, devicefaults.Kind.UNHEALTHY, "Ascend910-0")
    unhealthy = await eventually(lambda: _value_is(url, ("npu_chip_info_health_status", second, "0"), 0))
    assert unhealthy[("npu_chip_info_hccs_bandwidth_info_total_tx", second, "0")] == 0


async def _grown(url: str, key: tuple[str, str, str], than: float) -> dict | None:
    samples = await _scrape(url)
    return samples if samples[key] > than else None


async def _value_is(url: str, key: tuple[str, str, str], value: float) -> dict | None:
    samples = await _scrape(url)
    return samples if samples.get(key) == value else None


async def test_the_per_node_endpoint_serves_one_node_with_npu_exporters_labels(a3):
    node = a3.node_names[2]
    url = a3.metrics_url.replace("/metrics", f"/nodes/{node}/metrics")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    families = list(parser.text_string_to_metric_families(text))
    labels = {key for family in families for sample in family.samples for key in sample.labels}
    assert labels == {
        "id",
        "model_name",
        "vdie_id",
        "pcie_bus_info",
        "namespace",
        "pod_name",
        "container_name",
    }
    assert len(families[0].samples) == 16
