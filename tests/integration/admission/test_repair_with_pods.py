"""A failed device under a running pod: the partition is Degraded, and the slot moves once the pod is gone."""

from __future__ import annotations

from tests.builders import objects
from tests.integration.admission.conftest import (
    eventually,
    partitions_path,
    placed_partition,
    pod,
    pods_path,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


async def test_a_bound_slot_waits_for_its_pod_then_moves_within_the_tier(cluster, operator):
    _, api = cluster
    placed = (await placed_partition(api, "train", 8, devicesPerPod=4, maxTier="node"))["status"]
    await api.create(pods_path(), pod("worker-0", "train"))
    await api.create(pods_path(), pod("worker-1", "train"))
    slot = placed["allocation"][0]
    node, device = slot["node"], slot["devices"][0]
    index = int(node.rsplit("-", 1)[1])
    broken = objects.deviceinfo_configmap(
        node, server_index=index, rack_id=index // 4, unhealthy=(int(device.rsplit("-", 1)[1]),)
    )
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": broken["data"]})

    async def degraded():
        status = (await api.get(f"{partitions_path()}/train")).get("status") or {}
        return status if status.get("phase") == "Degraded" else None

    status = await eventually(degraded)
    assert status["allocation"][0]["devices"] == slot["devices"]  # the running pod keeps its devices
    condition = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert f"{node}/{device}" in condition["message"] and "recreated" in condition["message"]

    holder = status["allocation"][0]["pod"]
    await api.delete(f"{pods_path()}/{holder}")

    async def moved():
        current = (await api.get(f"{partitions_path()}/train")).get("status") or {}
        first = (current.get("allocation") or [{}])[0]
        return (
            current
            if (first.get("devices") and device not in first["devices"]) or first.get("node") != node
            else None
        )

    after = await eventually(moved)
    assert after["phase"] in ("Allocated", "Bound")
    assert after["tierSpan"] == "node"
    assert after["allocation"][1].get("pod")  # the other pod's slot is untouched
