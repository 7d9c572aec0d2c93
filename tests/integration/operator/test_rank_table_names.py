"""Names around the rank table: partition names a label can carry, and the rank-table-name annotation.

Before, a partition named with 64-253 characters was placed but no pod label could name it and its rank
table's create failed every second; the annotation `superpod.dev/rank-table-name` took over any ConfigMap of
the namespace (owner replaced, `hccl.json` added, garbage-collected with the partition), and an invalid value
looped a 422 every second.
"""

from __future__ import annotations

import asyncio

import pytest
from superpod.cluster import client

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    books_balance,
    eventually,
    manifest,
    partition,
    phase_is,
    status_of,
)

CONFIGMAPS = "/api/v1/namespaces/team-a/configmaps"


async def test_a_partition_name_longer_than_a_label_value_is_refused_and_one_that_fits_is_served(
    cluster, running
):
    _, api = cluster
    await add_a3_nodes(api, 3)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))

    with pytest.raises(client.ApiError) as refused:
        await api.create(SPP, partition("p" * 64, 2))
    assert refused.value.status == 422
    assert "metadata.name must be at most 63 characters" in str(refused.value)

    longest = "p" * 63
    await api.create(SPP, partition(longest, 2))
    await eventually(lambda: phase_is(api, longest, "Allocated"))
    table = await eventually(lambda: api.get_or_none(f"{CONFIGMAPS}/rings-config-{longest}"))
    assert table["metadata"]["labels"]["superpod.dev/partition"] == longest
    await eventually(lambda: books_balance(api))


def _rank_table_condition(status: dict) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "RankTableWritten"), None)


async def _reported(api: client.KubeClient, name: str, reason: str) -> dict | None:
    condition = _rank_table_condition(await status_of(api, name))
    return condition if condition is not None and condition["reason"] == reason else None


async def _events(api: client.KubeClient, name: str) -> list[str]:
    items = (await api.get("/api/v1/namespaces/team-a/events"))["items"]
    return [e["reason"] for e in items if e["involvedObject"]["name"] == name and "RankTable" in e["reason"]]


async def test_the_rank_table_name_annotation_never_takes_over_a_configmap_and_is_reported_once(
    cluster, running
):
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    settings = {"metadata": {"name": "app-settings"}, "data": {"settings.yaml": "learning_rate: 0.1\n"}}
    await api.create(CONFIGMAPS, settings)
    taker = partition("taker", 4)
    taker["metadata"]["annotations"] = {"superpod.dev/rank-table-name": "app-settings"}
    invalid = partition("invalid", 4)
    invalid["metadata"]["annotations"] = {"superpod.dev/rank-table-name": "Not_A_ConfigMap_Name"}
    await api.create(SPP, taker)
    await api.create(SPP, invalid)

    # placed, then its rank table tried by the bindings loop: generous, the machine may be busy
    not_owned = await eventually(lambda: _reported(api, "taker", "ConfigMapNotOwned"), timeout=30)
    assert not_owned["status"] == "False" and "app-settings" in not_owned["message"]
    ignored = await eventually(lambda: _reported(api, "invalid", "AnnotationIgnored"), timeout=30)
    assert ignored["status"] == "True" and "Not_A_ConfigMap_Name" in ignored["message"]
    table = await eventually(lambda: api.get_or_none(f"{CONFIGMAPS}/rings-config-invalid"))
    assert (await status_of(api, "invalid"))["rankTable"] == "rings-config-invalid"
    assert table["metadata"]["ownerReferences"][0]["name"] == "invalid"

    untouched = await api.get(f"{CONFIGMAPS}/app-settings")
    assert untouched["data"] == settings["data"] and "ownerReferences" not in untouched["metadata"]
    await asyncio.sleep(1.5)  # before, a refused write came back every second
    assert await _events(api, "taker") == ["RankTableConfigMapNotOwned"]
    assert await _events(api, "invalid") == ["RankTableAnnotationIgnored"]
    assert running.log.read_text().count("ConfigMapNotOwned") == 1
    await eventually(lambda: books_balance(api))

    await api.delete(f"{SPP}/taker")

    async def gone() -> bool:
        return await api.get_or_none(f"{SPP}/taker") is None

    await eventually(gone)
    assert await api.get(f"{CONFIGMAPS}/app-settings") == untouched  # no owner: not collected with it
