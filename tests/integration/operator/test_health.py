"""Faults reported by the device plugin degrade partitions; Auto repair moves them within their tier."""

from __future__ import annotations

from superpod.cluster import client

from tests.builders import objects
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    devices_of,
    eventually,
    manifest,
    partition,
    phase_is,
    status_of,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


async def _set_deviceinfo(api: client.KubeClient, node: str, index: int, **health) -> None:
    configmap = objects.deviceinfo_configmap(node, server_index=index, rack_id=index // 4, **health)
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": configmap["data"]})


async def _placed(api, name, npus, **spec):
    await api.create(SPP, partition(name, npus, **spec))
    return await eventually(lambda: phase_is(api, name, "Allocated"))


async def test_an_unhealthy_die_is_repaired_within_the_same_tier(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    before = await _placed(api, "train", 8, maxTier="node")
    node, device = before["allocation"][0]["node"], before["allocation"][0]["devices"][0]
    index = int(node.rsplit("-", 1)[1])
    await _set_deviceinfo(api, node, index, unhealthy=(int(device.rsplit("-", 1)[1]),))

    async def repaired():
        status = await status_of(api, "train")
        return status if status.get("allocation") and (node, device) not in devices_of(status) else None

    after = await eventually(repaired)
    assert after["phase"] == "Allocated"
    assert after["tierSpan"] == before["tierSpan"] == "node"
    assert len(devices_of(after)) == 8

    async def repaired_event():
        events = (await api.get("/api/v1/namespaces/team-a/events"))["items"]
        return any(e["reason"] == "Repaired" and e["involvedObject"]["name"] == "train" for e in events)

    # the Event is posted after the status write that the poll above saw
    assert await eventually(repaired_event)


async def test_manual_repair_policy_only_reports_the_faileddevices_of(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    before = await _placed(api, "manual", 4, repairPolicy="Manual")
    node, device = before["allocation"][0]["node"], before["allocation"][0]["devices"][1]
    index = int(node.rsplit("-", 1)[1])
    await _set_deviceinfo(api, node, index, network_unhealthy=(int(device.rsplit("-", 1)[1]),))
    degraded = await eventually(lambda: phase_is(api, "manual", "Degraded"))
    assert devices_of(degraded) == devices_of(before)
    condition = next(c for c in degraded["conditions"] if c["type"] == "Degraded")
    assert condition["status"] == "True" and f"{node}/{device}" in condition["message"]

    await _set_deviceinfo(api, node, index)  # healed
    healed = await eventually(lambda: phase_is(api, "manual", "Allocated"))
    assert devices_of(healed) == devices_of(before)


async def test_a_node_that_goes_down_degrades_and_repairs_its_partitions(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    before = await _placed(api, "whole", 16, maxTier="node")
    node = before["allocation"][0]["node"]
    await api.patch(
        f"/api/v1/nodes/{node}/status",
        {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}},
    )

    async def moved():
        status = await status_of(api, "whole")
        nodes = {slot["node"] for slot in status.get("allocation") or []}
        return status if nodes and node not in nodes else None

    after = await eventually(moved)
    assert after["phase"] == "Allocated" and after["tierSpan"] == "node"

    async def superpod_counts():
        status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
        return status if (status.get("devices") or {}).get("unhealthy") == 16 else None

    status = await eventually(superpod_counts)
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "True"


async def test_a_recovering_device_is_not_handed_out(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node, 2 in reserve
    await _set_deviceinfo(api, "a3-0-00", 0, recovering=(0, 1))
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    status = await _placed(api, "small", 14)
    assert {"Ascend910-0", "Ascend910-1"}.isdisjoint({d for _, d in devices_of(status)})
    await api.create(SPP, partition("more", 2))
    pending = await eventually(lambda: phase_is(api, "more", "Pending"))
    assert pending["reason"] == "InsufficientCapacity"
    await _set_deviceinfo(api, "a3-0-00", 0)  # recovered
    await eventually(lambda: phase_is(api, "more", "Allocated"))


async def test_a_ub_switch_fault_degrades_the_superpod_and_moves_partitions_off_the_node(cluster, running):
    import json

    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    before = await _placed(api, "ub", 8, maxTier="node")
    node = before["allocation"][0]["node"]
    fault = {"AssembledFaultCode": "[0x00f103b0,155904,na,na]", "SwitchChipId": 0, "SwitchPortId": 3}
    switch = {
        "FaultCode": [json.dumps(fault)],
        "FaultLevel": "Separate",
        "UpdateTime": 1,
        "NodeStatus": "UnHealthy",
    }
    await api.patch(
        f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": {"SwitchInfoCfg": json.dumps(switch)}}
    )

    async def moved():
        status = await status_of(api, "ub")
        nodes = {slot["node"] for slot in status.get("allocation") or []}
        return status if nodes and node not in nodes else None

    assert (await eventually(moved))["tierSpan"] == "node"

    async def degraded():
        status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
        condition = next((c for c in status.get("conditions") or [] if c["type"] == "Degraded"), {})
        return condition if condition.get("reason") == "UBSwitchFault" else None

    assert node in (await eventually(degraded))["message"]


async def test_noded_reporting_a_node_unhealthy_moves_partitions_off_it(cluster, running):
    import json

    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    before = await _placed(api, "noded", 16, maxTier="node")
    node = before["allocation"][0]["node"]
    await api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mindx-dl"}}
    )
    verdict = {
        "NodeInfo": {
            "FaultDevList": [
                {
                    "DeviceType": "Memory",
                    "DeviceId": 1,
                    "FaultCode": ["0C0B0E01"],
                    "FaultLevel": "SeparateFault",
                }
            ],
            "NodeStatus": "UnHealthy",
        }
    }
    await api.create(
        "/api/v1/namespaces/mindx-dl/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"mindx-dl-nodeinfo-{node}",
                "namespace": "mindx-dl",
                "labels": {"mx-consumer-cim": "true"},  # as NodeD labels it
            },
            "data": {"NodeInfo": json.dumps(verdict)},
        },
    )

    async def moved():
        status = await status_of(api, "noded")
        nodes = {slot["node"] for slot in status.get("allocation") or []}
        return status if nodes and node not in nodes else None

    assert (await eventually(moved))["tierSpan"] == "node"
