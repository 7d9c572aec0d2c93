"""What wakes a waiting partition's admission pass, so that it is placed at once, not at the SuperPod daemon's idle
re-check (30 s): a PriorityClass it names, created after the operator last read the classes; room in its quota
(the quota raised, a partition of it deleted); a device that heals.

The SuperPod has quotas and another partition waits for QuotaExceeded, so admission passes run (and read the
PriorityClasses) just before the class is created: a copy of the classes kept for some seconds, with nothing to
wake the pass when it expires, left the new partition Pending until the idle re-check.
"""

from __future__ import annotations

from typing import Any

import pytest
from superpod.cluster import client

from tests.builders import objects
from tests.integration.operator.conftest import SPOD, add_a3_nodes, eventually

JSON = dict[str, Any]
PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"
PROMPTLY = 10.0  # seconds: well under the idle re-check (handlers.IDLE_REFRESH, 30 s)


def spp_path(namespace: str) -> str:
    return f"/apis/superpod.dev/v1alpha1/namespaces/{namespace}/superpodpartitions"


def partition(name: str, namespace: str, npus: int, **spec: Any) -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"superPod": "cm384-a", "npus": npus, **spec},
    }


async def phase_of(api: client.KubeClient, name: str, namespace: str, phase: str) -> JSON | None:
    obj = await api.get_or_none(f"{spp_path(namespace)}/{name}")
    status = dict((obj or {}).get("status") or {})
    return status if status.get("phase") == phase else None


async def priority_class(api: client.KubeClient, name: str, value: int) -> None:
    body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "preemptionPolicy": "PreemptLowerPriority"}  # fmt: skip
    await api.create(PRIORITY_CLASSES, body)


async def team_a_waits_for_its_quota(api: client.KubeClient) -> None:
    """64 devices, team-a and team-b owed 32 each, team-a may not borrow: team-a's share full, one more of
    its partitions Pending for QuotaExceeded."""
    await api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}
    )
    await add_a3_nodes(api, 4)
    quotas = [
        {"name": "team-a", "namespaces": ["team-a"], "npus": 32, "borrowing": "Never"},
        {"name": "team-b", "namespaces": ["team-b"], "npus": 32},
    ]
    body = {"apiVersion": "superpod.dev/v1alpha1", "kind": "SuperPod", "metadata": {"name": "cm384-a"},
            "spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0, "quotas": quotas}}  # fmt: skip
    await api.create(SPOD, body)

    async def ready() -> bool:
        status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
        return (status.get("devices") or {}).get("total") == 64

    await eventually(ready, timeout=30)
    await api.create(spp_path("team-a"), partition("a-1", "team-a", 32))
    await eventually(lambda: phase_of(api, "a-1", "team-a", "Allocated"), timeout=30)
    await api.create(spp_path("team-a"), partition("a-2", "team-a", 16))
    waiting = await eventually(lambda: phase_of(api, "a-2", "team-a", "Pending"), timeout=30)
    assert waiting["reason"] == "QuotaExceeded"


async def test_a_partition_naming_a_class_created_just_before_it_is_placed_promptly(cluster, running):
    _, api = cluster
    await team_a_waits_for_its_quota(api)
    await priority_class(api, "urgent", 1000)
    await api.create(spp_path("team-b"), partition("b-1", "team-b", 16, priorityClassName="urgent"))
    placed = await eventually(lambda: phase_of(api, "b-1", "team-b", "Allocated"), timeout=PROMPTLY)
    assert placed["priority"] == 1000 and placed["quota"] == "team-b"
    assert (await phase_of(api, "a-2", "team-a", "Pending"))["reason"] == "QuotaExceeded"


async def test_a_partition_waiting_for_its_class_is_placed_promptly_once_the_class_is_created(
    cluster, running
):
    _, api = cluster
    await team_a_waits_for_its_quota(api)
    await api.create(spp_path("team-b"), partition("b-1", "team-b", 16, priorityClassName="later"))
    waiting = await eventually(lambda: phase_of(api, "b-1", "team-b", "Pending"), timeout=30)
    assert waiting["reason"] == "PriorityClassNotFound"
    await priority_class(api, "later", 500)
    placed = await eventually(lambda: phase_of(api, "b-1", "team-b", "Allocated"), timeout=PROMPTLY)
    assert placed["priority"] == 500


async def raise_team_a_quota(api: client.KubeClient) -> None:
    quotas = [
        {"name": "team-a", "namespaces": ["team-a"], "npus": 48, "borrowing": "Never"},
        {"name": "team-b", "namespaces": ["team-b"], "npus": 16},
    ]
    await api.patch(f"{SPOD}/cm384-a", {"spec": {"quotas": quotas}})


async def delete_team_a_partition(api: client.KubeClient) -> None:
    await api.delete(f"{spp_path('team-a')}/a-1")


@pytest.mark.parametrize(
    "change",
    [raise_team_a_quota, delete_team_a_partition],
    ids=["its quota raised", "a placed partition of its quota deleted"],
)
async def test_a_partition_waiting_for_its_quota_is_placed_promptly_once_its_quota_has_room(
    cluster, running, change
):
    _, api = cluster
    await team_a_waits_for_its_quota(api)
    await change(api)
    placed = await eventually(lambda: phase_of(api, "a-2", "team-a", "Allocated"), timeout=PROMPTLY)
    assert placed["quota"] == "team-a"


async def test_a_partition_waiting_for_devices_is_placed_promptly_once_a_device_heals(cluster, running):
    _, api = cluster
    [node] = await add_a3_nodes(api, 1)
    body = {"apiVersion": "superpod.dev/v1alpha1", "kind": "SuperPod", "metadata": {"name": "cm384-a"},
            "spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0}}  # fmt: skip
    configmaps = "/api/v1/namespaces/kube-system/configmaps"
    broken = objects.deviceinfo_configmap(node, unhealthy=(3,), server_index=0)
    await api.patch(f"{configmaps}/{broken['metadata']['name']}", {"data": broken["data"]})
    await api.create(SPOD, body)
    await api.create(spp_path("team-a"), partition("whole", "team-a", 16))
    waiting = await eventually(lambda: phase_of(api, "whole", "team-a", "Pending"), timeout=30)
    assert waiting["reason"] == "InsufficientCapacity"
    healed = objects.deviceinfo_configmap(node, server_index=0)
    await api.patch(f"{configmaps}/{healed['metadata']['name']}", {"data": healed["data"]})
    await eventually(lambda: phase_of(api, "whole", "team-a", "Allocated"), timeout=PROMPTLY)
