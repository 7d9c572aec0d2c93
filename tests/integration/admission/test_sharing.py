"""Sharing a simulated SuperPoD between two teams: quotas, borrowing and reclaim, priorities and preemption.

Four CloudMatrix 384 nodes of 16 dies, no reserve: 64 devices; team-a and team-b are owed 32 each. Pods run
on the simulated fleet, so every check of the guarantee is made on what pods really use (the device plugin's
`huawei.com/AscendReal` annotation) against what partitions hold, over the whole preemption, not only after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from superpod.cluster import client

from tests.integration.admission.conftest import (
    SPOD,
    eventually,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
    watching,
)
from tests.integration.operator.conftest import books_balance

JSON = dict[str, Any]
PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"


def superpod(*quotas: JSON) -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPod",
        "metadata": {"name": "cm384-a"},
        "spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0, "quotas": list(quotas)},
    }


def quota(name: str, npus: int, borrowing: str = "Allowed") -> JSON:
    return {"name": name, "namespaces": [name], "npus": npus, "borrowing": borrowing}


async def status(api: client.KubeClient, name: str, namespace: str = "team-a") -> JSON:
    obj = await api.get_or_none(f"{partitions_path(namespace)}/{name}")
    return dict((obj or {}).get("status") or {})


async def in_phase(api: client.KubeClient, name: str, phase: str, namespace: str = "team-a") -> JSON | None:
    found = await status(api, name, namespace)
    return found if found.get("phase") == phase else None


async def pods_running(api: client.KubeClient, partition_name: str, count: int, namespace: str) -> bool:
    items = await api.list(pods_path(namespace), labelSelector=f"superpod.dev/partition={partition_name}")
    return sum(1 for item in items if (item.get("status") or {}).get("phase") == "Running") == count


async def start_pods(api: client.KubeClient, partition_name: str, count: int, namespace: str) -> None:
    for index in range(count):
        await api.create(
            pods_path(namespace), pod(f"{partition_name}-{index}", partition_name, namespace=namespace)
        )
    await eventually(lambda: pods_running(api, partition_name, count, namespace), timeout=30)


@pytest_asyncio.fixture
async def fleet(cluster, operator) -> AsyncIterator[client.KubeClient]:
    sandbox, api = cluster
    async with simulated(sandbox):
        yield api


async def superpod_ready(api: client.KubeClient) -> bool:
    obj = await api.get_or_none(f"{SPOD}/cm384-a")
    return ((obj or {}).get("status") or {}).get("devices", {}).get("total") == 64


async def test_a_team_that_may_not_borrow_waits_with_quota_exceeded(fleet):
    api = fleet
    await api.create(SPOD, superpod(quota("team-a", 32, "Never"), quota("team-b", 32)))
    await eventually(lambda: superpod_ready(api), timeout=15)
    await api.create(partitions_path(), partition("a-1", 32, devicesPerPod=16))
    placed = await eventually(lambda: in_phase(api, "a-1", "Allocated"), timeout=15)
    assert placed["quota"] == "team-a" and placed["borrowing"] is False
    await api.create(partitions_path(), partition("a-2", 16))
    waiting = await eventually(lambda: in_phase(api, "a-2", "Pending"), timeout=15)
    assert waiting["reason"] == "QuotaExceeded"
    assert waiting["message"].startswith(
        "quota team-a: 32 of 32 NPUs in use, 16 more would exceed the nominal share and borrowing is Never"
    )

    async def usage() -> list[JSON] | None:
        found = ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("quotas")
        return found if found and found[0]["pending"] == 1 else None

    assert await eventually(usage, timeout=15) == [
        {"name": "team-a", "nominal": 32, "used": 32, "borrowed": 0, "pending": 1},
        {"name": "team-b", "nominal": 32, "used": 0, "borrowed": 0, "pending": 0},
    ]
    # team-b's share stays free for team-b
    await api.create(partitions_path("team-b"), partition("b-1", 32, namespace="team-b"))
    await eventually(lambda: in_phase(api, "b-1", "Allocated", "team-b"), timeout=15)
    assert (await status(api, "a-2"))["reason"] == "QuotaExceeded"
    await eventually(lambda: books_balance(api), timeout=15)


async def test_borrowed_devices_are_reclaimed_once_the_borrowers_pods_are_gone(fleet):
    api = fleet
    await api.create(SPOD, superpod(quota("team-a", 32), quota("team-b", 32)))
    await eventually(lambda: superpod_ready(api), timeout=15)
    # team-a uses its share and borrows team-b's idle one, with pods running on both partitions
    await api.create(partitions_path(), partition("own", 32, devicesPerPod=16))
    await eventually(lambda: in_phase(api, "own", "Allocated"), timeout=15)
    await api.create(partitions_path(), partition("borrowed", 32, devicesPerPod=16))
    borrowed = await eventually(lambda: in_phase(api, "borrowed", "Allocated"), timeout=15)
    assert borrowed["quota"] == "team-a"

    async def borrowing(name: str) -> bool:
        return (await status(api, name)).get("borrowing") is True

    await eventually(lambda: borrowing("borrowed"), timeout=15)
    # the borrowing is the younger partition's: the older one holds team-a's own share
    assert (await status(api, "borrowed")).get("borrowedNpus") == 32
    own = await status(api, "own")
    assert own["borrowing"] is False and own.get("borrowedNpus") is None
    await start_pods(api, "own", 2, "team-a")
    await start_pods(api, "borrowed", 2, "team-a")
    async with watching(api):
        # team-b wants its share back: the youngest borrowing partition is preempted, its pods evicted
        await api.create(
            partitions_path("team-b"), partition("back", 32, namespace="team-b", devicesPerPod=16)
        )
        victim = await eventually(lambda: in_phase(api, "borrowed", "Pending"), timeout=20)
        assert victim["reason"] == "Preempted" and victim["preemptedBy"] == "team-b/back"
        back = await eventually(lambda: in_phase(api, "back", "Allocated", "team-b"), timeout=30)
        assert {(s["node"], d) for s in back["allocation"] for d in s["devices"]} == {
            (s["node"], d) for s in borrowed["allocation"] for d in s["devices"]
        }
        # the borrower's pods are gone; team-a's own share was not touched
        assert await pods_running(api, "borrowed", 0, "team-a")
        assert await pods_running(api, "own", 2, "team-a")
        assert (await status(api, "own"))["phase"] == "Bound"
        # queued again, it still shows who took its devices, and what it waits for now
        after = await status(api, "borrowed")
        assert after["phase"] == "Pending" and not after.get("allocation")
        assert after["reason"] == "Preempted" and after["preemptedBy"] == "team-b/back"
        await eventually(lambda: waits_again(api, "borrowed"), timeout=15)
        after = await status(api, "borrowed")
        assert after["reason"] == "Preempted" and after["preemptedBy"] == "team-b/back"
    events = await api.list("/api/v1/namespaces/team-a/events")
    preempted = [
        e for e in events if e["reason"] == "Preempted" and e["involvedObject"]["name"] == "borrowed"
    ]
    assert preempted and "team-b/back" in preempted[0]["message"]
    events_b = await api.list("/api/v1/namespaces/team-b/events")
    preempting = [
        e for e in events_b if e["reason"] == "Preempting" and e["involvedObject"]["name"] == "back"
    ]
    assert preempting and "team-a/borrowed" in preempting[0]["message"]
    await eventually(lambda: books_balance(api), timeout=15)


async def waits_again(api: client.KubeClient, name: str) -> bool:
    """A victim queued again and decided on by an admission pass: the message says what it waits for."""
    return "waits to be placed again: " in str((await status(api, name)).get("message"))


async def priority_class(api: client.KubeClient, name: str, value: int, policy: str) -> None:
    await api.create(
        PRIORITY_CLASSES,
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "preemptionPolicy": policy,
        },
    )


async def test_a_higher_priority_partition_preempts_a_running_one_and_never_policy_waits(fleet):
    api = fleet
    await priority_class(api, "urgent", 1000, "PreemptLowerPriority")
    await priority_class(api, "polite", 1000, "Never")
    await api.create(SPOD, superpod(quota("team-a", 64)))
    await eventually(lambda: superpod_ready(api), timeout=15)
    for name in ("low-1", "low-2"):
        await api.create(partitions_path(), partition(name, 32, devicesPerPod=16))
        await eventually(lambda n=name: in_phase(api, n, "Allocated"), timeout=15)
        await start_pods(api, name, 2, "team-a")
    # policy Never: it waits, nothing is preempted
    await api.create(partitions_path(), partition("polite", 32, devicesPerPod=16, priorityClassName="polite"))
    polite = await eventually(lambda: in_phase(api, "polite", "Pending"), timeout=15)
    assert polite["reason"] == "InsufficientCapacity" and polite["priority"] == 1000
    await api.delete(f"{partitions_path()}/polite")
    assert await pods_running(api, "low-1", 2, "team-a") and await pods_running(api, "low-2", 2, "team-a")
    async with watching(api):
        await api.create(
            partitions_path(), partition("urgent", 32, devicesPerPod=16, priorityClassName="urgent")
        )
        urgent = await eventually(lambda: in_phase(api, "urgent", "Allocated"), timeout=40)
        assert urgent["priority"] == 1000
        states = {name: await status(api, name) for name in ("low-1", "low-2")}
        preempted = [name for name, found in states.items() if found.get("phase") == "Pending"]
        assert len(preempted) == 1, states
        (victim,) = preempted
        assert not states[victim].get("allocation")
        assert states[victim]["reason"] == "Preempted" and states[victim]["preemptedBy"] == "team-a/urgent"
        assert await pods_running(api, victim, 0, "team-a")
    events = await api.list("/api/v1/namespaces/team-a/events")
    assert any(
        e["reason"] == "Preempted"
        and e["involvedObject"]["name"] == victim
        and "team-a/urgent" in e["message"]
        for e in events
    )
    await eventually(lambda: books_balance(api), timeout=15)


async def test_a_disruption_budget_holds_a_reclaim_whose_refused_evictions_are_retried_with_backoff(fleet):
    """team-a protects its borrowing partition's pods with a PodDisruptionBudget: the reclaim waits, says
    why, gives nothing away meanwhile, and goes through on its own retries once the budget allows it (the
    operator does not watch budgets: only its retry timer notices)."""
    api = fleet
    await api.create(SPOD, superpod(quota("team-a", 32), quota("team-b", 32)))
    await eventually(lambda: superpod_ready(api), timeout=15)
    for name in ("own", "borrowed"):
        await api.create(partitions_path(), partition(name, 32, devicesPerPod=16))
        await eventually(lambda n=name: in_phase(api, n, "Allocated"), timeout=15)
        await start_pods(api, name, 2, "team-a")
    budgets = "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets"
    selector = {"key": "superpod.dev/partition", "operator": "In", "values": ["own", "borrowed"]}
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "keep-borrowed", "namespace": "team-a"},
        "spec": {"minAvailable": 4, "selector": {"matchExpressions": [selector]}},
    }
    await api.create(budgets, budget)
    async with watching(api):
        await api.create(
            partitions_path("team-b"), partition("back", 32, namespace="team-b", devicesPerPod=16)
        )

        async def blocked() -> JSON | None:
            found = await status(api, "back", "team-b")
            return found if "keep-borrowed" in str(found.get("message")) else None

        back = await eventually(blocked, timeout=20)
        assert back["phase"] == "Pending" and back["reason"] == "Preempting" and not back.get("allocation")
        assert "refused" in back["message"] and "retried with backoff" in back["message"]
        victim = back["message"].split()[1].removesuffix(":").split("/")[1]  # "preempting team-a/<victim>:"
        assert await pods_running(api, victim, 2, "team-a")
        await api.delete(f"{budgets}/keep-borrowed")
        back = await eventually(lambda: in_phase(api, "back", "Allocated", "team-b"), timeout=25)
        assert "keep-borrowed" not in back["message"]
        assert await pods_running(api, victim, 0, "team-a")
    assert (await status(api, victim))["reason"] == "Preempted"
    await eventually(lambda: books_balance(api), timeout=15)


async def test_a_tenant_cannot_use_a_system_priority_class_nor_forge_its_quota_in_status(fleet):
    """Each tenant-reachable input of sharing, abused: a PriorityClass reserved for Kubernetes' own
    components, and quota, priority and borrowing written into status (the SuperPod's too)."""
    api = fleet
    await api.create(SPOD, superpod(quota("team-a", 32, "Never"), quota("team-b", 32)))
    await eventually(lambda: superpod_ready(api), timeout=15)
    await api.create(
        partitions_path(),
        partition("critical", 16, devicesPerPod=16, priorityClassName="system-node-critical"),
    )
    critical = await eventually(lambda: in_phase(api, "critical", "Pending"), timeout=15)
    assert critical["reason"] == "PriorityClassForbidden" and "system-node-critical" in critical["message"]
    assert not critical.get("allocation")
    await api.delete(f"{partitions_path()}/critical")
    await api.create(partitions_path(), partition("own", 32, devicesPerPod=16))
    await eventually(lambda: in_phase(api, "own", "Allocated"), timeout=15)
    # status forged (a tenant allowed to write status, or a stale writer): another quota, a huge priority
    forged = {"quota": "team-b", "priority": 1_000_000_000, "borrowing": True, "borrowedNpus": 32}
    await api.patch(f"{partitions_path()}/own/status", {"status": forged})
    await api.patch(
        f"{SPOD}/cm384-a/status",
        {"status": {"quotas": [{"name": "team-a", "nominal": 64, "used": 0, "borrowed": 0, "pending": 0}]}},
    )
    # team-a may not borrow: its next partition waits on the real numbers, whatever its status says
    await api.create(partitions_path(), partition("more", 16, devicesPerPod=16))
    more = await eventually(lambda: in_phase(api, "more", "Pending"), timeout=15)
    assert more["reason"] == "QuotaExceeded" and more["message"].startswith(
        "quota team-a: 32 of 32 NPUs in use"
    )

    async def restored() -> JSON | None:
        found = await status(api, "own")
        return found if found.get("quota") == "team-a" and found.get("borrowing") is False else None

    own = await eventually(restored, timeout=20)
    assert own["priority"] == 0 and own.get("borrowedNpus") is None

    async def superpod_quotas() -> list[JSON] | None:
        found = ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("quotas")
        return found if found and found[0]["nominal"] == 32 and found[0]["pending"] == 1 else None

    usage = await eventually(superpod_quotas, timeout=20)
    assert usage[0] == {"name": "team-a", "nominal": 32, "used": 32, "borrowed": 0, "pending": 1}
    await eventually(lambda: books_balance(api), timeout=15)
