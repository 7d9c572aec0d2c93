"""`superpod map`: the live map rebuilt from the partitions' statuses, reserved devices of a move included."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from superpod import placement
from superpod.commands import defrag as defrag_command
from superpod.commands import map as map_command
from superpod.commands import plan as plan_command
from superpod.placement import mobility

from tests.builders import objects

JSON = dict[str, Any]


def superpod() -> JSON:
    return {
        "apiVersion": "superpod.huawei.com/v1alpha1",
        "kind": "SuperPod",
        "metadata": {"name": "sp"},
        "spec": {"profile": "cloudmatrix-384", "reserveNodes": 0},
    }


def fleet(count: int = 2) -> tuple[dict[str, JSON], dict[str, JSON]]:
    nodes, configmaps = {}, {}
    for index in range(count):
        name = f"n{index}"
        nodes[name] = objects.node(name).superpod(0, rack=0, server=index).devices(16).ready().obj()
        configmaps[name] = objects.deviceinfo_configmap(name, server_index=index)
    return nodes, configmaps


def partition(name: str, created: str, status: JSON, npus: int = 4) -> JSON:
    return {
        "apiVersion": "superpod.huawei.com/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team", "creationTimestamp": created},
        "spec": {"superPod": "sp", "npus": npus},
        "status": status,
    }


def slot(rank: int, node: str, devices: range, pod: str | None = None) -> JSON:
    found: JSON = {"rank": rank, "node": node, "devices": [f"Ascend910-{d}" for d in devices]}
    if pod:
        found["pod"] = pod
    return found


def moving_partition(reserved: range) -> JSON:
    """team/a, its pod running on n0 devices 0-3, moving to n1 `reserved` to make room for team/b."""
    move = {
        "allocation": [slot(0, "n1", reserved)],
        "forPartition": "team/b",
        "started": "2026-01-01T00:01:00Z",
    }
    allocation = [slot(0, "n0", range(0, 4), pod="a-0")]
    return partition(
        "a", "2026-01-01T00:00:00Z", {"phase": "Allocated", "allocation": allocation, "move": move}
    )


def holder_of(devices: range) -> JSON:
    """team/c, without pods, on n1 `devices`."""
    return partition(
        "c", "2026-01-01T00:00:01Z", {"phase": "Allocated", "allocation": [slot(0, "n1", devices)]}
    )


def moving_fleet() -> plan_command.Report:
    """team/a runs on n0 devices 0-3 and moves to n1 devices 0-3 (reserved) to make room for team/b."""
    nodes, configmaps = fleet()
    moving = moving_partition(range(0, 4))
    other = holder_of(range(8, 12))
    waiting = partition(
        "b",
        "2026-01-01T00:00:02Z",
        {"phase": "Pending", "reason": "Fragmented", "message": "making room"},
        16,
    )
    return map_command._report(superpod(), nodes, configmaps, {}, [moving, other, waiting])


def test_devices_reserved_for_a_move_show_as_their_own_glyph_with_a_legend_line():
    report = moving_fleet()
    assert report.reserved() == [("team/a", 4)]
    grid = dict(plan_command.device_grid(report)[0][1])
    letters = report.letters()
    # the running pod's devices stay its partition's; the new ones are reserved, and the rest unchanged
    assert grid["n0"] == letters["team/a"] * 4 + "." * 12
    assert grid["n1"] == "****" + "...." + letters["team/c"] * 4 + "...."
    out = io.StringIO()
    report.print(out, colour=False)
    text = out.getvalue()
    assert "* reserved for a move in progress" in text
    assert "* 4 devices reserved for team/a, moving, making room for team/b" in text


def test_reserved_devices_have_a_colour_no_partition_has():
    report = moving_fleet()
    painted = plan_command.occupancy_lines(report, colour=True)
    reserved = f"\x1b[{plan_command.MOVING_ANSI}m*\x1b[0m"
    assert sum(line.count(reserved) for line in painted) == 4
    letter = report.letters()["team/a"]
    assert not any(f"[{plan_command.MOVING_ANSI}m{letter}" in line for line in painted)


def test_the_png_of_a_map_with_a_move_in_progress_is_written(tmp_path):
    path = tmp_path / "map.png"
    plan_command.write_png(moving_fleet(), path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_a_png_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as in the operator's image, which lacks it
    path = tmp_path / "map.png"
    with pytest.raises(SystemExit, match="--png needs matplotlib, which is not installed"):
        plan_command.write_png(moving_fleet(), path)
    assert not path.exists()


def test_a_map_without_moves_has_no_reserved_devices_nor_legend():
    nodes, configmaps = fleet()
    report = map_command._report(superpod(), nodes, configmaps, {}, [holder_of(range(8, 12))])
    out = io.StringIO()
    report.print(out, colour=False)
    assert report.reserved() == []
    assert "reserved for a move" not in out.getvalue()
    assert "*" not in "".join(cells for _, nodes_ in plan_command.device_grid(report) for _, cells in nodes_)


def test_a_recorded_move_whose_devices_another_partition_holds_is_not_shown_as_reserved():
    nodes, configmaps = fleet()
    moving, holder = moving_partition(range(8, 12)), holder_of(range(8, 12))
    report = map_command._report(superpod(), nodes, configmaps, {}, [moving, holder])
    grid = dict(plan_command.device_grid(report)[0][1])
    assert report.reserved() == []
    assert grid["n1"] == "." * 8 + report.letters()["team/c"] * 4 + "...."


def test_a_live_defrag_plan_leaves_a_partition_being_moved_and_its_reserved_devices_alone():
    nodes, configmaps = fleet()
    moving = moving_partition(range(0, 4))
    moving["spec"]["movable"] = True
    objects = [moving, holder_of(range(8, 12))]
    report = map_command._report(superpod(), nodes, configmaps, {}, objects)
    workloads = defrag_command.live_workloads(objects)
    assert set(workloads) == {"team/c"}  # the moving one counts as running and not movable
    reserved = {f"node-0-1/Ascend910-{d}" for d in range(4)}
    for plan in defrag_command.plan_tiers(report.allocator, mobility.Policy.MOVABLE, workloads):
        if isinstance(plan.outcome, placement.Moves):
            assert "team/a" not in {move.partition_id for move in plan.outcome.moves}
            taken = {d for move in plan.outcome.moves for d in move.after.device_ids()}
            assert not taken & reserved and not set(plan.outcome.placement.device_ids()) & reserved
