"""A v2.0 rank's level_list is assembled from the device plugin's levelList as the ascend-operator does."""

from __future__ import annotations

import pytest
from superpod.ranktable import ranks, render

from tests.unit.ranktable import builders


def _element(level: int, instance: str, addr: str) -> dict:
    return {
        "net_layer": level,
        "net_instance_id": instance,
        "net_type": "TOPO_FILE_DESC" if level < 2 else "CLOS",
        "net_attr": "",
        "rank_addr_list": [{"addr_type": "EID", "addr": addr, "ports": ["0/1"], "plane_id": "1"}],
    }


def _levels(device_id: int, **net_types_by_level: str) -> list[dict]:
    """levelList with, per level ("l0".."l3"), the comma-separated net types the device reports."""
    out = []
    for key, net_types in net_types_by_level.items():
        level = int(key[1:])
        info = {
            net_type: _element(level, f"{net_type.lower()}-{level}", f"d{device_id}-l{level}-{net_type}")
            for net_type in net_types.split(",")
        }
        out.append({"level": level, "info": info})
    return out


def _table(*device_levels: list[dict]) -> dict:
    devices = [builders.device(i, levelList=levels) for i, levels in enumerate(device_levels)]
    slot = builders.slot(0, range(len(devices)), builders.annotation("10.0.1.1", devices))
    return render.document(ranks.build_v2_0([slot]))


def _summary(rank: dict) -> list[tuple[int, str]]:
    return [(level["net_layer"], level["net_instance_id"]) for level in rank.get("level_list", [])]


def test_levels_0_and_1_are_copied_from_the_device():
    document = _table(_levels(0, l0="UB", l1="UB"))

    assert _summary(document["rank_list"][0]) == [(0, "ub-0"), (1, "ub-1")]
    assert document["rank_list"][0]["level_list"][0]["rank_addr_list"][0]["addr"] == "d0-l0-UB"


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        pytest.param(
            {"l2": "UBG", "l3": "ROCE"}, [(0, "ub-0"), (3, "roce-3")], id="RoCE wins over UBG: level 3 only"
        ),
        pytest.param({"l2": "UBOE,UBG"}, [(0, "ub-0"), (2, "uboe-2")], id="UBoE wins over UBG: level 2"),
        pytest.param({"l2": "UBG"}, [(0, "ub-0"), (2, "ubg-2")], id="UBG alone: level 2"),
        pytest.param({}, [(0, "ub-0")], id="no scale-out type reported: no level 2 or 3"),
    ],
)
def test_one_scale_out_port_type_is_chosen_by_priority(reported, expected):
    document = _table(_levels(0, l0="UB", **reported))

    assert _summary(document["rank_list"][0]) == expected


def test_a_device_lacking_the_chosen_type_gets_an_empty_clos_element():
    document = _table(_levels(0, l0="UB", l3="ROCE"), _levels(1, l0="UB"))

    assert document["rank_list"][1]["level_list"][1] == {
        "net_layer": 3,
        "net_instance_id": "CLUSTER1",
        "net_type": "CLOS",
        "net_attr": "",
        "rank_addr_list": [],
    }


def test_a_device_without_level_list_gets_a_rank_without_level_list():
    document = _table([], [])

    assert document["rank_list"] == [
        {"rank_id": 0, "local_id": 0, "device_id": 0},
        {"rank_id": 1, "local_id": 1, "device_id": 1},
    ]


def test_local_id_and_device_id_are_the_physical_device_id_and_rank_follows_the_slot():
    devices = [builders.device(6), builders.device(7)]
    slot = builders.slot(10, [7, 6], builders.annotation("10.0.1.1", devices))
    first = builders.slot(
        0, range(10), builders.annotation("10.0.1.2", [builders.device(i) for i in range(10)])
    )

    document = render.document(ranks.build_v2_0([slot, first]))

    assert document["rank_list"][10:] == [
        {"rank_id": 10, "local_id": 7, "device_id": 7},
        {"rank_id": 11, "local_id": 6, "device_id": 6},
    ]
    assert document["rank_count"] == 12
