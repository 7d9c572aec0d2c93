"""Defragmentation in trace replays: movable marks, the device-count limit, and the replay's mover."""

from __future__ import annotations

import json

import pytest
from superpod import cli, placement
from superpod.placement import defragbench, mobility, trace

from tests.unit.placement.builders import make_allocator
from tests.unit.placement.defrag_builders import hold, tiny_allocator

Policy = mobility.Policy


def test_movable_marks_about_the_share_and_changes_nothing_else():
    events = trace.generate(make_allocator("ascend-910b", nodes=8), seed=7, requests=300)
    marked = trace.mark_movable(events, 0.5, seed=7)
    assert marked == trace.mark_movable(events, 0.5, seed=7)
    assert [(e.at, e.op, e.id, e.npus) for e in marked] == [(e.at, e.op, e.id, e.npus) for e in events]
    creates = [e for e in marked if e.op == "create"]
    assert 0.4 < sum(e.movable for e in creates) / len(creates) < 0.6
    assert not any(e.movable for e in marked if e.op == "delete")


def test_movable_and_bind_after_survive_json():
    event = trace.Event(at=1.5, op="create", id="a", npus=4, movable=True, bind_after=12.0)
    text = json.dumps(event.to_json())
    assert '"movable": true' in text and '"bindAfter": 12.0' in text
    assert trace.Event.from_json(json.loads(text)) == event
    plain = trace.Event(at=1.5, op="create", id="a", npus=4)
    assert set(plain.to_json()) == {"at", "op", "id", "npus"}


@pytest.mark.parametrize(
    ("case", "events", "limit"),
    [
        (
            "a create is accepted while enough devices are free, whatever their places",
            [("create", "a", 6), ("create", "b", 2), ("create", "c", 1)],
            defragbench.Limit(requested=9, accepted=8, held_at_end=8),
        ),
        (
            "a delete frees its devices for later creates",
            [("create", "a", 6), ("create", "b", 4), ("delete", "a", 0), ("create", "c", 4)],
            defragbench.Limit(requested=14, accepted=10, held_at_end=4),
        ),
        (
            "the delete of a rejected create frees nothing",
            [("create", "a", 6), ("create", "b", 4), ("delete", "b", 0), ("create", "c", 4)],
            defragbench.Limit(requested=14, accepted=6, held_at_end=6),
        ),
    ],
)
def test_the_device_count_limit_counts_devices_only(case, events, limit):
    trace_events = [
        trace.Event(at=float(i), op=op, id=pid, npus=npus) for i, (op, pid, npus) in enumerate(events)
    ]
    assert defragbench.device_count_limit(trace_events, usable=8) == limit


def one_per_node(movable: bool, bind_after: float | None = None):
    """Atlas 950, two racks: every node holds a one-NPU partition created at 0; at `now` a create of two
    whole nodes arrives and is Fragmented."""
    allocator = make_allocator("atlas-950", nodes=16)
    events = []
    for node in range(16):
        hold(allocator, f"one-{node:02d}", (node, (0,)))
        events.append(
            trace.Event(
                at=0.0, op="create", id=f"one-{node:02d}", npus=1, movable=movable, bind_after=bind_after
            )
        )
    return allocator, events


