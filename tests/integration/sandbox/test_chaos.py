"""The sandbox's API fault mode: each fault does what kube-apiserver does when it fails that way, and only to
the requests the plan aims at."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from superpod.cluster import client
from superpod_sandbox.apiserver import chaos, server

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


def as_client(sandbox: server.Sandbox, token: str) -> client.KubeClient:
    return client.KubeClient(client.Credentials(server=sandbox.url, token=token))


@pytest.mark.parametrize(
    ("plan", "verb", "code", "counted"),
    [
        pytest.param(chaos.Plan(error_rate=1.0, seed=1), "GET", (500, 503, 504), "error", id="server errors"),
        pytest.param(
            chaos.Plan(conflict_rate=1.0), "PATCH", (409,), "conflict", id="conflicts on guarded patches"
        ),
    ],
)
async def test_a_refused_request_is_answered_with_a_status_and_not_served(
    sandbox: server.Sandbox, plan: chaos.Plan, verb: str, code: tuple[int, ...], counted: str
):
    async with as_client(sandbox, "any") as api:
        version = (await api.create(CONFIGMAPS, configmap("a")))["metadata"]["resourceVersion"]
        sandbox.faults.set(plan)
        with pytest.raises(client.ApiError) as failure:
            if (
                verb == "GET"
            ):  # retries=0: the client would otherwise retry a 5xx, and the count below is per call
                await api.request("GET", f"{CONFIGMAPS}/a", retries=0)
            else:
                await api.patch(
                    f"{CONFIGMAPS}/a", {"metadata": {"resourceVersion": version}, "data": {"k": "x"}}
                )
        sandbox.faults.set(None)
        assert failure.value.status in code
        assert failure.value.body["kind"] == "Status"
        assert (await api.get(f"{CONFIGMAPS}/a"))["data"] == {"k": "v"}
    assert sum(n for name, n in sandbox.faults.injected.items() if name.startswith(counted)) == 1


async def test_a_conflict_names_the_object_as_kube_does(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(conflict_rate=1.0))
    async with as_client(sandbox, "any") as api:
        with pytest.raises(client.ApiError) as failure:
            await api.patch(
                "/api/v1/namespaces/default/pods/web/status",
                {"metadata": {"resourceVersion": "1"}, "status": {}},
            )
    assert failure.value.reason == "Conflict"
    assert failure.value.body["message"].startswith('Operation cannot be fulfilled on pods "web": ')


async def test_creates_and_unguarded_patches_are_never_answered_with_a_conflict(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(conflict_rate=1.0))
    async with as_client(sandbox, "any") as api:
        created = await api.create(CONFIGMAPS, configmap("fresh"))
        patched = await api.patch(f"{CONFIGMAPS}/fresh", {"data": {"k": "patched"}})
    assert created["metadata"]["name"] == "fresh"
    assert patched["data"] == {"k": "patched"}


async def test_a_lost_reply_applies_the_write_and_answers_a_timeout(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(lost_reply_rate=1.0))
    async with as_client(sandbox, "any") as api:
        with pytest.raises(client.ApiError) as failure:
            await api.create(CONFIGMAPS, configmap("maybe"))
        sandbox.faults.set(None)
        assert failure.value.status == 504 and failure.value.reason == "Timeout"
        assert await api.get_or_none(f"{CONFIGMAPS}/maybe") is not None
    assert sandbox.faults.injected["lost_reply"] == 1


async def test_a_plan_aimed_at_one_token_leaves_other_clients_alone(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(error_rate=1.0, token="operator"))
    async with as_client(sandbox, "operator") as victim, as_client(sandbox, "tester") as bystander:
        assert (await bystander.get(CONFIGMAPS))["items"] == []
        with pytest.raises(client.ApiError):
            await victim.request("GET", CONFIGMAPS, retries=0)


async def test_latency_delays_every_answer(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(latency=(0.2, 0.25)))
    async with as_client(sandbox, "any") as api:
        started = time.monotonic()
        await api.get(CONFIGMAPS)
        assert time.monotonic() - started >= 0.2


async def test_a_cut_watch_breaks_mid_stream_and_a_new_one_resumes(sandbox: server.Sandbox):
    sandbox.faults.set(chaos.Plan(watch_cut=(0.2, 0.3)))
    async with as_client(sandbox, "any") as api:
        created = await api.create(CONFIGMAPS, configmap("seen"))
        started = time.monotonic()
        seen = []
        with pytest.raises(aiohttp.ClientPayloadError):
            async for event in api.watch(CONFIGMAPS, resourceVersion="0", timeoutSeconds="30"):
                seen.append(event["object"]["metadata"]["name"])
        assert seen == ["seen"]
        assert time.monotonic() - started < 5  # cut, not ended by its 30 s timeout
        await api.create(CONFIGMAPS, configmap("later"))
        sandbox.faults.set(None)
        resumed = [
            event["object"]["metadata"]["name"]
            async for event in api.watch(
                CONFIGMAPS, resourceVersion=created["metadata"]["resourceVersion"], timeoutSeconds="1"
            )
        ]
    assert resumed == ["later"]
    assert sandbox.faults.injected["watch_cut"] == 1


async def test_a_watch_opened_before_the_plan_is_cut_too(sandbox: server.Sandbox):
    async with as_client(sandbox, "any") as api:
        await api.create(CONFIGMAPS, configmap("old"))

        async def watch() -> list[str]:
            return [
                event["object"]["metadata"]["name"]
                async for event in api.watch(CONFIGMAPS, resourceVersion="0", timeoutSeconds="30")
            ]

        watching = asyncio.create_task(watch())
        await asyncio.sleep(0.2)  # the watch is open, with no plan yet
        started = time.monotonic()
        sandbox.faults.set(chaos.Plan(watch_cut=(0.1, 0.2)))
        with pytest.raises(aiohttp.ClientPayloadError):
            await watching
        assert time.monotonic() - started < 5
    assert sandbox.faults.injected["watch_cut"] == 1


async def test_without_a_plan_nothing_is_injected(sandbox: server.Sandbox):
    async with as_client(sandbox, "any") as api:
        for index in range(20):
            await api.create(CONFIGMAPS, configmap(f"c{index}"))
    assert not sandbox.faults.injected
