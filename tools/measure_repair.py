"""Time from a device fault to the partition's Degraded condition (Manual) and to its repair (Auto).

Runs the operator (`superpod run`, a subprocess) against a sandbox with 8 CloudMatrix 384 nodes, places
partitions of 4 dies, then, one at a time, marks one of a partition's devices Unhealthy in its node's
device-info ConfigMap (as the device plugin does) and polls the partition until the status shows it.

    PYTHONPATH=. .venv/bin/python tools/measure_repair.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from superpod.cluster import client

from tests.builders import objects
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    eventually,
    manifest,
    sandbox_cluster,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


async def _fault(api: client.KubeClient, node: str, device: str) -> None:
    index = int(node.rsplit("-", 1)[1])
    configmap = objects.deviceinfo_configmap(
        node, server_index=index, rack_id=index // 4, unhealthy=(int(device.rsplit("-", 1)[1]),)
    )
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": configmap["data"]})


async def _heal(api: client.KubeClient, node: str) -> None:
    index = int(node.rsplit("-", 1)[1])
    configmap = objects.deviceinfo_configmap(node, server_index=index, rack_id=index // 4)
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": configmap["data"]})


async def _round(api: client.KubeClient, name: str, policy: str) -> float:
    obj = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": 4, "repairPolicy": policy},
    }
    await api.create(SPP, obj)

    async def placed():
        status = (await api.get(f"{SPP}/{name}")).get("status") or {}
        return status if status.get("phase") == "Allocated" else None

    status = await eventually(placed)
    node, device = status["allocation"][0]["node"], status["allocation"][0]["devices"][0]

    async def seen():
        current = (await api.get(f"{SPP}/{name}")).get("status") or {}
        if policy == "Manual":
            return current.get("phase") == "Degraded"
        held = {(s["node"], d) for s in current.get("allocation") or [] for d in s["devices"]}
        return bool(held) and (node, device) not in held

    started = time.perf_counter()
    await _fault(api, node, device)
    await eventually(seen, interval=0.005)
    elapsed = time.perf_counter() - started
    await api.delete(f"{SPP}/{name}")
    await _heal(api, node)
    await asyncio.sleep(0.3)
    return elapsed


def _summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{label}: n={len(samples)} median {statistics.median(samples) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


async def main(rounds: int) -> None:
    async with sandbox_cluster() as (sandbox, api):
        await add_a3_nodes(api, 8)
        operator = Operator(sandbox.kubeconfig)
        await operator.start()
        try:
            await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
            degraded = [await _round(api, f"manual-{i}", "Manual") for i in range(rounds)]
            repaired = [await _round(api, f"auto-{i}", "Auto") for i in range(rounds)]
        finally:
            await operator.stop()
    print(_summary("fault -> Degraded (Manual)", degraded))
    print(_summary("fault -> repaired (Auto)", repaired))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
