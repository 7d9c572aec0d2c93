"""`superpod defrag plan -f ...`: the moves that reopen the largest block per tier, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from superpod import cli

# eight nodes of eight devices in pairs, racks of four nodes: the map fits a screen
SUPERPOD = {
    "apiVersion": "superpod.dev/v1alpha1",
    "kind": "SuperPod",
    "metadata": {"name": "lab"},
    "spec": {
        "profile": "custom",
        "reserveNodes": 0,
        "tiers": [
            {"name": "pair", "domainSize": 2, "bandwidthGBps": 400},
            {"name": "node", "domainSize": 8, "bandwidthGBps": 200},
            {"name": "rack", "domainSize": 32, "bandwidthGBps": 100},
            {"name": "pod", "domainSize": 64, "bandwidthGBps": 50},
        ],
    },
}
# placed in this order they leave node-0-0 with job-0 (one device) and job-3 (a pair): no node is free
JOBS = [{"npus": 1}, {"npus": 24}, {"npus": 8}, {"npus": 2}, {"npus": 12}, {"npus": 8, "devicesPerPod": 4}]


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    documents = [SUPERPOD] + [
        {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPodPartition",
            "metadata": {"name": f"job-{i}", "namespace": "team"},
            "spec": {"superPod": "lab", **spec},
        }
        for i, spec in enumerate(JOBS)
    ]
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_the_moves_that_reopen_a_node_come_with_the_map_before_and_after(lab, capsys):
    assert cli.main(["defrag", "plan", "-f", str(lab)]) == 0
    out = capsys.readouterr().out
    before, _, rest = out.partition(
        "node: a whole node (8 devices): reopen node-0-0 by moving 2 partition(s)"
    )
    assert "  rack-0  A.DD.... BBBBBBBB" in before
    assert "pair: a whole pair (2 devices) is free already" in before
    assert "3 devices, 0 running pods disturbed (the fewest possible)" in rest
    assert "1. team/job-0 rank 0: node-0-0/Ascend910-0 -> node-0-5/Ascend910-6" in rest
    assert "  rack-0  ........ BBBBBBBB" in rest
    assert "rack: a whole rack (32 devices): fewer devices are free than one holds" in rest


def test_the_json_says_per_tier_what_reopening_takes(lab, capsys):
    assert cli.main(["defrag", "plan", "-f", str(lab), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["superPod"] == "lab" and report["policy"] == "Unbound"
    pair, node, rack = report["tiers"]
    assert (pair["status"], node["status"], rack["status"]) == ("Free", "Moves", "NoMoves")
    assert rack["reason"] == "InsufficientCapacity"
    assert node["domain"] == "node-0-0" and node["devicesMoved"] == 3 and node["exact"] is True
    assert [move["partition"] for move in node["moves"]] == ["team/job-0", "team/job-3"]
    assert node["moves"][1]["slots"] == [
        {"rank": 0, "from": "node-0-0/Ascend910-2,Ascend910-3", "to": "node-0-6/Ascend910-6,Ascend910-7"}
    ]


def test_policy_never_moves_nothing(lab, capsys):
    assert cli.main(["defrag", "plan", "-f", str(lab), "--policy", "Never", "--json"]) == 0
    node = json.loads(capsys.readouterr().out)["tiers"][1]
    assert node["status"] == "NoMoves" and "no partition may move" in node["message"]


def test_png_writes_the_map_before_and_one_after_each_plan(lab, tmp_path, capsys):
    image = tmp_path / "map.png"
    assert cli.main(["defrag", "plan", "-f", str(lab), "--png", str(image)]) == 0
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "map-node.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "map-rack.png").exists()
    assert f"wrote {image}, {tmp_path / 'map-node.png'}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case", "argv", "says"),
    [
        ("files and a live SuperPod at once", ["-f", "{lab}", "--kubeconfig", "{missing}"], "not both"),
        ("a kubeconfig that does not exist", ["--kubeconfig", "{missing}"], "cannot read the kubeconfig"),
        ("a file without a SuperPod", ["-f", "{empty}"], "expected exactly one SuperPod"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, argv, says, lab, tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    names = {"lab": str(lab), "missing": str(tmp_path / "nowhere"), "empty": str(empty)}
    assert cli.main(["defrag", "plan", *(arg.format(**names) for arg in argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("superpod defrag plan: ") and says in err and err.count("\n") == 1
