"""`controller.eviction` against the sandbox's Eviction API: pods go, disruption budgets hold them, and a
refusal is reported and retried, never bypassed."""

from __future__ import annotations

from typing import Any

from superpod.cluster import client
from superpod.controller import eviction

PODS = client.resource_path("v1", "pods", "team-a")
BUDGETS = client.resource_path("policy/v1", "poddisruptionbudgets", "team-a")
JSON = dict[str, Any]


async def _ready_pod(api: client.KubeClient, name: str, app: str = "train") -> JSON:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    await api.create(PODS, pod)
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    return await api.patch(f"{PODS}/{name}/status", ready)


async def _pods(api: client.KubeClient) -> list[JSON]:
    return await eviction.list_pods(api, "team-a", "app=train")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_pods_are_evicted_once_each_and_the_progress_ends_done(cluster):
    _, api = cluster
    for name in ("w-0", "w-1"):
        await _ready_pod(api, name)
    await _ready_pod(api, "bystander", app="other")
    evictions = eviction.Evictions(api)

    progress = await evictions.evict("team-a/p", await _pods(api))
    assert progress.evicted == ("w-0", "w-1")
    assert not progress.blocked

    after = await evictions.evict("team-a/p", await _pods(api))
    assert after.done and after.summary() == "every pod is gone"
    assert await api.get_or_none(f"{PODS}/bystander") is not None  # only the pods handed over go
    assert evictions.owners() == []


async def test_a_disruption_budget_blocks_the_eviction_which_is_reported_and_retried_with_backoff(cluster):
    _, api = cluster
    for name in ("w-0", "w-1"):
        await _ready_pod(api, name)
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "keep-training", "namespace": "team-a"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "train"}}},
    }
    await api.create(BUDGETS, budget)
    clock = _Clock()
    evictions = eviction.Evictions(api, clock=clock, initial_backoff=1.0, max_backoff=4.0)

    first = await evictions.evict("team-a/p", await _pods(api))
    assert first.remaining == ("w-0", "w-1") and not first.evicted
    assert [pod for pod, _ in first.blocked] == ["w-0", "w-1"]
    assert "keep-training" in first.blocked[0][1]
    assert first.retry_in == 1.0
    assert "refused" in first.summary() and "keep-training" in first.summary()

    # not due yet: nothing is asked, the refusal stays reported
    again = await evictions.evict("team-a/p", await _pods(api))
    assert again.blocked == first.blocked and again.retry_in == 1.0
    clock.now = 1.0
    backed_off = await evictions.evict("team-a/p", await _pods(api))
    assert backed_off.retry_in == 2.0  # doubled
    assert {p["metadata"]["name"] for p in await _pods(api)} == {"w-0", "w-1"}  # never bypassed

    await api.delete(f"{BUDGETS}/keep-training")
    clock.now = 3.0
    freed = await evictions.evict("team-a/p", await _pods(api))
    assert freed.evicted == ("w-0", "w-1") and not freed.blocked
    assert (await evictions.evict("team-a/p", await _pods(api))).done


async def test_a_new_pod_of_the_same_name_is_not_evicted_in_the_old_ones_place(cluster):
    _, api = cluster
    old = await _ready_pod(api, "w-0")
    await api.delete(f"{PODS}/w-0")
    await _ready_pod(api, "w-0")
    evictions = eviction.Evictions(api)

    progress = await evictions.evict("team-a/p", [old])  # the caller's stale copy
    assert not progress.evicted
    assert await api.get_or_none(f"{PODS}/w-0") is not None


async def test_drain_evicts_until_every_pod_is_gone_and_reports_each_change(cluster):
    _, api = cluster
    await _ready_pod(api, "w-0")
    seen: list[eviction.Progress] = []

    async def report(progress: eviction.Progress) -> None:
        seen.append(progress)

    last = await eviction.drain(
        eviction.Evictions(api), "team-a/p", lambda: _pods(api), on_progress=report, poll=0.05, timeout=10
    )
    assert last.done
    assert seen[0].evicted == ("w-0",) and seen[-1].done
