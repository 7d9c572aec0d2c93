"""For the inputs behind MindCluster's reference samples, each builder writes the reference table.

Two comparisons per version: with the reference sample (tests/fixtures/reference/ranktable-v*.json, written from
MindCluster's documentation), key names, key order and value types included; and byte for byte with the exact
text the operator stores (golden/hccl-v*.json). After an intended change of the text, regenerate the latter with
`.venv/bin/python -m tests.unit.ranktable.test_golden` and review the diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from superpod.ranktable import ranks, render, servers, slots, tables

from tests import conftest
from tests.unit.ranktable import builders

GOLDEN = Path(__file__).resolve().parent / "golden"


def _v1_0_slots() -> list[slots.RankSlot]:
    """Two Atlas 800T A2 servers, two devices each."""
    return [
        builders.slot(
            0,
            [0, 1],
            builders.annotation(
                "10.0.0.11",
                [builders.device(0, "29.1.0.1"), builders.device(1, "29.1.0.2")],
                pod_name="train-0",
            ),
            pod_ip="192.168.1.10",
            hardware_type="800T-A2-64G",
        ),
        builders.slot(
            2,
            [0, 1],
            builders.annotation(
                "10.0.0.12",
                [builders.device(0, "29.2.0.1"), builders.device(1, "29.2.0.2")],
                pod_name="train-1",
            ),
            pod_ip="192.168.1.11",
            hardware_type="800T-A2-64G",
        ),
    ]


def _v1_2_slots() -> list[slots.RankSlot]:
    """Two A3 servers, two dies each; the first pod's annotation is the reference annotation sample."""
    second = builders.annotation(
        "10.0.0.18",
        [builders.device(0, "29.8.0.1", "37748752"), builders.device(1, "29.8.0.2", "37748753")],
        pod_name="train-1",
    )
    return [
        builders.slot(
            0,
            [0, 1],
            (conftest.REFERENCE / "ascend-910-configuration.json").read_text(),
            pod_ip="192.168.2.10",
            hardware_type="800I-A3-64G",
        ),
        builders.slot(2, [0, 1], second, pod_ip="192.168.2.11", hardware_type="800I-A3-64G"),
    ]


def _level_0(eid: str) -> dict:
    """The level-0 (UB inside the SuperPoD) description an Atlas 950 device plugin writes for one device."""
    element = {
        "net_layer": 0,
        "net_instance_id": "superpod-0",
        "net_type": "TOPO_FILE_DESC",
        "net_attr": "",
        "rank_addr_list": [{"addr_type": "EID", "addr": eid, "ports": ["0/1"], "plane_id": "1"}],
    }
    return {"level": 0, "info": {"UB": element}}


def _v2_0_slots() -> list[slots.RankSlot]:
    """One Atlas 950 pod with two devices."""
    devices = [
        builders.device(0, levelList=[_level_0("eid-0000")]),
        builders.device(1, levelList=[_level_0("eid-0001")]),
    ]
    value = builders.annotation("10.0.1.1", devices, rack_id=0, server_index="0", server_ip="10.0.1.1")
    return [builders.slot(0, [0, 1], value, pod_ip="192.168.3.10")]


CASES: dict[str, Callable[[], tables.RankTable]] = {
    "1.0": lambda: servers.build_v1_0(_v1_0_slots()),
    "1.2": lambda: servers.build_v1_2(_v1_2_slots()),
    "2.0": lambda: ranks.build_v2_0(_v2_0_slots()),
}


def _pairs(text: str) -> object:
    """JSON with every object as a list of (key, value) pairs, so that key order and types compare too."""
    return json.loads(text, object_pairs_hook=list)


@pytest.mark.parametrize("version", CASES)
def test_the_table_equals_the_reference_sample_keys_order_and_types_included(version):
    reference = (conftest.REFERENCE / f"ranktable-v{version}.json").read_text()

    assert _pairs(render.render(CASES[version]())) == _pairs(reference)


@pytest.mark.parametrize("version", CASES)
def test_the_stored_text_is_byte_for_byte_the_golden_file(version):
    golden = (GOLDEN / f"hccl-v{version}.json").read_text()

    assert render.render(CASES[version]()) == golden


@pytest.mark.parametrize("version", CASES)
def test_the_reference_table_is_completed_and_of_its_version(version):
    table = CASES[version]()

    assert table.status is tables.Status.COMPLETED
    assert table.version.value == version


if __name__ == "__main__":
    for name, case in CASES.items():
        (GOLDEN / f"hccl-v{name}.json").write_text(render.render(case()))
