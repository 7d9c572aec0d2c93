"""Edges of the real operator's webhook over HTTPS: reviews sent to other paths of its server, a pod object
without a namespace, and pods created with generateName or deleted and created again under the same name."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

import aiohttp
import pytest

from tests.integration.admission.conftest import (
    RESOURCE,
    WEBHOOKS,
    eventually,
    partitions_path,
    placed_partition,
    pod,
    pods_path,
)

JSON = dict[str, Any]
USER = {"username": "system:admin", "groups": ["system:masters"]}


def review(obj: JSON, namespace: str = "team-a") -> bytes:
    request = {
        "uid": "u-9",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": namespace,
        "name": obj["metadata"].get("name", ""),
        "userInfo": USER,
        "object": obj,
        "dryRun": False,
    }
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


async def post(api: Any, body: bytes, path: str = "/mutate-pods") -> tuple[int, JSON | None]:
    """POST `body` to `path` of the operator's webhook server, trusting only its configuration's caBundle."""
    configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
    client_config = configuration["webhooks"][0]["clientConfig"]
    context = ssl.create_default_context(cadata=base64.b64decode(client_config["caBundle"]).decode())
    url = client_config["url"].removesuffix("/mutate-pods") + path
    async with aiohttp.ClientSession() as session, session.post(url, data=body, ssl=context) as response:
        return response.status, (await response.json() if response.status == 200 else None)


def devices(created: JSON) -> set[tuple[str, str]]:
    """(node, device) pairs the pod was given."""
    required = created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    node = required["nodeSelectorTerms"][0]["matchFields"][-1]["values"][0]
    return {(node, device) for device in created["metadata"]["annotations"][RESOURCE].split(",")}


@pytest.mark.parametrize("path", ["/mutate-pods/", "/validate-pods", "/mutate-pods/x"])
async def test_a_labelled_pod_reviewed_at_another_path_is_never_allowed_unbound(cluster, operator, path):
    _, api = cluster
    status, answer = await post(api, review(pod("worker-0", "train")), path)
    allowed_unbound = status == 200 and answer is not None and answer["response"].get("allowed")
    assert not allowed_unbound, (status, answer)


async def test_a_pod_object_without_a_namespace_binds_in_the_reviews_namespace(cluster, operator):
    _, api = cluster
    await placed_partition(api, devicesPerPod=4)
    obj = pod("worker-0", "train")
    del obj["metadata"]["namespace"]
    status, answer = await post(api, review(obj))
    assert status == 200 and answer is not None
    assert answer["response"]["allowed"], answer["response"].get("status")
    allocation = (await api.get(f"{partitions_path()}/train"))["status"]["allocation"]
    assert [slot.get("pod") for slot in allocation].count("worker-0") == 1


async def test_a_generate_name_pod_is_recorded_under_the_name_it_is_created_with(cluster, operator):
    _, api = cluster
    await placed_partition(api, devicesPerPod=4)
    created = [await api.create(pods_path(), pod(None, "train")) for _ in range(3)]
    names = {item["metadata"]["name"] for item in created}
    assert len(names) == 3 and all(name.startswith("worker-") for name in names)
    allocation = (await api.get(f"{partitions_path()}/train"))["status"]["allocation"]
    assert {slot.get("pod") for slot in allocation if slot.get("pod")} == names
    assert len(set.union(*(devices(item) for item in created))) == 12


async def test_a_pod_deleted_and_created_again_under_its_name_shares_no_device(cluster, operator):
    _, api = cluster
    await placed_partition(api, devicesPerPod=8)  # two slots
    await api.create(pods_path(), pod("worker-0", "train"))
    await api.delete(f"{pods_path()}/worker-0")

    async def released() -> bool:
        allocation = (await api.get(f"{partitions_path()}/train"))["status"]["allocation"]
        return not any(slot.get("pod") for slot in allocation)

    await eventually(released, timeout=15)
    other = await api.create(pods_path(), pod("worker-9", "train"))
    again = await api.create(pods_path(), pod("worker-0", "train"))
    assert devices(other).isdisjoint(devices(again))
    allocation = (await api.get(f"{partitions_path()}/train"))["status"]["allocation"]
    assert sorted(slot.get("pod") for slot in allocation) == ["worker-0", "worker-9"]
