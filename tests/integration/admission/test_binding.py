"""Labelled pods are bound at admission to their slot's node and devices; other pods never reach the webhook."""

from __future__ import annotations

import asyncio

import pytest
from superpod.cluster import client
from superpod_sandbox.apiserver.admission import dispatcher

from tests.integration.admission.conftest import (
    WEBHOOKS,
    eventually,
    partitions_path,
    placed_partition,
    pod,
    pods_path,
)


async def test_a_labelled_pod_is_bound_to_its_slot(cluster, operator):
    _, api = cluster
    placed = await placed_partition(api, "train", 32, devicesPerPod=16)
    slots = placed["status"]["allocation"]

    created = await api.create(pods_path(), pod("worker-0", "train"))

    first = slots[0]
    assert created["metadata"]["annotations"]["huawei.com/Ascend910"] == ",".join(first["devices"])
    terms = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [first["node"]]}]}
    ]
    container = created["spec"]["containers"][0]
    assert container["resources"]["limits"]["huawei.com/Ascend910"] == "16"
    assert container["resources"]["requests"]["huawei.com/Ascend910"] == "16"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        "RANK": str(first["rank"]),
        "WORLD_SIZE": "32",
        "RANK_TABLE_FILE": "/user/serverid/devindex/config/hccl.json",
    }
    assert {"name": "superpod-rank-table", "configMap": {"name": "rings-config-train"}} in created["spec"][
        "volumes"
    ]
    assert container["volumeMounts"][-1]["mountPath"] == "/user/serverid/devindex/config"
    bound = (await api.get(f"{partitions_path()}/train"))["status"]
    assert bound["allocation"][0]["pod"] == "worker-0"
    assert bound["phase"] == "Allocated"


async def test_the_partition_is_bound_when_every_slot_has_a_pod_and_allocated_again_when_one_goes(
    cluster, operator
):
    _, api = cluster
    await placed_partition(api, "train", 32, devicesPerPod=16)

    first = await api.create(pods_path(), pod(None, "train", devices=16))
    await api.create(pods_path(), pod("worker-1", "train", labels={"apps.kubernetes.io/pod-index": "1"}))

    status = (await api.get(f"{partitions_path()}/train"))["status"]
    assert [slot["pod"] for slot in status["allocation"]] == [first["metadata"]["name"], "worker-1"]
    assert first["metadata"]["name"].startswith("worker-")
    assert status["phase"] == "Bound"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Bound"] == "True"

    await api.delete(f"{pods_path()}/worker-1")

    async def released() -> dict | None:
        current = (await api.get(f"{partitions_path()}/train"))["status"]
        return current if current["phase"] == "Allocated" else None

    status = await eventually(released)
    assert [slot.get("pod") for slot in status["allocation"]] == [first["metadata"]["name"], None]


async def test_a_finished_pod_frees_its_slot(cluster, operator):
    _, api = cluster
    await placed_partition(api)
    await api.create(pods_path(), pod("once", "train"))
    await api.patch(f"{pods_path()}/once/status", {"status": {"phase": "Succeeded"}})

    async def free() -> bool:
        status = (await api.get(f"{partitions_path()}/train"))["status"]
        return not status["allocation"][0].get("pod")

    await eventually(free)
    again = await api.create(pods_path(), pod("twice", "train"))
    assert again["spec"]["containers"][0]["env"][0] == {"name": "RANK", "value": "0"}


async def test_unlabelled_pods_never_reach_the_webhook(cluster, operator, monkeypatch):
    _, api = cluster
    calls: list[str] = []
    real_call = dispatcher._call

    async def counted_call(hook, request, *args, **kwargs):  # the sandbox's side: each call to a webhook
        calls.append(request.name)
        return await real_call(hook, request, *args, **kwargs)

    monkeypatch.setattr(dispatcher, "_call", counted_call)
    await api.create(pods_path(), pod("unlabelled", None, devices=2))
    with pytest.raises(client.ApiError, match="no SuperPodPartition"):
        await api.create(pods_path(), pod("labelled-early", "train"))
    assert calls == ["labelled-early"]

    configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
    (hook,) = configuration["webhooks"]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "superpod.dev/partition", "operator": "Exists"}]
    }
    assert hook["failurePolicy"] == "Fail"
    await operator.stop()  # no webhook server now: a pod sent to it would be refused (failurePolicy Fail)

    plain = await api.create(pods_path(), pod("plain", None, devices=2))

    assert "annotations" not in plain["metadata"]
    assert "affinity" not in plain["spec"]
    try:
        await api.create(pods_path(), pod("labelled", "train"))
    except client.ApiError as error:
        assert error.status == 500 and "failed calling webhook" in str(error)
    else:
        raise AssertionError("a labelled pod was admitted without the webhook")


async def test_a_pod_recreated_under_its_name_ends_up_recorded_in_its_slot(cluster, operator):
    """As a StatefulSet replaces a pod: deleted, then created again at once under the same name."""
    _, api = cluster
    await placed_partition(api, "train", 32, devicesPerPod=16)
    labels = {"apps.kubernetes.io/pod-index": "1"}
    await api.create(pods_path(), pod("web-1", "train", labels=labels))
    await api.delete(f"{pods_path()}/web-1")
    again = await api.create(pods_path(), pod("web-1", "train", labels=labels))
    assert again["spec"]["containers"][0]["env"][0] == {"name": "RANK", "value": "16"}

    async def recorded_for_a_while() -> bool:
        for _ in range(10):  # stays recorded: a late release of the old pod does not stick
            status = (await api.get(f"{partitions_path()}/train"))["status"]
            if [slot.get("pod") for slot in status["allocation"]] != [None, "web-1"]:
                return False
            await asyncio.sleep(0.1)
        return True

    await eventually(recorded_for_a_while)
