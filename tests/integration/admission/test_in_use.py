"""In-use protection on a simulated SuperPoD: a deleted partition keeps its devices while its pods run.

The fleet and tenants of `test_tenancy`: team-a's `victim` holds two nodes and runs two pods, team-b's `mine`
holds one node, one member node is free. `kubectl delete spp victim` must leave its devices, slots and rank
table in place (phase Terminating, the pods named, an Event) while the pods run; a partition of team-b that
needs exactly those devices waits; only when the pods are gone are the devices released and the partition
goes. Judged, as always, on what the pods really got (the simulated device plugin's `huawei.com/AscendReal`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from superpod.api import inusepolicy
from superpod.cluster import client

from tests.integration.admission import test_tenancy
from tests.integration.admission.conftest import (
    allocated,
    eventually,
    no_device_used_twice,
    partition,
    partitions_path,
    pod,
    pods_path,
)
from tests.integration.admission.test_tenancy import Tenants, refused
from tests.integration.operator.conftest import books_balance, devices_of

JSON = dict[str, Any]
# the fixture: two tenants on a simulated SuperPoD, team-a's victim runs two pods
tenants = test_tenancy.tenants
BUDGETS = "/apis/policy/v1/namespaces/team-a/poddisruptionbudgets"
RANK_TABLE = "/api/v1/namespaces/team-a/configmaps/rings-config-victim"


async def victim(api: client.KubeClient) -> JSON | None:
    return await api.get_or_none(f"{partitions_path()}/victim")


async def terminating(api: client.KubeClient, reason: str = "PodsRunning") -> JSON | None:
    status = ((await victim(api)) or {}).get("status") or {}
    return status if status.get("phase") == "Terminating" and status.get("reason") == reason else None


async def event(api: client.KubeClient, reason: str, namespace: str = "team-a") -> JSON | None:
    for item in await api.list(f"/api/v1/namespaces/{namespace}/events"):
        if item["involvedObject"].get("name") == "victim" and item["reason"] == reason:
            return item
    return None


async def phase_of(api: client.KubeClient, name: str, namespace: str) -> str | None:
    obj = await api.get_or_none(f"{partitions_path(namespace)}/{name}")
    return ((obj or {}).get("status") or {}).get("phase")


async def waiting_for_victims_devices(api: client.KubeClient) -> JSON:
    """team-b's `next`: two nodes' worth, which only the victim's devices can give."""
    await api.create(partitions_path("team-b"), partition("next", 32, namespace="team-b", devicesPerPod=16))

    async def pending() -> JSON | None:
        obj = await api.get_or_none(f"{partitions_path('team-b')}/next")
        status = (obj or {}).get("status") or {}
        return status if status.get("reason") == "InsufficientCapacity" else None

    result: JSON = await eventually(pending, timeout=15)
    return result


async def placed_on_the_victims_devices(api: client.KubeClient, before: set[tuple[str, str]]) -> None:
    async def placed() -> JSON | None:
        obj = await api.get_or_none(f"{partitions_path('team-b')}/next")
        status = (obj or {}).get("status") or {}
        return status if status.get("phase") == "Allocated" else None

    status = await eventually(placed, timeout=20)
    assert devices_of(status) == before  # the only free room was the victim's
    assert await victim(api) is None
    assert await api.get_or_none(RANK_TABLE) is None
    await no_device_used_twice(api)
    await eventually(lambda: books_balance(api), timeout=10)


