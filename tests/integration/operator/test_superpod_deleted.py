"""Deleting a SuperPod leaves its partitions alone; applying it again restores them before placing anything."""

from __future__ import annotations

from superpod.cluster import client

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


async def test_a_superpod_deleted_and_applied_again_keeps_its_partitions_devices(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)  # 2 usable nodes of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("kept", 16))

    before = await eventually(lambda: phase_is(api, "kept", "Allocated"))
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
    placed = await eventually(lambda: phase_is(api, "newcomer", "Allocated"))
    assert devices_of(await status_of(api, "kept")) == devices_of(before)  # restored, not placed again
    assert not devices_of(placed) & devices_of(before)


async def _gone(api: client.KubeClient) -> bool:
    return await api.get_or_none(f"{SPOD}/cm384-a") is None


async def test_a_partition_of_a_missing_superpod_is_deleted_at_once_when_no_pod_holds_it(cluster, running):
    """No SuperPod, so no loop follows its pods: kopf's delete handler finalizes it (nothing holds it)."""
    _, api = cluster
    await api.create(SPP, partition("orphan", 16))

    async def protected() -> bool:
        obj = await api.get_or_none(f"{SPP}/orphan")
        return "superpod.dev/in-use" in ((obj or {}).get("metadata") or {}).get("finalizers", [])

    await eventually(protected)
    await api.delete(f"{SPP}/orphan")
    await eventually(lambda: _gone_partition(api), timeout=20)


async def _gone_partition(api: client.KubeClient) -> bool:
    return await api.get_or_none(f"{SPP}/orphan") is None
