"""Recorded placements that cannot be restored or verified are data: a Conflict condition, an Event, a metric.

Before, a partition whose status named devices another partition held, devices its node no longer had or a node
outside its SuperPod was only logged ("could not restore"), kept `Allocated`, left the allocator and the queue,
and its devices were handed to the next partition. Each case here checks the condition, the Event, the metric
and the books (no device held twice, the SuperPod's counts equal the sum over its partitions).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from superpod.cluster import client
from superpod_sandbox.apiserver import server

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    books_balance,
    devices_of,
    eventually,
    free_port,
    manifest,
    partition,
    phase_is,
    status_of,
)

DEVICEINFO = "/api/v1/namespaces/kube-system/configmaps/mindx-dl-deviceinfo-{}"
RESOURCE = "huawei.com/Ascend910"


class Metered(Operator):
    """The operator with its /metrics on a known port."""

    def __init__(self, kubeconfig: str) -> None:
        self.metrics_port = free_port()
        super().__init__(kubeconfig, "--metrics-port", str(self.metrics_port))

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one series (0 when it is not shown)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            text = await answer.text()
        wanted = {f'{key}="{value}"' for key, value in labels.items()}
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            found = set(head[head.find("{") + 1 : head.rfind("}")].split(",")) if "{" in head else set()
            if wanted <= found:
                return float(value)
        return 0.0


@pytest_asyncio.fixture
async def metered(cluster: tuple[server.Sandbox, client.KubeClient]) -> AsyncIterator[Metered]:
    sandbox, _ = cluster
    operator = Metered(sandbox.kubeconfig)
    await operator.start()
    yield operator
    await operator.stop()


async def conflict_events(api: client.KubeClient, name: str) -> list[dict]:
    items = (await api.get("/api/v1/namespaces/team-a/events"))["items"]
    return [e for e in items if e["reason"] == "Conflict" and e["involvedObject"]["name"] == name]


def conflict_condition(status: dict) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Conflict"), {})


async def resolved(api: client.KubeClient, name: str, phase: str = "Allocated") -> dict | None:
    """The partition's status once it is in `phase` with its Conflict condition resolved."""
    status = await status_of(api, name)
    condition = conflict_condition(status)
    if status.get("phase") == phase and condition.get("status") == "False":
        return status
    return None


async def detected(operator: Metered, reason: str) -> float:
    return await operator.metric("superpod_partition_conflicts_detected_total", reason=reason)


async def two_placed(api: client.KubeClient) -> tuple[dict, dict]:
    """4 nodes (2 usable), and two partitions of one node each: `keeper` first, then `loser`."""
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("keeper", 16, maxTier="node"))
    keeper = await eventually(lambda: phase_is(api, "keeper", "Allocated"))
    await api.create(SPP, partition("loser", 8, maxTier="node"))
    loser = await eventually(lambda: phase_is(api, "loser", "Allocated"))
    return keeper, loser


async def forge(api: client.KubeClient, name: str, allocation: list[dict], **fields: object) -> None:
    """Write `allocation` into a partition's status, as a hand (or a rogue writer) would."""
    await api.patch(f"{SPP}/{name}/status", {"status": {"allocation": allocation, **fields}})


async def test_a_restart_restores_the_claim_written_first_and_places_the_other_again(cluster):
    sandbox, api = cluster
    operator = Metered(sandbox.kubeconfig)
    await operator.start()
    try:
        keeper, _ = await two_placed(api)
        await operator.stop()
        # while the operator is down, the loser's status names the keeper's devices (written later)
        await forge(api, "loser", keeper["allocation"])
        await operator.start()

        events = await eventually(lambda: conflict_events(api, "loser"))
        assert "DeviceHeldElsewhere" in events[0]["message"]
        assert "team-a/keeper" in events[0]["message"]
        assert keeper["allocation"][0]["node"] in events[0]["message"]
        after = await eventually(lambda: resolved(api, "loser"))
        assert "DeviceHeldElsewhere" in conflict_condition(after)["message"]
        assert not devices_of(after) & devices_of(keeper)
        assert devices_of(await status_of(api, "keeper")) == devices_of(keeper)  # the first claim keeps them
        assert await detected(operator, "DeviceHeldElsewhere") == 1
        counts = await eventually(lambda: books_balance(api))
        assert counts["allocated"] == 16 + 8
    finally:
        await operator.stop()