async def test_a_deleted_partition_keeps_its_devices_until_its_pods_are_gone(tenants: Tenants):
    api = tenants.api
    devices = {(slot["node"], d) for slot in tenants.victim for d in slot["devices"]}
    assert "superpod.dev/in-use" in (await victim(api) or {})["metadata"]["finalizers"]

    await api.delete(f"{partitions_path()}/victim")
    status = await eventually(lambda: terminating(api), timeout=15)
    assert status["inUseBy"] == ["victim-0", "victim-1"] and status["inUseByCount"] == 2
    assert "2 pod(s) still run: victim-0, victim-1" in status["message"]
    condition = next(c for c in status["conditions"] if c["type"] == "Terminating")
    assert (condition["status"], condition["reason"]) == ("True", "PodsRunning")
    assert devices_of(status) == devices  # the allocation stays
    notice = await eventually(lambda: event(api, "Terminating"))
    assert "victim-0" in notice["message"]
    assert await api.get_or_none(RANK_TABLE) is not None  # the pods mount it

    await waiting_for_victims_devices(api)
    message = await refused(api.create(pods_path(), pod("victim-2", "victim")))
    assert "partition team-a/victim is being deleted: it takes no new pods" in message
    await no_device_used_twice(api)

    # one pod finishes: the partition waits for the other
    await api.patch(f"{pods_path()}/victim-0/status", {"status": {"phase": "Succeeded"}})

    async def one_left() -> JSON | None:
        status = await terminating(api)
        return status if status and status["inUseBy"] == ["victim-1"] else None

    await eventually(one_left, timeout=15)
    assert await phase_of(api, "next", "team-b") == "Pending"
    await no_device_used_twice(api)

    await api.delete(f"{pods_path()}/victim-1")
    await placed_on_the_victims_devices(api, devices)
    assert await eventually(lambda: event(api, "Released"))


async def test_evict_pods_evicts_them_and_a_disruption_budget_blocks_it_visibly(tenants: Tenants):
    api = tenants.api
    devices = {(slot["node"], d) for slot in tenants.victim for d in slot["devices"]}
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "keep-training", "namespace": "team-a"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"superpod.dev/partition": "victim"}}},
    }
    await api.create(BUDGETS, budget)
    # the policy may be chosen at any time, also on a partition that already runs
    await api.patch(f"{partitions_path()}/victim", {"spec": {"deletionPolicy": "EvictPods"}})

    await api.delete(f"{partitions_path()}/victim")
    status = await eventually(lambda: terminating(api, "EvictionBlocked"), timeout=15)
    assert "keep-training" in status["message"] and "retried with backoff" in status["message"]
    blocked = await eventually(lambda: event(api, "EvictionBlocked"))
    assert blocked["type"] == "Warning" and "keep-training" in blocked["message"]
    await waiting_for_victims_devices(api)
    for index in range(2):  # never bypassed
        assert await api.get_or_none(f"{pods_path()}/victim-{index}") is not None
    await no_device_used_twice(api)

    await api.delete(f"{BUDGETS}/keep-training")
    await placed_on_the_victims_devices(api, devices)
    evicted = await eventually(lambda: event(api, "Evicted"))
    assert "victim-" in evicted["message"]
    for index in range(2):
        assert await api.get_or_none(f"{pods_path()}/victim-{index}") is None


async def test_an_operator_killed_mid_deletion_resumes_it_and_gives_the_devices_to_no_one_before(
    tenants: Tenants, operator
):
    api = tenants.api
    devices = {(slot["node"], d) for slot in tenants.victim for d in slot["devices"]}
    await api.delete(f"{partitions_path()}/victim")
    await eventually(lambda: terminating(api), timeout=15)

    await operator.kill()
    await api.create(partitions_path("team-b"), partition("next", 32, namespace="team-b", devicesPerPod=16))
    await api.patch(f"{pods_path()}/victim-0/status", {"status": {"phase": "Succeeded"}})
    await operator.start()

    async def reported() -> JSON | None:  # the restarted operator has looked at both
        status = await terminating(api)
        obj = await api.get_or_none(f"{partitions_path('team-b')}/next")
        waiting = ((obj or {}).get("status") or {}).get("reason") == "InsufficientCapacity"
        return status if status and status["inUseBy"] == ["victim-1"] and waiting else None

    await eventually(reported, timeout=20)
    await no_device_used_twice(api)
    assert await api.get_or_none(RANK_TABLE) is not None

    await api.delete(f"{pods_path()}/victim-1")
    await placed_on_the_victims_devices(api, devices)


