"""Deleting a SuperPod leaves its partitions alone; applying it again restores them before placing anything."""

from __future__ import annotations

from superpod.cluster import client

from tests.integration.operator.conftest import add_a3_nodes, eventually, manifest

SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"


def partition(name: str, npus: int) -> dict:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": npus},
    }


async def status_of(api: client.KubeClient, name: str) -> dict:
    return dict((await api.get(f"{SPP}/{name}")).get("status") or {})


def devices(status: dict) -> set[tuple[str, str]]:
    return {(slot["node"], device) for slot in status.get("allocation") or [] for device in slot["devices"]}


async def test_a_superpod_deleted_and_applied_again_keeps_its_partitions_devices(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)  # 2 usable nodes of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("kept", 16))

    async def allocated(name: str) -> dict | None:
        status = await status_of(api, name)
        return status if status.get("phase") == "Allocated" else None

    before = await eventually(lambda: allocated("kept"))
    await api.delete(f"{SPOD}/cm384-a")
    await eventually(lambda: _gone(api))
    # the operator's watch of SuperPods delivers the deletion well before the watch of partitions brings this
    await api.create(SPP, partition("newcomer", 16))

    async def waiting() -> dict | None:
        status = await status_of(api, "newcomer")
        return status if status.get("reason") == "SuperPodNotFound" else None

    await eventually(waiting)
    assert await status_of(api, "kept") == before  # untouched while its SuperPod is gone

    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    placed = await eventually(lambda: allocated("newcomer"))
    assert devices(await status_of(api, "kept")) == devices(before)  # restored, not placed again
    assert not devices(placed) & devices(before)


async def _gone(api: client.KubeClient) -> bool:
    return await api.get_or_none(f"{SPOD}/cm384-a") is None
