"""The invariants `superpod bench e2e` checks at the end of a run with replicas (`bench_failover.books`): they hold
for balanced books and break for a device held twice, a partition short of devices and a device lost."""

from __future__ import annotations

from typing import Any

from superpod.cluster import client
from superpod_sandbox.commands import bench_cluster, bench_failover

from tests.integration.operator.conftest import SPOD

JSON = dict[str, Any]
PARTITIONS = f"/apis/superpod.dev/v1alpha1/namespaces/{bench_cluster.NAMESPACE}/superpodpartitions"


async def superpod(api: client.KubeClient, name: str, allocated: int, total: int = 64) -> None:
    body = {"apiVersion": "superpod.dev/v1alpha1", "kind": "SuperPod", "metadata": {"name": name},
            "spec": {"profile": "cloudmatrix-384", "superPodID": 0}}  # fmt: skip
    await api.create(SPOD, body)
    counts = {"total": total, "free": total - allocated, "allocated": allocated}
    await api.patch(f"{SPOD}/{name}/status", {"status": {"devices": counts}})


async def placed(
    api: client.KubeClient, name: str, superpod_name: str, npus: int, devices: list[str]
) -> None:
    body = {"apiVersion": "superpod.dev/v1alpha1", "kind": "SuperPodPartition",
            "metadata": {"name": name, "namespace": bench_cluster.NAMESPACE},
            "spec": {"superPod": superpod_name, "npus": npus}}  # fmt: skip
    await api.create(PARTITIONS, body)
    slot = {"rank": 0, "node": "n0", "devices": devices}
    await api.patch(f"{PARTITIONS}/{name}/status", {"status": {"phase": "Allocated", "allocation": [slot]}})


async def books_of(api: client.KubeClient, *layout: tuple[str, int, list[str]], allocated: int) -> JSON:
    await api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": bench_cluster.NAMESPACE}})  # fmt: skip
    await superpod(api, "bench-0", allocated)
    for name, npus, devices in layout:
        await placed(api, name, "bench-0", npus, devices)
    return await bench_failover.books(api, ["bench-0"])


async def test_balanced_books_hold(cluster):
    _, api = cluster
    found = await books_of(api, ("a", 2, ["d0", "d1"]), ("b", 1, ["d2"]), allocated=3)
    assert found["ok"] and found["placed"] == 2 and found["devicesHeld"] == 3


async def test_a_device_held_by_two_partitions_breaks_them(cluster):
    _, api = cluster
    found = await books_of(api, ("a", 2, ["d0", "d1"]), ("b", 1, ["d1"]), allocated=3)
    assert not found["ok"] and found["devicesHeldTwice"] == ["bench-0: n0/d1"]


async def test_a_partition_holding_fewer_devices_than_it_asked_for_breaks_them(cluster):
    _, api = cluster
    found = await books_of(api, ("a", 2, ["d0"]), allocated=1)
    assert not found["ok"] and found["partitionsWithWrongCount"] == ["a"]


async def test_a_device_the_superpod_counts_as_allocated_but_no_partition_holds_breaks_them(cluster):
    _, api = cluster
    found = await books_of(api, ("a", 2, ["d0", "d1"]), allocated=3)  # one lost
    assert not found["ok"]
    [unbalanced] = found["superPodsUnbalanced"]
    assert unbalanced["superPod"] == "bench-0" and unbalanced["heldByPartitions"] == 2
    assert unbalanced["counts"]["allocated"] == 3
