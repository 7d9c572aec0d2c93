"""Ranks follow the placement: contiguous per slot, servers by first rank, inconsistent slots refused."""

from __future__ import annotations

import json
import random

import pytest
from superpod.ranktable import render, servers, slots, tables, versions

from tests.unit.ranktable import builders


def _device_ranks(table: tables.ServerRankTable) -> list[tuple[str, str, int]]:
    """(server, device id, rank) in table order."""
    return [
        (server.server_id, device.device_id, device.rank_id)
        for server in table.servers
        for device in server.devices
    ]


def test_a_device_rank_is_the_slot_rank_plus_its_index_in_the_slot():
    table = servers.build_v1_0(
        [
            builders.server_slot(0, "10.0.0.1", ["a0", "a1"]),
            builders.server_slot(2, "10.0.0.2", ["b4", "b5", "b6"], first_device=4),
        ]
    )

    assert _device_ranks(table) == [
        ("10.0.0.1", "0", 0),
        ("10.0.0.1", "1", 1),
        ("10.0.0.2", "4", 2),
        ("10.0.0.2", "5", 3),
        ("10.0.0.2", "6", 4),
    ]


def test_devices_take_the_slot_order_not_the_order_the_device_plugin_lists_them():
    value = builders.annotation(
        "10.0.0.1", [builders.device(3, "ip3"), builders.device(2, "ip2"), builders.device(1, "ip1")]
    )
    slot = builders.slot(0, [2, 3, 1], value)

    table = servers.build_v1_0([slot])

    assert [(device.device_id, device.device_ip, device.rank_id) for device in table.servers[0].devices] == [
        ("2", "ip2", 0),
        ("3", "ip3", 1),
        ("1", "ip1", 2),
    ]


def test_servers_are_listed_by_first_rank_whatever_the_order_of_the_slots():
    given = [builders.server_slot(rank, f"10.0.0.{rank}", ["x", "y"]) for rank in (6, 0, 4, 2)]

    table = servers.build_v1_0(given)

    assert [server.server_id for server in table.servers] == ["10.0.0.0", "10.0.0.2", "10.0.0.4", "10.0.0.6"]


def test_two_pods_on_one_server_are_two_server_entries_as_in_mindcluster():
    first = builders.annotation("10.0.0.1", [builders.device(i, f"ip{i}") for i in range(4)], pod_name="p0")
    second = builders.annotation(
        "10.0.0.1", [builders.device(i, f"ip{i}") for i in range(4, 8)], pod_name="p1"
    )

    table = servers.build_v1_0(
        [builders.slot(0, range(4), first, node="n"), builders.slot(4, range(4, 8), second, node="n")]
    )

    assert [server.server_id for server in table.servers] == ["10.0.0.1", "10.0.0.1"]
    assert render.document(table)["server_count"] == "2"


@pytest.mark.parametrize(
    ("block_size", "super_pods"),
    [
        pytest.param(
            None, [("0", ["s0", "s1", "s2", "s3"])], id="without blocks every server is in super pod 0"
        ),
        pytest.param(
            8, [("0", ["s0", "s1"]), ("1", ["s2", "s3"])], id="blocks of 8 make two logical super pods"
        ),
        pytest.param(4, [(str(i), [f"s{i}"]) for i in range(4)], id="blocks of one server each"),
    ],
)
def test_super_pods_of_a_v1_2_table_are_the_partition_blocks(block_size, super_pods):
    given = [
        builders.slot(
            4 * i,
            range(4),
            builders.annotation(f"s{i}", [builders.device(d, f"ip{d}", str(100 + d)) for d in range(4)]),
        )
        for i in range(4)
    ]

    document = render.document(servers.build_v1_2(given, block_size=block_size))

    assert [
        (entry["super_pod_id"], [server["server_id"] for server in entry["server_list"]])
        for entry in document["super_pod_list"]
    ] == super_pods


def test_the_same_slots_in_any_order_render_the_same_text():
    given = [
        builders.slot(
            2 * i,
            [2 * i % 16, 2 * i % 16 + 1],
            builders.annotation(
                f"10.0.{i // 8}.1",
                [
                    builders.device(d, f"29.{i}.0.{d}", str(37748736 + d))
                    for d in (2 * i % 16, 2 * i % 16 + 1)
                ],
                pod_name=f"job-{i}",
            ),
            node=f"node-{i // 8}",
            pod_ip=f"192.168.0.{i}",
        )
        for i in range(16)
    ]
    shuffled = list(given)
    random.Random(7).shuffle(shuffled)

    for version in tables.Version:
        texts = {
            render.render(versions.build(version, order, block_size=16)) for order in (given, shuffled, given)
        }
        assert len(texts) == 1, version
        assert json.loads(texts.pop())["status"] == "completed"


def _allocated(
    rank: int, device_ids: list[int], host: str = "10.0.0.1", node: str | None = None
) -> slots.RankSlot:
    value = builders.annotation(host, [builders.device(i, f"ip{i}", str(i)) for i in device_ids])
    return builders.slot(rank, device_ids, value, node=node)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param([_allocated(1, [0, 1])], "no slot holds ranks 0..0", id="ranks that do not start at 0"),
        pytest.param(
            [_allocated(0, [0, 1]), _allocated(3, [2, 3], node="other")],
            "no slot holds ranks 2..2",
            id="a gap between slots",
        ),
        pytest.param(
            [_allocated(0, [0, 1]), _allocated(1, [2, 3], node="other")],
            "overlaps ranks up to 1",
            id="overlapping slots",
        ),
        pytest.param([builders.slot(0, [])], "has no devices", id="a slot without devices"),
        pytest.param(
            [_allocated(0, [0, 1], node="n"), _allocated(2, [1, 2], node="n")],
            "device Ascend910-1 on node n is in more than one slot",
            id="one device in two slots",
        ),
        pytest.param(
            [builders.slot(0, [0, 1], builders.annotation("h", [builders.device(0), builders.device(5)]))],
            "was allocated devices ['0', '5'], the slot pinned ['Ascend910-0', 'Ascend910-1']",
            id="the device plugin allocated other devices than the slot pinned",
        ),
        pytest.param(
            [builders.slot(0, [0, 1], builders.annotation("h", [builders.device(0)]))],
            "was allocated devices ['0']",
            id="the device plugin allocated fewer devices",
        ),
        pytest.param(
            [slots.RankSlot(rank=0, node_name="n", device_names=("npu",))],
            "device name 'npu' does not end in -<id>",
            id="a device name without an id",
        ),
    ],
)
@pytest.mark.parametrize("version", list(tables.Version), ids=lambda v: f"v{v.value}")
def test_inconsistent_slots_are_refused_with_the_reason(version, given, message):
    with pytest.raises(slots.SlotError) as raised:
        versions.build(version, given)

    assert message in str(raised.value)


def test_a_v1_2_table_needs_every_super_device_id():
    value = builders.annotation("10.0.0.1", [builders.device(0, "ip0", "1"), builders.device(1, "ip1")])

    with pytest.raises(slots.SlotError, match="device 1 has no super_device_id"):
        servers.build_v1_2([builders.slot(0, [0, 1], value)])


def test_a_block_size_must_be_positive():
    with pytest.raises(slots.SlotError, match="block size must be positive"):
        servers.build_v1_2([_allocated(0, [0])], block_size=0)
