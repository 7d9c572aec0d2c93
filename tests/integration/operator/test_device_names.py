"""Device names the hardware does not have: the node is left out as DeviceInfoInvalid, naming them.

Before, `Ascend910-99` or `bogus` in a node's DeviceList raised the SuperPod's total past the hardware, were
allocated to partitions, and the rank table then failed every second with a traceback.
"""

from __future__ import annotations

import json

from superpod.cluster import client

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    books_balance,
    devices_of,
    eventually,
    manifest,
    partition,
    phase_is,
)

DEVICEINFO = "/api/v1/namespaces/kube-system/configmaps/mindx-dl-deviceinfo-{}"
A3_DIES = [f"Ascend910-{i}" for i in range(16)]


async def _list_devices(api: client.KubeClient, node: str, healthy: list[str]) -> None:
    """Make the node's device plugin ConfigMap list `healthy` as its free healthy devices."""
    path = DEVICEINFO.format(node)
    document = json.loads((await api.get(path))["data"]["DeviceInfoCfg"])
    document["DeviceInfo"]["DeviceList"]["huawei.com/Ascend910"] = ",".join(healthy)
    await api.patch(path, {"data": {"DeviceInfoCfg": json.dumps(document)}})


async def _degraded(api: client.KubeClient) -> dict | None:
    status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
    condition = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
    return condition if condition.get("reason") == "DeviceInfoInvalid" else None


async def _invalid_events(api: client.KubeClient) -> list[dict]:
    events = (await api.get("/api/v1/namespaces/default/events"))["items"]
    return [
        e for e in events if e["reason"] == "DeviceInfoInvalid" and e["involvedObject"]["name"] == "cm384-a"
    ]


async def test_device_names_the_hardware_does_not_have_leave_the_node_out_and_are_never_allocated(
    cluster, running
):
    _, api = cluster
    nodes = await add_a3_nodes(api, 5)  # 4 good nodes, 2 of them reserve: 32 dies to place
    broken = nodes[1]
    named = ["'Ascend910-99'", "'bogus'"]  # past the node's 16 dies; no number at all
    await _list_devices(api, broken, [*A3_DIES, "Ascend910-99", "bogus"])
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))

    condition = await eventually(lambda: _degraded(api))
    assert f"mindx-dl-deviceinfo-{broken}" in condition["message"]
    for name in named:
        assert name in condition["message"]
    events = await eventually(lambda: _invalid_events(api))
    assert all(name in events[0]["message"] for name in named)

    await api.create(SPP, partition("all", 32))
    placed = await eventually(lambda: phase_is(api, "all", "Allocated"))
    assert all(node != broken for node, _ in devices_of(placed))
    assert {device for _, device in devices_of(placed)} <= set(A3_DIES)
    await api.create(SPP, partition("more", 2))
    pending = await eventually(lambda: phase_is(api, "more", "Pending"))
    assert pending["reason"] == "InsufficientCapacity"  # no die of the broken node counted

    counts = await eventually(lambda: books_balance(api))
    assert counts["total"] == 4 * 16  # the hardware, not past it
    assert "Traceback" not in running.log.read_text()


async def test_a_held_node_whose_device_list_turns_invalid_has_its_partition_repaired_off_it(
    cluster, running
):
    _, api = cluster
    await add_a3_nodes(api, 4)  # 2 usable nodes, 2 in reserve
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("train", 16, maxTier="node"))
    before = await eventually(lambda: phase_is(api, "train", "Allocated"))
    node = before["allocation"][0]["node"]

    await _list_devices(api, node, [*A3_DIES, "Ascend910-99"])

    async def moved() -> dict | None:
        status = (await api.get(f"{SPP}/train")).get("status") or {}
        held = {slot["node"] for slot in status.get("allocation") or []}
        return status if held and node not in held and status.get("phase") == "Allocated" else None

    after = await eventually(moved)
    assert len(devices_of(after)) == 16
    assert "'Ascend910-99'" in (await eventually(lambda: _degraded(api)))["message"]
    await eventually(lambda: books_balance(api))

    assert await eventually(
        lambda: api.get_or_none("/api/v1/namespaces/team-a/configmaps/rings-config-train")
    )
    assert "Traceback" not in running.log.read_text()
