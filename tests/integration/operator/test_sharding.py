"""Replicas share the SuperPods on Leases: one owner each, spread evenly, moved on join, leave, kill and pause.

Real operator processes (`superpod run --coordination leases`) against the sandbox, four SuperPods of four
CloudMatrix 384 nodes each (two usable after the reserve). Ownership is read from the SuperPods' Leases, and
who wrote what from the requests the sandbox saw (each replica's User-Agent names it).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

from superpod.cluster import client

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    books_balance,
    eventually,
)

SUPERPODS = [f"sp{i}" for i in range(4)]
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
TIMING = ("--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5")


def replica(sandbox, name: str) -> Operator:
    return Operator(sandbox.kubeconfig, "--identity", name, *TIMING, standalone=False)


async def fleet_of_four(api: client.KubeClient) -> None:
    for index, name in enumerate(SUPERPODS):
        await add_a3_nodes(api, 4, superpod_id=index)
        body = {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPod",
            "metadata": {"name": name},
            "spec": {"profile": "cloudmatrix-384", "superPodID": index},
        }
        await api.create(SPOD, body)


def partition(name: str, superpod: str, npus: int = 8) -> dict:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": superpod, "npus": npus},
    }


async def owners(api: client.KubeClient) -> dict[str, str]:
    """SuperPod -> the replica its Lease names ('' for nobody)."""
    items = (await api.get(LEASES, labelSelector="superpod.dev/shard-role=superpod"))["items"]
    return {
        item["metadata"]["annotations"]["superpod.dev/superpod"]: item["spec"].get("holderIdentity") or ""
        for item in items
    }


def held_by(expected: set[str]):
    """A check: every SuperPod is owned by one of `expected`, each of them owns some, counts differ by one."""

    async def check(api: client.KubeClient) -> dict[str, str] | None:
        table = await owners(api)
        if set(table) != set(SUPERPODS) or not set(table.values()) <= expected:
            return None
        counts = Counter(table.values())
        if set(counts) != expected or max(counts.values()) - min(counts.values()) > 1:
            return None
        return table

    return check


async def all_placed(api: client.KubeClient, names: list[str]) -> list[dict] | None:
    items = {o["metadata"]["name"]: o for o in (await api.get(SPP))["items"]}
    statuses = [(items.get(name) or {}).get("status") or {} for name in names]
    return statuses if all(s.get("phase") == "Allocated" for s in statuses) else None


async def invariants(api: client.KubeClient) -> None:
    for superpod in SUPERPODS:
        await eventually(lambda s=superpod: books_balance(api, s), timeout=30)


async def test_ownership_spreads_and_moves_on_join_leave_and_kill(cluster):
    sandbox, api = cluster
    await fleet_of_four(api)
    first, second, third = (replica(sandbox, name) for name in ("ra", "rb", "rc"))
    await first.start()
    await second.start()
    try:
        table = await eventually(lambda: held_by({"ra", "rb"})(api), timeout=30)
        names = [f"p{i}" for i in range(8)]
        for i, name in enumerate(names):
            await api.create(SPP, partition(name, SUPERPODS[i % 4]))
        await eventually(lambda: all_placed(api, names), timeout=30)
        for i, name in enumerate(names):  # each partition was placed by its SuperPod's owner, and only by it
            placer = {"ra": first, "rb": second}[table[SUPERPODS[i % 4]]]
            other = second if placer is first else first
            line = f"placed team-a/{name}:"
            # the placer logs the line once its write has returned, which may be after the test sees the status
            await eventually(lambda op=placer, text=line: _logged(op, text), timeout=15)
            assert line not in other.log.read_text()

        await third.start()  # join: the newcomer gets its share
        await eventually(lambda: held_by({"ra", "rb", "rc"})(api), timeout=30)
        more = [f"q{i}" for i in range(4)]
        for i, name in enumerate(more):
            await api.create(SPP, partition(name, SUPERPODS[i]))
        await eventually(lambda: all_placed(api, names + more), timeout=30)

        await second.stop()  # leave: its SuperPods are handed over without waiting for its Lease to expire
        left = time.monotonic()
        await eventually(lambda: held_by({"ra", "rc"})(api), timeout=30)
        assert time.monotonic() - left < 3.0  # sooner than the lease duration
        member_leases = (await api.get(LEASES, labelSelector="superpod.dev/shard-role=member"))["items"]
        assert "rb" not in {item["spec"]["holderIdentity"] for item in member_leases}

        await third.kill()  # kill -9: its SuperPods move once its Lease expires
        await eventually(lambda: held_by({"ra"})(api), timeout=30)
        last = [f"r{i}" for i in range(4)]
        for i, name in enumerate(last):
            await api.create(SPP, partition(name, SUPERPODS[i]))
        await eventually(lambda: all_placed(api, names + more + last), timeout=30)
        await invariants(api)
    finally:
        for op in (first, second, third):
            await op.stop()


async def test_a_paused_replica_writes_nothing_after_its_renew_deadline(cluster):
    sandbox, api = cluster
    await fleet_of_four(api)
    writes: list[tuple[float, str, str, str]] = []

    def record(request) -> None:
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            writes.append(
                (time.monotonic(), request.method, request.path, request.headers.get("User-Agent", ""))
            )

    sandbox.request_observers.append(record)
    first, second = replica(sandbox, "ra"), replica(sandbox, "rb")
    await first.start()
    await second.start()
    try:
        table = await eventually(lambda: held_by({"ra", "rb"})(api), timeout=30)
        mine = sorted(name for name, holder in table.items() if holder == "ra")
        await eventually(lambda: _logged_owning(first, "ra", mine), timeout=30)  # holds them, not only named
        assert first.process is not None
        first.process.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        try:
            # work for the paused replica's SuperPods: its watches hold the events until it wakes up
            names = [f"p{i}" for i in range(len(mine) * 2)]
            for i, name in enumerate(names):
                await api.create(SPP, partition(name, mine[i % len(mine)]))
            await eventually(lambda: held_by({"rb"})(api), timeout=30)  # taken once its Lease expired
            await eventually(lambda: all_placed(api, names), timeout=30)
        finally:
            first.process.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
        # awake: it may renew its own Lease and let go of Leases naming it, and write nothing else. Only what
        # arrives after SIGCONT was sent awake: a request sent just before the pause may be read seconds later
        # by this busy test loop, which serves the API too.
        await asyncio.sleep(3.0)
        late = [
            (round(at - paused, 2), method, path)
            for at, method, path, agent in writes
            if "/ra" in agent and at > resumed and "/leases" not in path
        ]
        assert late == []
        await eventually(lambda: _logged(first, "stops writing"), timeout=30)
        # and it comes back: the SuperPods spread again, and new work on them is placed
        await eventually(lambda: held_by({"ra", "rb"})(api), timeout=30)
        again = [f"q{i}" for i in range(4)]
        for i, name in enumerate(again):
            await api.create(SPP, partition(name, SUPERPODS[i]))
        await eventually(lambda: all_placed(api, names + again), timeout=30)
        await invariants(api)
    finally:
        await first.stop()
        await second.stop()


async def test_a_lone_replica_paused_past_its_lease_resumes_its_superpods_without_a_rebuild(cluster):
    """Nobody else could take them (no other replica), so their Leases are untouched: on waking it is fenced,
    lets nothing go, takes them back as they were and places what came meanwhile."""
    sandbox, api = cluster
    await fleet_of_four(api)
    alone = replica(sandbox, "ra")
    await alone.start()
    try:
        before = await eventually(lambda: held_by({"ra"})(api), timeout=30)
        # its Leases name it before it holds them (it reads the partitions first): pause it only once it holds
        await eventually(lambda: _logged_owning(alone, "ra", SUPERPODS), timeout=30)
        versions = {
            item["metadata"]["name"]: item["metadata"]["resourceVersion"]
            for item in (await api.get(LEASES, labelSelector="superpod.dev/shard-role=superpod"))["items"]
        }
        assert alone.process is not None
        alone.process.send_signal(signal.SIGSTOP)
        try:
            names = [f"p{i}" for i in range(4)]
            for i, name in enumerate(names):
                await api.create(SPP, partition(name, SUPERPODS[i]))
            await asyncio.sleep(4.0)  # past the lease duration (3 s) and the renew deadline (2 s)
        finally:
            alone.process.send_signal(signal.SIGCONT)
        await eventually(lambda: all_placed(api, names), timeout=30)
        assert await held_by({"ra"})(api) == before
        # it was fenced on waking, and took its SuperPods back as they were (the lines may reach the file late)
        await eventually(lambda: _logged(alone, "stops writing"), timeout=30)
        await eventually(lambda: _logged(alone, "4 resumed: no other replica took them"), timeout=30)
        after = (await api.get(LEASES, labelSelector="superpod.dev/shard-role=superpod"))["items"]
        for item in after:  # taken back by a write of the version it held, never let go in between
            assert item["spec"]["holderIdentity"] == "ra"
            assert int(item["spec"].get("leaseTransitions") or 0) == 0, versions
        await invariants(api)
    finally:
        await alone.stop()


async def _logged(operator: Operator, text: str) -> bool:
    return text in operator.log.read_text()


async def _logged_owning(operator: Operator, identity: str, superpods: list[str]) -> bool:
    """Has the replica logged owning every one of `superpods` (its "replica X owns a, b" lines)?"""
    owned: set[str] = set()
    for line in operator.log.read_text().splitlines():
        _, found, rest = line.partition(f"replica {identity} owns ")
        if found:
            owned.update(name.strip() for name in rest.split(" (")[0].split(","))
    return owned >= set(superpods)
