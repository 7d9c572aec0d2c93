"""With the simulated fleet binding pods and allocating devices, each partition's rank table goes from
initializing to completed, in its profile's version and in the shape of MindCluster's reference samples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import conftest
from tests.integration.admission.conftest import (
    SPOD,
    a3_superpod,
    allocated,
    eventually,
    manifest,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
)

OPTIONAL = {"container_ip", "hardware_type"}  # left out while unknown, as MindCluster's omitempty does


def shape(value: Any) -> Any:
    """Key names in order and value types; the first element stands for a list."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def fits(ours: Any, reference: Any) -> bool:
    """Whether `ours` has the reference's shape, optional keys aside."""
    if isinstance(reference, list) and reference and isinstance(reference[0], tuple):
        expected = [(key, item) for key, item in reference if key not in OPTIONAL]
        mine = [(key, item) for key, item in ours if key not in OPTIONAL]
        return [key for key, _ in mine] == [key for key, _ in expected] and all(
            fits(a, b) for (_, a), (_, b) in zip(mine, expected, strict=True)
        )
    if isinstance(reference, list):
        return isinstance(ours, list) and len(ours) == len(reference) and all(map(fits, ours, reference))
    return bool(ours == reference)


@pytest.mark.parametrize(
    ("profile", "superpod_id", "example", "resource", "version"),
    [
        pytest.param(
            "ascend-910b", 0, "superpod-ascend-910b.yaml", "huawei.com/Ascend910", "1.0", id="910B: v1.0"
        ),
        pytest.param(
            "cloudmatrix-384",
            0,
            "superpod-cloudmatrix-384.yaml",
            "huawei.com/Ascend910",
            "1.2",
            id="A3: v1.2",
        ),
        pytest.param("atlas-950", 1, "superpod-atlas-950.yaml", "huawei.com/npu", "2.0", id="950: v2.0"),
    ],
)
async def test_the_rank_table_completes_when_the_device_plugin_has_allocated_every_pod(
    cluster, operator, profile, superpod_id, example, resource, version
):
    sandbox, api = cluster
    superpod = manifest(example)
    async with simulated(sandbox, profile=profile, superpod_id=superpod_id):
        await api.create(SPOD, superpod)
        await api.create(
            partitions_path(), partition("job", 16, superpod["metadata"]["name"], devicesPerPod=8)
        )
        placed = await allocated(api, "job")
        table_path = "/api/v1/namespaces/team-a/configmaps/rings-config-job"

        async def table(status: str) -> dict | None:
            configmap = await api.get_or_none(table_path)
            document = json.loads(configmap["data"]["hccl.json"]) if configmap else {}
            return configmap if document.get("status") == status else None

        first = await eventually(lambda: table("initializing"))
        assert first["metadata"]["ownerReferences"][0]["uid"] == placed["metadata"]["uid"]
        assert json.loads(first["data"]["hccl.json"])["version"] == version

        for index in range(2):
            await api.create(pods_path(), pod(f"job-{index}", "job", resource=resource))
        completed = await eventually(lambda: table("completed"), timeout=20)

        document = json.loads(completed["data"]["hccl.json"])
        reference = json.loads((conftest.REFERENCE / f"ranktable-v{version}.json").read_text())
        assert fits(shape(document), shape(reference)), (shape(document), shape(reference))
        status = (await api.get(f"{partitions_path()}/job"))["status"]
        assert status["rankTable"] == "rings-config-job"
        slots = status["allocation"]
        if version == "2.0":
            assert [rank["rank_id"] for rank in document["rank_list"]] == list(range(16))
        else:
            servers = document["server_list"]
            assert len(servers) == 2  # one entry per pod
            assert [[int(d["device_id"]) for d in s["device"]] for s in servers] == [
                [int(name.rpartition("-")[2]) for name in slot["devices"]] for slot in slots
            ]
            assert [d["rank_id"] for s in servers for d in s["device"]] == [str(r) for r in range(16)]

        await api.delete(f"{partitions_path()}/job")  # its pods run: the table they mount stays
        await eventually(lambda: _terminating(api), timeout=30)
        assert await api.get_or_none(table_path) is not None
        for index in range(2):
            await api.delete(f"{pods_path()}/job-{index}")
        await eventually(lambda: _gone(api, table_path), timeout=30)


async def _terminating(api) -> bool:
    obj = await api.get_or_none(f"{partitions_path()}/job")
    return ((obj or {}).get("status") or {}).get("phase") == "Terminating"


async def _gone(api, path: str) -> bool:
    return await api.get_or_none(path) is None


async def test_a_configmap_the_user_made_beforehand_and_labelled_for_the_partition_is_taken_over(
    cluster, operator
):
    """MindCluster's users create rings-config-<job> themselves with {"status":"initializing"}; labelled
    `superpod.dev/partition: <job>`, it carries the operator's mark (one without it is left alone)."""
    _, api = cluster
    await a3_superpod(api)
    user_made = {
        "metadata": {"name": "rings-config-job", "labels": {"superpod.dev/partition": "job"}},
        "data": {"hccl.json": '{"status":"initializing"}'},
    }
    await api.create("/api/v1/namespaces/team-a/configmaps", user_made)
    await api.create(partitions_path(), partition("job", 16))
    placed = await allocated(api, "job")

    async def taken_over() -> dict | None:
        configmap = await api.get("/api/v1/namespaces/team-a/configmaps/rings-config-job")
        return configmap if configmap["metadata"].get("ownerReferences") else None

    configmap = await eventually(taken_over)
    assert configmap["metadata"]["ownerReferences"][0]["uid"] == placed["metadata"]["uid"]
    assert json.loads(configmap["data"]["hccl.json"])["version"] == "1.2"