@pytest.mark.parametrize(
    ("case", "policy", "now", "movable", "bind_after", "rescued", "pods"),
    [
        ("policy Never moves nothing", Policy.NEVER, 10.0, True, None, False, 0),
        ("Unbound moves partitions younger than bindAfter", Policy.UNBOUND, 10.0, False, None, True, 0),
        ("Unbound leaves partitions whose pods run", Policy.UNBOUND, 31.0, True, None, False, 0),
        ("Movable moves running partitions marked movable", Policy.MOVABLE, 31.0, True, None, True, 2),
        ("Movable leaves running partitions not marked", Policy.MOVABLE, 31.0, False, None, False, 0),
        ("a trace's own bindAfter counts", Policy.UNBOUND, 31.0, False, 60.0, True, 0),
    ],
)
def test_the_mover_rescues_a_fragmented_create_when_the_policy_allows(
    case, policy, now, movable, bind_after, rescued, pods
):
    allocator, events = one_per_node(movable, bind_after)
    request = trace.Event(at=now, op="create", id="two-nodes", npus=16)
    events.append(request)
    rejection = allocator.plan_partition(request.request())
    assert isinstance(rejection, placement.Rejection)
    mover = defragbench.Mover(allocator, events, policy)
    outcome = mover(request, rejection)
    assert isinstance(outcome, placement.Placement) == rescued
    counts = mover.counts
    if rescued:
        allocator.commit("two-nodes", outcome)  # the moves were carried out: its devices are free
        assert (counts.rescued, counts.partitions_moved, counts.devices_moved, counts.pods_disturbed) == (
            1,
            2,
            2,
            pods,
        )
    else:
        assert counts.rescued == 0 and counts.devices_moved == 0
        assert len(allocator.partitions) == 16


@pytest.mark.parametrize(
    ("case", "policy", "whole_node", "counted"),
    [
        ("Never counts the Fragmented create and plans nothing", Policy.NEVER, False, (1, 0, 0, 0)),
        ("Unbound counts the partitions it may move", Policy.UNBOUND, False, (1, 1, 16, 0)),
        ("and which of them hold only whole nodes", Policy.UNBOUND, True, (1, 1, 16, 1)),
    ],
)
def test_the_mover_counts_fragmented_creates_and_what_the_policy_let_move(case, policy, whole_node, counted):
    allocator, events = one_per_node(movable=False)
    if whole_node:  # the last one-NPU partition gives way to a whole-node one on its node, created later
        allocator.release("one-15")
        hold(allocator, "one-15", (15, tuple(range(8))))
        events[-1] = trace.Event(at=4.0, op="create", id="one-15", npus=8)
    request = trace.Event(at=10.0, op="create", id="two-nodes", npus=16)
    events.append(request)
    rejection = allocator.plan_partition(request.request())
    assert isinstance(rejection, placement.Rejection)
    mover = defragbench.Mover(allocator, events, policy)
    mover(request, rejection)
    counts = mover.counts
    assert (counts.fragmented, counts.rescued, counts.movers, counts.whole_node_movers) == counted
    # the youngest partition not made of whole nodes was created at 0 (the whole-node one at 4 is not counted)
    assert counts.youngest_small_age == 10.0


def test_the_youngest_small_partition_is_none_when_every_partition_holds_whole_nodes():
    allocator = make_allocator("atlas-950", nodes=16)
    events = []
    for node in [*range(7), *range(8, 15)]:  # nodes 7 and 15 free, one in each rack
        hold(allocator, f"whole-{node:02d}", (node, tuple(range(8))))
        events.append(trace.Event(at=0.0, op="create", id=f"whole-{node:02d}", npus=8))
    request = trace.Event(at=10.0, op="create", id="two-nodes", npus=16, max_tier="rack")
    events.append(request)
    rejection = allocator.plan_partition(request.request())
    assert isinstance(rejection, placement.Rejection)
    mover = defragbench.Mover(allocator, events, Policy.NEVER)
    mover(request, rejection)
    assert mover.counts.fragmented == 1
    assert mover.counts.youngest_small_age is None


def test_a_replay_with_moves_counts_placed_and_requested_devices():
    allocator, events = one_per_node(movable=False)
    events.append(trace.Event(at=5.0, op="create", id="two-nodes", npus=16))
    mover = defragbench.Mover(allocator, events, Policy.UNBOUND)
    # the held partitions are already placed: replay only the last create
    metrics = trace.replay(events[-1:], allocator, clock=lambda: 0.0, rescue=mover)
    assert (metrics.placed, metrics.placed_devices, metrics.requested_devices) == (1, 16, 16)
    assert metrics.summary()["deviceAcceptance"] == 1.0


