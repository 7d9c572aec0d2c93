"""The operator's mirrors survive any event the API server can send, and `/healthz` tells when they cannot follow.

Before, an event over 512 KiB (aiohttp's line limit) ended the mirror's task without a word: a 1 MiB ConfigMap
in kube-system blinded the operator to every device fault after it, and a partition of 4,096 single-device
slots (a status of about 520 KB) to every partition change after its own placement.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import aiohttp
import yaml
from prometheus_client import parser
from superpod.cluster import client
from superpod_sandbox.apiserver import chaos

from tests.builders import objects
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    devices_of,
    eventually,
    free_port,
    manifest,
    partition,
    phase_is,
    sandbox_cluster,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
NPU = "huawei.com/npu"


async def _atlas_950_nodes(api: client.KubeClient, count: int) -> list[str]:
    """`count` Ready Atlas 950 nodes of 8 NPUs in SuperPoD 1 (device info from allocatable, as before the plugin
    publishes its ConfigMap)."""
    names = [f"a950-{index:03d}" for index in range(count)]
    for index, name in enumerate(names):
        node = objects.node(name).superpod(1, rack=index // 8, server=index).devices(8, NPU).ready().obj()
        await api.create("/api/v1/nodes", node)
    return names


async def test_a_1_mib_configmap_and_a_4096_slot_partition_leave_the_operator_seeing_faults_and_partitions():
    async with sandbox_cluster() as (sandbox, api):
        await _atlas_950_nodes(api, 513)  # 4,104 NPUs: the big partition, and one node more
        metrics_port = free_port()
        operator = Operator(sandbox.kubeconfig, "--metrics-port", str(metrics_port))
        await operator.start()
        try:
            big = {"metadata": {"name": "training-corpus-index"}, "data": {"index": "x" * (1 << 20)}}
            await api.create(CONFIGMAPS, big)
            await api.create(SPOD, manifest("superpod-atlas-950.yaml"))
            huge = partition("huge", 4096, devicesPerPod=1, repairPolicy="Manual")
            huge["spec"]["superPod"] = "atlas950-a"
            await api.create(SPP, huge)
            placed = await eventually(lambda: phase_is(api, "huge", "Allocated"), timeout=30)
            assert len(placed["allocation"]) == 4096
            assert len(json.dumps(placed)) > 512 * 1024  # over aiohttp's line limit

            # a device fault published after both big events is seen
            node, device = placed["allocation"][0]["node"], placed["allocation"][0]["devices"][0]
            await api.create(
                CONFIGMAPS,
                objects.deviceinfo_configmap(
                    node, count=8, unhealthy=(int(device.rsplit("-", 1)[1]),), superpod_id=1, resource=NPU
                ),
            )
            degraded = await eventually(lambda: phase_is(api, "huge", "Degraded"), timeout=15)
            assert f"{node}/{device}" in degraded["message"]

            # so is a partition created after them
            late = partition("late", 8)
            late["spec"]["superPod"] = "atlas950-a"
            await api.create(SPP, late)
            placed_late = await eventually(lambda: phase_is(api, "late", "Allocated"), timeout=15)
            assert not devices_of(placed_late) & devices_of(degraded)

            async def counted() -> dict | None:
                counts = ((await api.get(f"{SPOD}/atlas950-a")).get("status") or {}).get("devices") or {}
                return counts if counts.get("allocated") == 4096 + 8 else None

            counts = await eventually(counted, timeout=15)
            assert counts["total"] == 513 * 8
            assert counts["free"] + counts["allocated"] + counts["unhealthy"] + counts["reserved"] == 513 * 8

            restarts = await _watch_restarts(metrics_port)
            for resource in ("kube-system/configmaps", "superpodpartitions", "nodes", "superpods", "pods"):
                assert restarts.get(resource) == 0, restarts
        finally:
            await operator.stop()


async def _watch_restarts(port: int) -> dict[str, float]:
    """`superpod_watch_restarts_total` by resource, from the operator's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    return {
        sample.labels["resource"]: sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "superpod_watch_restarts_total"
    }


def _kubeconfig_with_token(kubeconfig: str, token: str) -> str:
    """A copy of `kubeconfig` whose user presents `token`, so a fault plan can aim at its holder only."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = Path(tempfile.mkdtemp(prefix="superpod-operator-")) / "kubeconfig"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


async def _health(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as answer:
        return answer.status


async def test_healthz_fails_once_the_mirrors_cannot_follow_the_api_for_longer_than_the_bound():
    async with sandbox_cluster() as (sandbox, _):
        kubeconfig = _kubeconfig_with_token(sandbox.kubeconfig, "operator")
        operator = Operator(kubeconfig, "--mirror-sync-timeout", "1")
        await operator.start()
        try:
            assert await _health(operator.health_port) == 200
            # every watch of the operator is cut at once and every request of it fails: no mirror can follow
            sandbox.faults.set(chaos.Plan(error_rate=1.0, watch_cut=(0.0, 0.01), token="operator"))

            async def unhealthy() -> bool:
                return await _health(operator.health_port) != 200

            # the bound (1 s), plus up to 10 s for which kopf serves its last healthy answer
            await eventually(unhealthy, timeout=20, interval=0.5)
            log = operator.log.read_text()
            assert "mirrors not following the API for longer than 1 s" in log
            assert "watch of nodes" in log and "starting it again" in log
            assert operator.process is not None and operator.process.returncode is None
        finally:
            sandbox.faults.set(None)
            await operator.stop()
