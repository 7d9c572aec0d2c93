"""Two replicas with kopf peering (`--coordination peering`): exactly one is active, the other takes over when it
dies. Sharding on Leases, the default, is tested in test_sharding."""

from __future__ import annotations

import asyncio

from superpod.cluster import client

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    eventually,
    manifest,
    partition,
)

PEERING = ("--coordination", "peering", "--peering-lifetime", "5")


async def _settled(api: client.KubeClient, count: int):
    items = (await api.get(SPP))["items"]
    phases = [(o.get("status") or {}).get("phase") for o in items]
    return items if len(items) == count and all(p in ("Allocated", "Pending") for p in phases) else None


def _devices(items: list[dict]) -> list[tuple[str, str]]:
    return [
        (slot["node"], device)
        for obj in items
        for slot in (obj["status"].get("allocation") or [])
        for device in slot["devices"]
    ]


async def test_one_replica_is_active_and_the_other_takes_over(cluster):
    sandbox, api = cluster
    await add_a3_nodes(api, 6)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    first = Operator(sandbox.kubeconfig, *PEERING, standalone=False)
    second = Operator(sandbox.kubeconfig, *PEERING, standalone=False)
    await first.start()
    await second.start()
    try:
        await asyncio.gather(*(api.create(SPP, partition(f"a{i:02d}", 4)) for i in range(12)))
        items = await eventually(lambda: _settled(api, 12), timeout=30)
        devices = _devices(items)
        assert len(devices) == len(set(devices)) == 48

        peering = await api.get("/apis/kopf.dev/v1/clusterkopfpeerings/superpod-operator")
        assert len(peering.get("status") or {}) == 2  # both replicas are known peers
        placed_by = [op for op in (first, second) if "placed team-a/" in op.log.read_text()]
        assert len(placed_by) == 1  # exactly one replica served the partitions
        active = placed_by[0]

        await active.kill()
        await asyncio.gather(*(api.create(SPP, partition(f"b{i:02d}", 4)) for i in range(8)))
        items = await eventually(lambda: _settled(api, 20), timeout=60)
        devices = _devices(items)
        assert len(devices) == len(set(devices)) == 64  # 4 usable nodes: 16 partitions fit, 4 pend
        assert sum(1 for o in items if o["status"]["phase"] == "Pending") == 4
    finally:
        await first.stop()
        await second.stop()
