"""The rank table writer against the sandbox: it writes only ConfigMaps that carry its mark, and reports once.

A tenant's `superpod.dev/rank-table-name` annotation used to take over any ConfigMap of the namespace (its
ownerReferences replaced, `hccl.json` added, deleted with the partition), an invalid value looped a 422 every
second, and an allocation no rank table can name looped a traceback. Each case now ends in the partition's
`RankTableWritten` condition and one Warning Event, the foreign ConfigMap untouched.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from superpod.cluster import client
from superpod.controller import hcclconfigmap, ranktables
from superpod_sandbox.apiserver import errors, server

from tests.integration.operator.conftest import SPP, partition, sandbox_cluster

JSON = dict[str, Any]
CONFIGMAPS = "/api/v1/namespaces/team-a/configmaps"
EVENTS = "/api/v1/namespaces/team-a/events"
PROFILE = "cloudmatrix-384"
SLOTS = [
    {"rank": 0, "node": "a3-0-00", "devices": ["Ascend910-0", "Ascend910-1"]},
    {"rank": 2, "node": "a3-0-00", "devices": ["Ascend910-2", "Ascend910-3"]},
]


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[tuple[server.Sandbox, client.KubeClient]]:
    async with sandbox_cluster() as pair:
        yield pair


async def placed(api: client.KubeClient, name: str, *, annotation: str | None = None, slots=SLOTS) -> JSON:
    """A partition as the operator leaves it once placed (its status written by the test)."""
    body = partition(name, sum(len(slot["devices"]) for slot in slots))
    if annotation is not None:
        body["metadata"]["annotations"] = {hcclconfigmap.NAME_ANNOTATION: annotation}
    await api.create(SPP, body)
    status = {"phase": "Allocated", "reason": "Placed", "allocation": slots}
    return await api.patch(f"{SPP}/{name}/status", {"status": status})


async def fresh(api: client.KubeClient, name: str) -> JSON:
    return await api.get(f"{SPP}/{name}")


def condition(obj: JSON) -> JSON | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "RankTableWritten"), None)


async def events(api: client.KubeClient, name: str) -> list[JSON]:
    items = (await api.get(EVENTS))["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"].startswith("RankTable")]


async def sync_three_times(tables: ranktables.RankTables, api: client.KubeClient, name: str) -> JSON:
    """What the bindings loop does on every change of the partition: sync it with its latest copy."""
    for _ in range(3):
        await tables.sync(await fresh(api, name), PROFILE, {})
    return await fresh(api, name)


USER_DATA = {"settings.yaml": "learning_rate: 0.1\n"}


async def test_a_configmap_without_the_operators_mark_is_never_adopted(cluster):
    _, api = cluster
    await api.create(CONFIGMAPS, {"metadata": {"name": "app-settings"}, "data": USER_DATA})
    await placed(api, "train", annotation="app-settings")
    tables = ranktables.RankTables(api)

    after = await sync_three_times(tables, api, "train")

    configmap = await api.get(f"{CONFIGMAPS}/app-settings")
    assert configmap["data"] == USER_DATA
    assert "ownerReferences" not in configmap["metadata"]
    written = condition(after)
    assert written is not None and written["status"] == "False" and written["reason"] == "ConfigMapNotOwned"
    assert "app-settings" in written["message"] and "left untouched" in written["message"]
    assert [e["reason"] for e in await events(api, "train")] == ["RankTableConfigMapNotOwned"]
    assert 0 < tables.retry_in("team-a", "train") <= ranktables.RETRY_REFUSED

    # its owner deletes it: the look after the retry delay writes the table, and the condition says so
    await api.delete(f"{CONFIGMAPS}/app-settings")
    assert (await sync_three_times(tables, api, "train"))["status"].get("rankTable") is None  # not yet
    later = tables.clock() + ranktables.RETRY_REFUSED
    tables.clock = lambda: later
    healed = await sync_three_times(tables, api, "train")
    assert condition(healed)["status"] == "True" and condition(healed)["reason"] == "Written"
    table = await api.get(f"{CONFIGMAPS}/app-settings")
    assert json.loads(table["data"]["hccl.json"])["status"] == "initializing"
    assert table["metadata"]["ownerReferences"][0]["uid"] == healed["metadata"]["uid"]


async def test_another_partitions_rank_table_is_not_taken_over(cluster):
    _, api = cluster
    tables = ranktables.RankTables(api)
    await placed(api, "first")
    await tables.sync(await fresh(api, "first"), PROFILE, {})
    before = await api.get(f"{CONFIGMAPS}/rings-config-first")

    await placed(api, "second", annotation="rings-config-first")
    after = await sync_three_times(tables, api, "second")

    assert await api.get(f"{CONFIGMAPS}/rings-config-first") == before
    written = condition(after)
    assert written is not None and written["reason"] == "ConfigMapNotOwned"
    assert "belongs to SuperPodPartition first" in written["message"]


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"superpod.dev/partition": "job"}, id="a placeholder a user labelled for the partition"),
    ],
)
async def test_a_configmap_carrying_the_mark_is_taken_over(cluster, labels):
    _, api = cluster
    placeholder = {
        "metadata": {"name": "rings-config-job", "labels": labels},
        "data": {"hccl.json": '{"status":"initializing"}'},
    }
    await api.create(CONFIGMAPS, placeholder)
    obj = await placed(api, "job")
    tables = ranktables.RankTables(api)

    after = await sync_three_times(tables, api, "job")

    table = await api.get(f"{CONFIGMAPS}/rings-config-job")
    assert table["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert json.loads(table["data"]["hccl.json"])["version"] == "1.2"
    assert condition(after) is None  # nothing to report: no write for it
    assert await events(api, "job") == []


async def test_the_table_an_earlier_partition_of_the_same_name_left_behind_is_taken_over(cluster):
    _, api = cluster
    tables = ranktables.RankTables(api)
    earlier = await placed(api, "job")
    await tables.sync(await fresh(api, "job"), PROFILE, {})
    # deleted leaving its dependents (as `kubectl delete --cascade=orphan` does), and created again
    await api.delete(f"{SPP}/job", propagationPolicy="Orphan")
    tables.forget("team-a", "job")
    again = await placed(api, "job")
    assert again["metadata"]["uid"] != earlier["metadata"]["uid"]
    assert await api.get_or_none(f"{CONFIGMAPS}/rings-config-job") is not None

    await sync_three_times(tables, api, "job")

    table = await api.get(f"{CONFIGMAPS}/rings-config-job")
    assert [ref["uid"] for ref in table["metadata"]["ownerReferences"]] == [again["metadata"]["uid"]]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Rings_Config", id="capitals and an underscore"),
        pytest.param("rings config", id="a space"),
        pytest.param("-rings", id="a leading dash"),
        pytest.param("r" * 254, id="254 characters"),
    ],
)
async def test_an_invalid_name_annotation_is_reported_once_and_the_default_name_used(cluster, value):
    _, api = cluster
    await placed(api, "train", annotation=value)
    tables = ranktables.RankTables(api)

    after = await sync_three_times(tables, api, "train")

    assert after["status"]["rankTable"] == "rings-config-train"
    assert (await api.get_or_none(f"{CONFIGMAPS}/rings-config-train")) is not None
    written = condition(after)
    assert written is not None and written["status"] == "True" and written["reason"] == "AnnotationIgnored"
    assert "is not a ConfigMap name" in written["message"]
    assert [e["reason"] for e in await events(api, "train")] == ["RankTableAnnotationIgnored"]


@pytest.mark.parametrize(
    "devices",
    [
        pytest.param(["bogus", "Ascend910-1"], id="a device name without a number"),
        pytest.param(["Ascend910-1", "Ascend910-1"], id="a device twice"),
    ],
)
async def test_an_allocation_no_rank_table_can_name_is_reported_once_not_raised(cluster, devices):
    _, api = cluster
    await placed(api, "forged", slots=[{"rank": 0, "node": "a3-0-00", "devices": devices}])
    tables = ranktables.RankTables(api)

    after = await sync_three_times(tables, api, "forged")

    written = condition(after)
    assert written is not None and written["status"] == "False" and written["reason"] == "AllocationInvalid"
    assert await api.get_or_none(f"{CONFIGMAPS}/rings-config-forged") is None
    assert [e["reason"] for e in await events(api, "forged")] == ["RankTableAllocationInvalid"]


async def test_a_write_the_api_refuses_is_reported_once_and_tried_again_later(cluster, monkeypatch):
    sandbox, api = cluster
    serve = sandbox.faults._inject
    refused = errors.ApiError(
        errors.status(403, "Forbidden", 'configmaps is forbidden: exceeded quota "cms"')
    )

    async def forbid(request: web.Request, handler) -> web.StreamResponse:
        if request.method == "POST" and request.path == CONFIGMAPS:
            return web.json_response(refused.status, status=refused.code)
        return await serve(request, handler)

    monkeypatch.setattr(sandbox.faults, "_inject", forbid)
    await placed(api, "train")
    tables = ranktables.RankTables(api)

    after = await sync_three_times(tables, api, "train")

    written = condition(after)
    assert (
        written is not None and written["reason"] == "WriteRefused" and "exceeded quota" in written["message"]
    )
    assert [e["reason"] for e in await events(api, "train")] == ["RankTableWriteRefused"]
    assert 0 < tables.retry_in("team-a", "train") <= ranktables.RETRY_REFUSED
