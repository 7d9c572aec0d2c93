"""`superpod run --metrics-port N` serves the fleet it holds: the real operator against the sandbox, /metrics read.

The gauges follow the cluster without bookkeeping: a partition placed by the operator appears with its devices
and info series, a deleted one disappears, and the SuperPod's device counts move with it.
"""

from __future__ import annotations

import aiohttp
import pytest_asyncio
from prometheus_client import parser

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    eventually,
    free_port,
    manifest,
    sandbox_cluster,
)


@pytest_asyncio.fixture
async def operator_with_metrics():
    async with sandbox_cluster() as (sandbox, api):
        port = free_port()
        running = Operator(sandbox.kubeconfig, "--metrics-port", str(port))
        await running.start()
        try:
            yield api, f"http://127.0.0.1:{port}/metrics"
        finally:
            await running.stop()


async def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def one(samples, name: str, **labels: str) -> float | None:
    for got, value in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return value
    return None


async def test_the_operator_exports_its_superpods_and_partitions_and_follows_them(operator_with_metrics):
    api, url = operator_with_metrics
    first = await scrape(url)
    assert one(first, "superpod_reconcile_errors_total", resource="partition") == 0  # present from the start
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    partition = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": "train", "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": 16},
    }
    await api.create(SPP, partition)

    async def placed():
        samples = await scrape(url)
        devices = one(samples, "superpod_partition_devices", partition="train")
        # the phase comes from the partition's status, seen through the watch after the operator wrote it
        phase = one(samples, "superpod_partition_phase", partition="train", phase="Allocated")
        return samples if devices == 16 and phase == 1 else None

    samples = await eventually(placed, timeout=30)
    assert one(samples, "superpod_devices", superpod="cm384-a", state="allocated") == 16
    info = [labels for labels, _ in samples["superpod_partition_device_info"]]
    assert len(info) == 16 and {labels["namespace"] for labels in info} == {"team-a"}
    assert one(samples, "superpod_nodes", superpod="cm384-a", state="ready") == 4

    await api.delete(f"{SPP}/train")

    async def released():
        samples = await scrape(url)
        return samples if one(samples, "superpod_partition_devices", partition="train") is None else None

    samples = await eventually(released, timeout=30)
    assert one(samples, "superpod_devices", superpod="cm384-a", state="allocated") == 0