async def test_a_forged_allocation_of_a_placed_partition_is_written_back(cluster, metered):
    _, api = cluster
    keeper, loser = await two_placed(api)
    await forge(api, "loser", keeper["allocation"])

    events = await eventually(lambda: conflict_events(api, "loser"))
    assert "DeviceHeldElsewhere" in events[0]["message"] and "team-a/keeper" in events[0]["message"]

    async def restored() -> dict | None:
        status = await resolved(api, "loser")
        return status if status and devices_of(status) == devices_of(loser) else None

    after = await eventually(restored)
    assert "written back" in events[0]["message"]
    assert conflict_condition(after)["reason"] == "Resolved"
    assert await detected(metered, "DeviceHeldElsewhere") == 1
    await eventually(lambda: books_balance(api))


async def test_a_forged_allocation_of_a_pending_partition_is_never_used(cluster, metered):
    _, api = cluster
    await add_a3_nodes(api, 4)  # 2 usable nodes
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("full", 32))
    full = await eventually(lambda: phase_is(api, "full", "Allocated"))
    await api.create(SPP, partition("waiting", 8))
    await eventually(lambda: phase_is(api, "waiting", "Pending"))

    await forge(api, "waiting", [dict(full["allocation"][0], rank=0)])

    events = await eventually(lambda: conflict_events(api, "waiting"))
    assert "AllocationInvalid" in events[0]["message"]
    after = await eventually(lambda: resolved(api, "waiting", phase="Pending"))
    assert after["reason"] == "InsufficientCapacity"
    assert not after.get("allocation")
    assert devices_of(await status_of(api, "full")) == devices_of(full)
    assert await detected(metered, "AllocationInvalid") == 1
    counts = await eventually(lambda: books_balance(api))
    assert counts["allocated"] == 32

    await api.delete(f"{SPP}/full")  # the queue still knows it: it is placed once there is room
    placed = await eventually(lambda: phase_is(api, "waiting", "Allocated"))
    assert len(devices_of(placed)) == 8

    async def gone() -> bool:  # its status keeps its allocation until the finalizer goes
        return await api.get_or_none(f"{SPP}/full") is None

    await eventually(gone)
    await eventually(lambda: books_balance(api))


async def test_a_device_list_that_shrinks_under_a_partition_places_it_again(cluster, metered):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("train", 16, maxTier="node"))
    before = await eventually(lambda: phase_is(api, "train", "Allocated"))
    node = before["allocation"][0]["node"]

    await _shrink(api, node, 8)

    events = await eventually(lambda: conflict_events(api, "train"))
    assert "DeviceMissing" in events[0]["message"] and f"{node}/Ascend910-15" in events[0]["message"]

    async def moved() -> dict | None:
        status = await resolved(api, "train")
        return status if status and all(n != node for n, _ in devices_of(status)) else None

    after = await eventually(moved)
    assert len(devices_of(after)) == 16
    assert await detected(metered, "DeviceMissing") == 1
    counts = await eventually(lambda: books_balance(api))
    assert counts["allocated"] == 16
    assert counts["total"] == 3 * 16 + 8


async def test_a_narrowed_selector_met_at_start_places_the_partition_on_a_member(cluster):
    sandbox, api = cluster
    operator = Metered(sandbox.kubeconfig)
    await operator.start()
    try:
        nodes = await add_a3_nodes(api, 5)  # 3 usable nodes
        await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
        await api.create(SPP, partition("train", 16, maxTier="node"))
        before = await eventually(lambda: phase_is(api, "train", "Allocated"))
        node = before["allocation"][0]["node"]
        await operator.stop()
        for other in nodes:
            if other != node:
                await api.patch(f"/api/v1/nodes/{other}", {"metadata": {"labels": {"pool": "kept"}}})
        await api.patch(f"{SPOD}/cm384-a", {"spec": {"nodeSelector": {"matchLabels": {"pool": "kept"}}}})
        await operator.start()

        events = await eventually(lambda: conflict_events(api, "train"))
        assert "NodeOutsideSuperPod" in events[0]["message"] and node in events[0]["message"]

        async def moved() -> dict | None:
            status = await resolved(api, "train")
            return status if status and all(n != node for n, _ in devices_of(status)) else None

        after = await eventually(moved)
        assert len(devices_of(after)) == 16
        assert await detected(operator, "NodeOutsideSuperPod") == 1
        counts = await eventually(lambda: books_balance(api))
        assert counts["total"] == 4 * 16
    finally:
        await operator.stop()


