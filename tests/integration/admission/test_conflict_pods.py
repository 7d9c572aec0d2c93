"""The loser of a device conflict has a running pod: the pod keeps running, the devices it uses stay held for
it (no other partition is placed there), and the Conflict Event says so; a pod that runs on devices the winner
holds is named. Judged on what the pods really use (the simulated device plugin's `huawei.com/AscendReal`).

The fleet and tenants of `test_tenancy`: team-a's `victim` holds two nodes and runs two pods, team-b's `mine`
holds one node; here `mine` runs a pod too and team-a's `filler` takes the last free node. While the operator
is down, `mine`'s status is made to name the victim's devices (a status written by hand, or restored in the
wrong order): at the restart the victim's claim, written first, keeps them and `mine` is in conflict.
"""

from __future__ import annotations

from typing import Any

from superpod.cluster import client

from tests.integration.admission import test_tenancy
from tests.integration.admission.conftest import eventually, partition, partitions_path, pod, pods_path
from tests.integration.admission.test_tenancy import Tenants, check_the_guarantee, running
from tests.integration.operator.conftest import devices_of

JSON = dict[str, Any]
tenants = test_tenancy.tenants


async def status_of(api: client.KubeClient, name: str, namespace: str = "team-b") -> JSON:
    obj = await api.get_or_none(f"{partitions_path(namespace)}/{name}")
    return dict(((obj or {}).get("status")) or {})


async def conflict_event(api: client.KubeClient) -> JSON | None:
    for item in await api.list("/api/v1/namespaces/team-b/events"):
        if item["involvedObject"].get("name") == "mine" and item["reason"] == "Conflict":
            return item
    return None


def conflict(status: JSON) -> JSON:
    return next((c for c in status.get("conditions") or [] if c["type"] == "Conflict"), {})


async def test_the_losers_running_pod_keeps_its_devices_and_the_event_says_so(tenants: Tenants, operator):
    api = tenants.api
    own = {(slot["node"], device) for slot in tenants.mine for device in slot["devices"]}
    await api.create(pods_path("team-b"), pod("mine-0", "mine", namespace="team-b"))
    await eventually(lambda: running(api, "team-b", "mine-0"), timeout=20)
    await api.create(partitions_path(), partition("filler", 16))  # the last free node
    await eventually(lambda: _phase(api, "filler", "team-a", "Allocated"), timeout=15)

    await operator.kill()
    forged = [{**tenants.victim[0], "pod": "mine-0"}]
    await api.patch(f"{partitions_path('team-b')}/mine/status", {"status": {"allocation": forged}})
    await operator.start()

    notice = await eventually(lambda: conflict_event(api), timeout=20)
    assert "DeviceHeldElsewhere" in notice["message"] and notice["type"] == "Warning"
    assert "running pod(s) mine-0 keep running and the devices they use stay held" in notice["message"]

    async def quarantined() -> JSON | None:
        status = await status_of(api, "mine")
        return status if conflict(status).get("status") == "True" and devices_of(status) == own else None

    status = await eventually(quarantined, timeout=20)  # what the pod uses, not what the status claimed
    assert status["phase"] == "Degraded"
    # the only devices the books could call free are the ones mine-0 runs on: nobody is placed there
    await api.create(partitions_path("team-b"), partition("grab", 16, namespace="team-b"))
    await eventually(lambda: _reason(api, "grab", "InsufficientCapacity"), timeout=15)
    assert (await running(api, "team-b", "mine-0")) is not None  # left running
    await check_the_guarantee(api)

    await api.delete(f"{pods_path('team-b')}/mine-0")  # once it is gone, mine is placed again

    async def resolved() -> JSON | None:
        status = await status_of(api, "mine")
        return status if conflict(status).get("status") == "False" else None

    await eventually(resolved, timeout=30)
    await check_the_guarantee(api)


async def _phase(api: client.KubeClient, name: str, namespace: str, phase: str) -> bool:
    return (await status_of(api, name, namespace)).get("phase") == phase


async def _reason(api: client.KubeClient, name: str, reason: str) -> bool:
    return (await status_of(api, name)).get("reason") == reason
