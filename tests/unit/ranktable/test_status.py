"""A table is initializing, listing the allocated slots only, until every slot's pod is allocated."""

from __future__ import annotations

import json

import pytest
from superpod.ranktable import render, slots, tables, versions

from tests.unit.ranktable import builders

VERSIONS = list(tables.Version)


def _a3_annotation(host_ip: str, first_device: int, count: int, *, pod_name: str) -> str:
    return builders.annotation(
        host_ip,
        [
            builders.device(i, f"29.0.{first_device}.{i}", str(37748736 + i))
            for i in range(first_device, first_device + count)
        ],
        pod_name=pod_name,
    )


def _partition(allocated: set[int]) -> list[slots.RankSlot]:
    """Four pods of 4 devices on two servers; the pods whose index is in `allocated` carry the annotation."""
    out = []
    for index in range(4):
        host_ip = f"10.0.0.{index // 2 + 1}"
        first_device = 4 * (index % 2)
        value = (
            _a3_annotation(host_ip, first_device, 4, pod_name=f"job-{index}") if index in allocated else None
        )
        out.append(
            builders.slot(4 * index, range(first_device, first_device + 4), value, node=f"node-{index // 2}")
        )
    return out


def _listed_ranks(table: tables.RankTable) -> list[int]:
    document = render.document(table)
    if "rank_list" in document:
        return [rank["rank_id"] for rank in document["rank_list"]]
    return [int(device["rank_id"]) for server in document["server_list"] for device in server["device"]]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v.value}")
@pytest.mark.parametrize(
    ("allocated", "status", "listed"),
    [
        pytest.param(set(), tables.Status.INITIALIZING, [], id="no pod allocated: initializing and empty"),
        pytest.param({1, 2}, tables.Status.INITIALIZING, list(range(4, 12)), id="some allocated: only those"),
        pytest.param(
            {0, 1, 2}, tables.Status.INITIALIZING, list(range(12)), id="all but the last: initializing"
        ),
        pytest.param(
            {0, 1, 2, 3}, tables.Status.COMPLETED, list(range(16)), id="every pod allocated: completed"
        ),
    ],
)
def test_status_follows_allocation_and_lists_what_is_known(version, allocated, status, listed):
    table = versions.build(version, _partition(allocated))

    assert table.status is status
    assert json.loads(render.render(table))["status"] == status.value
    assert _listed_ranks(table) == listed


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v.value}")
def test_counts_of_an_initializing_table_describe_what_it_lists(version):
    document = json.loads(render.render(versions.build(version, _partition({3}))))

    if version is tables.Version.V2_0:
        assert document["rank_count"] == len(document["rank_list"]) == 4
    else:
        assert document["server_count"] == str(len(document["server_list"])) == "1"


def test_an_initializing_table_becomes_completed_by_adding_the_last_servers_only():
    partial = render.document(versions.build(tables.Version.V1_2, _partition({0, 1, 2})))
    complete = render.document(versions.build(tables.Version.V1_2, _partition({0, 1, 2, 3})))

    assert complete["server_list"][:3] == partial["server_list"]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v.value}")
def test_a_partition_without_slots_is_initializing(version):
    assert versions.build(version, []).status is tables.Status.INITIALIZING


def test_a_slot_whose_pod_lost_its_annotation_turns_the_table_back_to_initializing():
    complete = _partition({0, 1, 2, 3})
    restarted = [*complete[:2], builders.slot(8, range(4), None, node="node-1"), complete[3]]

    assert versions.build(tables.Version.V1_0, complete).status is tables.Status.COMPLETED
    assert versions.build(tables.Version.V1_0, restarted).status is tables.Status.INITIALIZING