async def test_a_placed_partition_without_the_finalizer_gets_it_and_is_protected(tenants: Tenants):
    """A partition placed before the operator had in-use protection (or by a pass that did not add it) gets
    the finalizer from the bindings loop, and a deletion then waits for its pods like any other."""
    api = tenants.api
    obj = await victim(api)
    assert obj is not None
    kept = [name for name in obj["metadata"]["finalizers"] if name != "superpod.dev/in-use"]
    await api.patch(f"{partitions_path()}/victim", {"metadata": {"finalizers": kept}})

    async def protected() -> bool:
        found = await victim(api)
        return "superpod.dev/in-use" in ((found or {}).get("metadata") or {}).get("finalizers", [])

    await eventually(protected, timeout=30)
    await api.delete(f"{partitions_path()}/victim")
    status = await eventually(lambda: terminating(api), timeout=15)
    assert status["inUseByCount"] == 2
    await no_device_used_twice(api)


POLICIES = "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicies"
POLICY_BINDINGS = "/apis/admissionregistration.k8s.io/v1/mutatingadmissionpolicybindings"


async def writes_until_allocated(api: client.KubeClient, name: str, since: str) -> list[JSON]:
    """The partition's watch events after resourceVersion `since`, up to the first that shows it Allocated."""
    seen: list[JSON] = []
    async with asyncio.timeout(15):
        async for event in api.watch(
            partitions_path("team-b"), resourceVersion=since, fieldSelector=f"metadata.name={name}"
        ):
            seen.append(event)
            if ((event["object"].get("status") or {}).get("phase")) == "Allocated":
                return seen
    raise AssertionError("not allocated")


async def test_with_the_charts_policy_a_partition_is_protected_from_creation_and_the_operator_writes_only_its_status(
    tenants: Tenants,
):
    """Where the API server serves MutatingAdmissionPolicy (Kubernetes 1.36+) the chart's policy adds the in-use
    finalizer as a partition is created; the operator then writes only the status, and partitions it never
    placed (one waiting for capacity, one naming a SuperPod that does not exist) still go when deleted."""
    api = tenants.api
    await api.create(POLICIES, inusepolicy.policy("superpod-in-use"))
    await api.create(POLICY_BINDINGS, inusepolicy.binding("superpod-in-use"))
    created = await api.create(partitions_path("team-b"), partition("guarded", 16, namespace="team-b"))
    assert created["metadata"]["finalizers"] == ["superpod.dev/in-use"]
    events = await writes_until_allocated(api, "guarded", created["metadata"]["resourceVersion"])
    assert [event["type"] for event in events] == ["MODIFIED"]  # the status, and no finalizer write before it
    assert events[0]["object"]["metadata"]["finalizers"] == ["superpod.dev/in-use"]
    await no_device_used_twice(api)

    waiting = await api.create(partitions_path("team-b"), partition("waiting", 64, namespace="team-b"))
    orphan = await api.create(
        partitions_path("team-b"), partition("orphan", 16, superpod="no-such-pod", namespace="team-b")
    )
    for obj in (waiting, orphan):
        assert obj["metadata"]["finalizers"] == ["superpod.dev/in-use"]

    async def reason(name: str) -> str | None:
        obj = await api.get_or_none(f"{partitions_path('team-b')}/{name}")
        return ((obj or {}).get("status") or {}).get("reason")

    await eventually(lambda: reason("waiting"), timeout=15)
    await eventually(lambda: reason("orphan"), timeout=15)
    for name in ("waiting", "orphan", "guarded"):
        await api.delete(f"{partitions_path('team-b')}/{name}")

    async def gone() -> bool:
        names = {"waiting", "orphan", "guarded"}
        return not [o for o in await api.list(partitions_path("team-b")) if o["metadata"]["name"] in names]

    await eventually(gone, timeout=30)
    # the guarded partition's devices are free again: a partition of the same size takes them
    await api.create(partitions_path("team-b"), partition("after", 16, namespace="team-b"))
    await allocated(api, "after", "team-b")
    await no_device_used_twice(api)
    await eventually(lambda: books_balance(api), timeout=10)
