"""The operator places partitions on a SuperPod it discovered, releases them, and retries the pending ones."""

from __future__ import annotations

import asyncio

from superpod.cluster import client

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    eventually,
    manifest,
    partition,
    phase_is,
)


async def test_a_discovered_superpod_reports_its_devices(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))

    async def ready():
        status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
        return status if (status.get("devices") or {}).get("total") == 64 else None

    status = await eventually(ready)
    # 4 nodes x 16 dies; the profile keeps the last 2 nodes in reserve
    assert status["devices"] == {"total": 64, "free": 32, "allocated": 0, "unhealthy": 0, "reserved": 32}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True", "Degraded": "False"}


async def test_partitions_are_placed_released_and_pending_ones_retried(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("first", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "first", "Allocated"))
    await api.create(SPP, partition("second", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "second", "Allocated"))
    await api.create(SPP, partition("third", 16, maxTier="node"))
    third = await eventually(lambda: phase_is(api, "third", "Pending"))
    assert third["reason"] == "InsufficientCapacity"

    first = (await api.get(f"{SPP}/first"))["status"]
    second = (await api.get(f"{SPP}/second"))["status"]
    assert first["tierSpan"] == "node" and first["nodeCount"] == 1
    used = {(s["node"], d) for st in (first, second) for s in st["allocation"] for d in s["devices"]}
    assert len(used) == 32

    await api.delete(f"{SPP}/first")
    third = await eventually(lambda: phase_is(api, "third", "Allocated"))
    assert {(s["node"], d) for s in third["allocation"] for d in s["devices"]} <= {
        (s["node"], d) for s in first["allocation"] for d in s["devices"]
    }


async def test_a_partition_for_a_missing_superpod_waits_for_it(cluster, running):
    _, api = cluster
    await api.create(SPP, partition("early", 2))
    status = await eventually(lambda: phase_is(api, "early", "Pending"))
    assert status["reason"] == "SuperPodNotFound"
    await add_a3_nodes(api, 3)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: phase_is(api, "early", "Allocated"))


async def test_fifty_partitions_at_once_never_share_a_device(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 10)  # 8 usable nodes = 128 dies, 2 in reserve
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: _superpod_ready(api))
    await asyncio.gather(*(api.create(SPP, partition(f"p{i:02d}", 4)) for i in range(50)))

    async def settled():
        items = (await api.get(SPP))["items"]
        phases = [((o.get("status") or {}).get("phase")) for o in items]
        return items if len(items) == 50 and all(p in ("Allocated", "Pending") for p in phases) else None

    items = await eventually(settled, timeout=30)
    allocated = [o for o in items if o["status"]["phase"] == "Allocated"]
    pending = [o for o in items if o["status"]["phase"] == "Pending"]
    devices = [(s["node"], d) for o in allocated for s in o["status"]["allocation"] for d in s["devices"]]
    assert len(devices) == len(set(devices)) == 4 * len(allocated)
    assert len(allocated) == 32  # 128 usable dies / 4
    assert all(o["status"]["reason"] == "InsufficientCapacity" for o in pending)


async def _superpod_ready(api: client.KubeClient):
    status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
    return status.get("devices")


async def test_restarting_the_operator_changes_no_allocation(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    for i in range(3):
        await api.create(SPP, partition(f"r{i}", 8))
    for i in range(3):
        await eventually(lambda i=i: phase_is(api, f"r{i}", "Allocated"))
    before = {i: (await api.get(f"{SPP}/r{i}"))["status"]["allocation"] for i in range(3)}
    await running.restart()
    await api.create(SPP, partition("after", 8))
    after_status = await eventually(lambda: phase_is(api, "after", "Allocated"))
    for i in range(3):
        assert (await api.get(f"{SPP}/r{i}"))["status"]["allocation"] == before[i]
    taken = {(s["node"], d) for alloc in before.values() for s in alloc for d in s["devices"]}
    assert not taken & {(s["node"], d) for s in after_status["allocation"] for d in s["devices"]}


async def test_killing_the_operator_mid_burst_loses_and_duplicates_nothing(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 6)  # 4 usable nodes = 64 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: _superpod_ready(api))
    await asyncio.gather(*(api.create(SPP, partition(f"k{i:02d}", 4)) for i in range(24)))

    async def some_allocated():
        items = (await api.get(SPP))["items"]
        return sum(1 for o in items if (o.get("status") or {}).get("phase") == "Allocated") >= 3

    await eventually(some_allocated)
    await running.kill()  # kill -9: decisions in flight were never written
    await running.start()

    async def settled():
        items = (await api.get(SPP))["items"]
        phases = [(o.get("status") or {}).get("phase") for o in items]
        return items if phases.count("Allocated") == 16 and phases.count("Pending") == 8 else None

    items = await eventually(settled, timeout=30)
    devices = [
        (s["node"], d)
        for o in items
        if o["status"]["phase"] == "Allocated"
        for s in o["status"]["allocation"]
        for d in s["devices"]
    ]
    assert len(devices) == len(set(devices)) == 64


async def test_a_malformed_device_info_configmap_gives_a_condition_and_an_event(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 3)
    broken = "/api/v1/namespaces/kube-system/configmaps/mindx-dl-deviceinfo-a3-0-01"
    await api.patch(broken, {"data": {"DeviceInfoCfg": "{not json"}})
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))

    async def degraded():
        status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return (
            conditions.get("Degraded") if (conditions.get("Degraded") or {}).get("status") == "True" else None
        )

    condition = await eventually(degraded)
    assert condition["reason"] == "DeviceInfoInvalid"
    assert "mindx-dl-deviceinfo-a3-0-01" in condition["message"]
    status = (await api.get(f"{SPOD}/cm384-a"))["status"]
    assert status["devices"]["total"] == 32  # the broken node is left out

    async def event():
        events = (await api.get("/api/v1/namespaces/default/events"))["items"]
        return [
            e
            for e in events
            if e["reason"] == "DeviceInfoInvalid" and e["involvedObject"]["name"] == "cm384-a"
        ]

    assert "mindx-dl-deviceinfo-a3-0-01" in (await eventually(event))[0]["message"]
