"""In-use protection with replicas sharing the SuperPods on Leases: only the SuperPod's owner finalizes a
deleted partition, a replica that takes the SuperPod over keeps its devices until its pods are gone, and a
partition whose SuperPod was deleted is still finalized (no finalizer waits for a replica that owns nothing).

Real operator processes against the sandbox (as `test_sharding`); the partitions' pods are plain pods with the
partition's label (no webhook here): a pod of a partition holds it until it finishes or goes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from superpod.cluster import client
from superpod.controller import rendezvous

from tests.integration.operator.conftest import SPOD, SPP, add_a3_nodes, books_balance, devices_of, eventually
from tests.integration.operator.test_sharding import owners, partition, replica

JSON = dict[str, Any]
PODS = "/api/v1/namespaces/team-a/pods"
SUPERPODS = ["sp0", "sp1"]
FINALIZED = "no pod holds it; released and finalized"


async def two_superpods(api: client.KubeClient) -> None:
    for index, name in enumerate(SUPERPODS):
        await add_a3_nodes(api, 4, superpod_id=index)  # two usable nodes of 16 dies each
        body = {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPod",
            "metadata": {"name": name},
            "spec": {"profile": "cloudmatrix-384", "superPodID": index},
        }
        await api.create(SPOD, body)


def labelled_pod(name: str, partition_name: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "labels": {"superpod.dev/partition": partition_name},
        },
        "spec": {"containers": [{"name": "train", "image": "busybox"}]},
    }


async def status(api: client.KubeClient, name: str) -> JSON:
    obj = await api.get_or_none(f"{SPP}/{name}")
    return dict(((obj or {}).get("status")) or {})


async def phase_is(api: client.KubeClient, name: str, phase: str, reason: str | None = None) -> JSON | None:
    current = await status(api, name)
    matches = current.get("phase") == phase and (reason is None or current.get("reason") == reason)
    return current if matches else None


async def gone(api: client.KubeClient, name: str) -> bool:
    return await api.get_or_none(f"{SPP}/{name}") is None


async def terminating_with(api: client.KubeClient, name: str, pods: list[str]) -> JSON | None:
    current = await phase_is(api, name, "Terminating", "PodsRunning")
    return current if current and current.get("inUseBy") == pods else None


async def test_the_owner_finalizes_and_a_replica_taking_over_keeps_the_devices_until_the_pods_go(cluster):
    sandbox, api = cluster
    await two_superpods(api)
    first, second = replica(sandbox, "ra"), replica(sandbox, "rb")
    await first.start()
    await second.start()
    try:
        table = await eventually(lambda: _each_owns_one(api), timeout=30)
        await api.create(SPP, partition("held", "sp0", 16))
        before = devices_of(await eventually(lambda: phase_is(api, "held", "Allocated"), timeout=30))
        await api.create(PODS, labelled_pod("held-0", "held"))

        await api.delete(f"{SPP}/held")
        await eventually(lambda: terminating_with(api, "held", ["held-0"]), timeout=30)
        owner, other = (first, second) if table["sp0"] == "ra" else (second, first)
        # the whole SuperPod is asked for: only the deleted partition's devices are missing
        await api.create(SPP, partition("whole", "sp0", 32))
        await eventually(lambda: phase_is(api, "whole", "Pending", "InsufficientCapacity"), timeout=30)

        await (
            owner.kill()
        )  # kill -9 while the pod runs: the other replica takes sp0 over once the Lease expires
        survivor = "rb" if owner is first else "ra"
        await eventually(lambda: _all_owned_by(api, survivor), timeout=30)
        await api.create(SPP, partition("after", "sp0", 16))
        await eventually(lambda: phase_is(api, "after", "Allocated"), timeout=30)
        # the new owner restored the Terminating partition's devices: the newcomer got the other node's
        assert not devices_of(await status(api, "after")) & before
        assert await phase_is(api, "whole", "Pending") is not None
        assert devices_of(await status(api, "held")) == before
        await eventually(lambda: books_balance(api, "sp0"), timeout=30)

        await api.delete(f"{PODS}/held-0")
        await eventually(lambda: gone(api, "held"), timeout=30)
        # finalized by the replica that owns sp0 now (it logs that after the devices are released, which follows
        # the finalizer's removal: the line may come after the partition is gone)
        await eventually(lambda: _logged(FINALIZED, other), timeout=30)
        await api.delete(f"{SPP}/after")
        placed = await eventually(lambda: phase_is(api, "whole", "Allocated"), timeout=30)
        assert before <= devices_of(placed)
        await eventually(lambda: books_balance(api, "sp0"), timeout=30)
    finally:
        for op in (first, second):
            await op.stop()


async def test_a_partition_whose_superpod_was_deleted_is_finalized_once_its_pods_are_gone(cluster):
    sandbox, api = cluster
    await two_superpods(api)
    first, second = replica(sandbox, "ra"), replica(sandbox, "rb")
    await first.start()
    await second.start()
    try:
        await _terminating_with_its_superpod_deleted(api)
        obj = await api.get(f"{SPP}/stays")
        assert "superpod.dev/in-use" in obj["metadata"]["finalizers"]  # still held for its pod

        await api.delete(f"{PODS}/stays-0")
        await eventually(lambda: gone(api, "stays"), timeout=30)
        await eventually(lambda: _logged(FINALIZED, first, second), timeout=30)
        await asyncio.sleep(1.0)  # a second replica finalizing it too would have logged by now
        finalized = [op for op in (first, second) if FINALIZED in op.log.read_text()]
        assert len(finalized) == 1  # by one replica: the one that owns the name sp1 now
    finally:
        for op in (first, second):
            await op.stop()


async def test_a_deleted_partition_of_a_missing_superpod_is_finalized_by_the_survivor_when_the_names_owner_dies(
    cluster,
):
    """No event announces that the name's owner died: the survivor's sweep finds the partition."""
    sandbox, api = cluster
    await two_superpods(api)
    replicas = {"ra": replica(sandbox, "ra"), "rb": replica(sandbox, "rb")}
    for op in replicas.values():
        await op.start()
    try:
        await _terminating_with_its_superpod_deleted(api)

        # the replica that owns the name sp1 (the rendezvous choice every replica makes) is killed
        name_owner = rendezvous.preference("sp1", set(replicas))[0]
        survivor = next(name for name in replicas if name != name_owner)
        await replicas[name_owner].kill()
        await eventually(lambda: _owns(api, survivor, "sp0"), timeout=30)  # the dead one is gone for all
        await api.delete(f"{PODS}/stays-0")
        await eventually(lambda: gone(api, "stays"), timeout=30)
        await eventually(lambda: _logged(FINALIZED, replicas[survivor]), timeout=30)
    finally:
        for op in replicas.values():
            await op.stop()


async def _each_owns_one(api: client.KubeClient) -> dict[str, str] | None:
    table = await owners(api)
    return table if set(table) == set(SUPERPODS) and set(table.values()) == {"ra", "rb"} else None


async def _all_owned_by(api: client.KubeClient, replica_name: str) -> dict[str, str] | None:
    table = await owners(api)
    return table if set(table) == set(SUPERPODS) and set(table.values()) == {replica_name} else None


async def _owns(api: client.KubeClient, replica_name: str, superpod: str) -> bool:
    return (await owners(api)).get(superpod) == replica_name


async def _superpod_gone(api: client.KubeClient, name: str) -> bool:
    return await api.get_or_none(f"{SPOD}/{name}") is None and name not in await owners(api)


async def _terminating_with_its_superpod_deleted(api: client.KubeClient) -> None:
    """Partition `stays` of sp1 placed, its pod `stays-0` created, the partition deleted (Terminating for its
    pod), then sp1 deleted: no SuperPod, no Lease, no loop follows the partition's pods any more."""
    await eventually(lambda: _each_owns_one(api), timeout=30)
    await api.create(SPP, partition("stays", "sp1", 16))
    await eventually(lambda: phase_is(api, "stays", "Allocated"), timeout=30)
    await api.create(PODS, labelled_pod("stays-0", "stays"))
    await api.delete(f"{SPP}/stays")
    await eventually(lambda: terminating_with(api, "stays", ["stays-0"]), timeout=30)
    await api.delete(f"{SPOD}/sp1")
    await eventually(lambda: _superpod_gone(api, "sp1"), timeout=30)


async def _logged(text: str, *operators: Any) -> bool:
    """Has any of `operators` logged `text`?"""
    return any(text in operator.log.read_text() for operator in operators)