async def _shrink(api: client.KubeClient, node: str, count: int) -> None:
    """The node now has `count` devices: its capacity and its device plugin's list say so."""
    quantity = {RESOURCE: str(count)}
    await api.patch(
        f"/api/v1/nodes/{node}/status", {"status": {"capacity": quantity, "allocatable": quantity}}
    )
    path = DEVICEINFO.format(node)
    document = json.loads((await api.get(path))["data"]["DeviceInfoCfg"])
    document["DeviceInfo"]["DeviceList"][RESOURCE] = ",".join(f"Ascend910-{i}" for i in range(count))
    await api.patch(path, {"data": {"DeviceInfoCfg": json.dumps(document)}})


async def superpod_condition(api: client.KubeClient, name: str, type_: str) -> dict:
    status = (await api.get(f"{SPOD}/{name}")).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


async def test_superpods_selecting_the_same_nodes_are_told_and_only_the_older_uses_them(cluster, running):
    _, api = cluster
    nodes = await add_a3_nodes(api, 8)
    shared = nodes[:4]
    for node in shared:
        await api.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {"pool": "a"}}})
    older = manifest("superpod-cloudmatrix-384.yaml")
    older["spec"]["nodeSelector"] = {"matchLabels": {"pool": "a"}}
    await api.create(SPOD, older)
    await eventually(lambda: books_balance(api, "cm384-a"))
    newer = manifest("superpod-cloudmatrix-384.yaml")
    newer["metadata"]["name"] = "cm384-b"  # every node of superPodID 0: 4 of them cm384-a's
    await api.create(SPOD, newer)

    async def told(name: str, other: str) -> dict | None:
        condition = await superpod_condition(api, name, "Overlap")
        if condition.get("status") == "True" and other in condition["message"]:
            return condition
        return None

    # the newer SuperPod's daemon starts (its Lease taken) before either status says it: generous on a busy machine
    on_older = await eventually(lambda: told("cm384-a", "cm384-b"), timeout=30)
    on_newer = await eventually(lambda: told("cm384-b", "cm384-a"), timeout=30)
    for condition in (on_older, on_newer):
        assert condition["reason"] == "NodesShared"
        assert all(node in condition["message"] for node in shared)
    assert "does not use 4" in on_newer["message"]
    assert (await api.get(f"{SPOD}/cm384-b"))["status"]["nodes"] == 4

    await api.create(SPP, partition("on-a", 32))
    await api.create(SPP, dict(partition("on-b", 32), spec={"superPod": "cm384-b", "npus": 32}))
    on_a = await eventually(lambda: phase_is(api, "on-a", "Allocated"))
    on_b = await eventually(lambda: phase_is(api, "on-b", "Allocated"))
    assert {node for node, _ in devices_of(on_a)} <= set(shared)
    assert not {node for node, _ in devices_of(on_b)} & set(shared)  # the newer never uses a shared node
    assert (await eventually(lambda: books_balance(api, "cm384-a")))["allocated"] == 32
    assert (await eventually(lambda: books_balance(api, "cm384-b")))["allocated"] == 32

    await api.delete(f"{SPP}/on-a")
    await api.delete(f"{SPOD}/cm384-a")

    async def alone() -> dict | None:
        condition = await superpod_condition(api, "cm384-b", "Overlap")
        status = (await api.get(f"{SPOD}/cm384-b")).get("status") or {}
        return condition if condition.get("status") == "False" and status.get("nodes") == 8 else None

    await eventually(alone, timeout=30)
    await eventually(lambda: books_balance(api, "cm384-b"))