def test_bench_gen_movable_then_run_with_moves_reports_acceptance_against_the_limit(tmp_path, capsys):
    argv = [
        "bench",
        "gen",
        "--profile",
        "ascend-910b",
        "--seed",
        "3",
        "--requests",
        "120",
        "--movable",
        "0.5",
    ]
    assert cli.main(argv) == 0
    trace_file = tmp_path / "trace.jsonl"
    trace_file.write_text(capsys.readouterr().out)
    creates = [json.loads(line) for line in trace_file.read_text().splitlines() if '"create"' in line]
    assert 0 < sum(1 for line in creates if line.get("movable")) < len(creates)
    argv = ["bench", "run", "--profile", "ascend-910b", "--trace", str(trace_file), "--algorithm", "superpod"]
    assert cli.main([*argv, "--defrag", "Movable", "--json"]) == 0
    (summary,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert summary["defrag"] == "Movable"
    assert summary["acceptanceVsLimit"] == pytest.approx(
        summary["deviceAcceptance"] / summary["limitAcceptance"], abs=1e-5
    )
    assert 0 < summary["acceptanceVsLimit"] <= 1
    assert summary["movedPerPlacedDevice"] >= 0 and summary["moves"] >= summary["rescued"]
    assert cli.main([*argv, "--defrag", "Never"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["algorithm", "defrag"] and "vsLimit" in header
    assert row.split()[:2] == ["superpod", "Never"]


def test_bench_compare_with_defrag_reports_every_policy_against_never(capsys):
    argv = [
        "bench",
        "compare",
        "--profile",
        "ascend-910b",
        "--seeds",
        "1-2",
        "--requests",
        "80",
        "--defrag",
        "--json",
    ]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    policies = [row for row in rows if "defrag" in row]
    assert [row["defrag"] for row in policies] == ["Never", "Unbound", "Movable"]
    assert policies[0]["gain"] == "0/2/0"
    assert all(row["seeds"] == 2 and sum(map(int, row["gain"].split("/"))) == 2 for row in policies)


def test_bench_gen_bind_after_sets_every_creates_bind_after(capsys):
    argv = [
        "bench",
        "gen",
        "--profile",
        "ascend-910b",
        "--seed",
        "3",
        "--requests",
        "60",
        "--bind-after",
        "600",
    ]
    assert cli.main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(line.get("bindAfter") == 600 for line in lines if line["op"] == "create")
    assert not any(line.get("movable") for line in lines)


def test_a_compaction_snapshot_reopens_a_node_and_moves_nothing_that_runs():
    allocator = tiny_allocator()
    hold(allocator, "a", (0, (0, 1)))
    hold(allocator, "b", (1, (0, 1)))
    idle = {"a": mobility.Workload(), "b": mobility.Workload()}
    found = defragbench.compaction_snapshot(allocator, idle, threshold=0.0, max_moves=5)
    assert (found.free_domains_before, found.free_domains_after) == (2, 3)
    assert found.fragmentation_after < found.fragmentation_before and found.moves == 1
    assert found.devices_moved == 2 and found.held == 4
    assert set(allocator.placement_of("a").slots[0].devices) == {"Ascend910-0", "Ascend910-1"}  # a copy moved
    running = {pid: mobility.Workload(running_pods=1) for pid in idle}
    still = defragbench.compaction_snapshot(allocator, running, threshold=0.0, max_moves=5)
    assert (still.moves, still.free_domains_after, still.fragmentation_after) == (
        0,
        2,
        still.fragmentation_before,
    )


def test_bench_compact_prints_what_a_pass_recovers(capsys):
    argv = ["bench", "compact", "--profile", "ascend-910b", "--seeds", "1-2", "--requests", "120"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "compaction on ascend-910b (node tier" in out
    assert out.count(" running ") + out.count(" idle ") >= 12  # 2 seeds x 3 snapshots x both modes
    assert cli.main([*argv, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 12
    for row in rows:
        assert row["fragmentation_after"] <= row["fragmentation_before"]
        assert row["free_domains_after"] >= row["free_domains_before"]
    assert cli.main([*argv, "--tier", "module"]) == 2
    assert "compaction reopens domains of" in capsys.readouterr().err
