"""`superpod plan` and `superpod bench` as a user runs them (small profiles, so they stay quick)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from superpod import cli

SUPERPOD = {
    "apiVersion": "superpod.dev/v1alpha1",
    "kind": "SuperPod",
    "metadata": {"name": "cm"},
    "spec": {"profile": "cloudmatrix-384", "superPodID": 0},
}


def partition(name: str, npus: int, **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"superPod": "cm", "npus": npus, **spec},
    }


def write(path: Path, *documents: object) -> Path:
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_plan_places_partitions_in_order_and_draws_the_map(tmp_path, capsys):
    superpod = write(tmp_path / "superpod.yaml", SUPERPOD)
    partitions = write(
        tmp_path / "partitions.yaml",
        partition("a", 16),
        partition("b", 2),
        partition("huge", 1000),
        partition("elsewhere", 1) | {"spec": {"superPod": "other", "npus": 1}},
    )
    assert cli.main(["plan", "-f", str(superpod), "-f", str(partitions)]) == 0
    out = capsys.readouterr().out
    assert "48 nodes synthesised from the profile" in out
    assert "[A] team/a: Allocated, 16 devices on 1 node(s), tier node" in out
    assert "[B] team/b: Allocated, 2 devices on 1 node(s), tier module" in out
    assert "team/huge: Pending, Unsatisfiable: asked 1000 NPUs" in out
    assert "team/elsewhere: skipped" in out
    assert "AAAAAAAAAAAAAAAA BB.............." in out
    assert "rrrrrrrrrrrrrrrr" in out  # the reserve nodes
    assert "\x1b[" not in out  # no colours when stdout is not a terminal


def test_plan_json_carries_the_status_fields(tmp_path, capsys):
    documents = write(tmp_path / "all.yaml", SUPERPOD, partition("a", 32, blockSize=16))
    assert cli.main(["plan", "-f", str(documents), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nodesSynthesised"] is True
    (entry,) = report["partitions"]
    assert entry["phase"] == "Allocated"
    assert entry["tierSpan"] == "superpod"
    assert [slot["rank"] for slot in entry["slots"]] == [0, 16]
    assert entry["slots"][0]["domains"] == {"node": "node-0-00", "superpod": "superpod-0"}
    assert report["capacity"]["devices"]["allocated"] == 32


def test_plan_uses_the_given_nodes_and_their_device_health(tmp_path, capsys):
    devices = ",".join(f"Ascend910-{i}" for i in range(16))
    nodes = []
    for index in range(2):
        name = f"worker-{index}"
        nodes.append(
            {
                "kind": "Node",
                "metadata": {"name": name, "labels": {"huawei.com/topotree.superpodid": "0"}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
        info = {
            "DeviceInfo": {
                "DeviceList": {
                    "huawei.com/Ascend910": devices,
                    "huawei.com/Ascend910-Unhealthy": "Ascend910-0" if index == 0 else "",
                },
                "UpdateTime": 0,
            },
            "SuperPodID": 0,
            "ServerIndex": index,
            "RackID": 0,
        }
        nodes.append(
            {
                "kind": "ConfigMap",
                "metadata": {"name": f"mindx-dl-deviceinfo-{name}", "namespace": "kube-system"},
                "data": {"DeviceInfoCfg": json.dumps(info)},
            }
        )
    spec = SUPERPOD | {"spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0}}
    documents = write(tmp_path / "all.yaml", spec, *nodes, partition("a", 16))
    assert cli.main(["plan", "-f", str(documents), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nodesSynthesised"] is False
    assert report["nodes"] == 2
    assert report["partitions"][0]["slots"][0]["node"] == "worker-1"  # worker-0 has a failed die
    assert report["capacity"]["devices"]["unhealthy"] == 1


def test_plan_takes_nodes_noded_reports_unhealthy_out_of_service_as_the_operator_does(tmp_path, capsys):
    """NodeD's verdict is part of the inventory `plan` and the operator share (`superpodmodel.build`)."""
    documents = []
    for index in range(2):
        name = f"worker-{index}"
        documents.append(
            {
                "kind": "Node",
                "metadata": {"name": name, "labels": {"huawei.com/topotree.superpodid": "0"}},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "allocatable": {"huawei.com/Ascend910": "16"},
                },
            }
        )
    verdict = {"NodeInfo": {"FaultDevList": [], "NodeStatus": "UnHealthy"}}
    documents.append(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "mindx-dl-nodeinfo-worker-0", "namespace": "mindx-dl"},
            "data": {"NodeInfo": json.dumps(verdict)},
        }
    )
    spec = SUPERPOD | {"spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0}}
    path = write(tmp_path / "all.yaml", spec, *documents, partition("a", 16))
    assert cli.main(["plan", "-f", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["partitions"][0]["slots"][0]["node"] == "worker-1"
    assert report["capacity"]["devices"]["unhealthy"] == 16


def test_plan_writes_a_png(tmp_path, capsys):
    documents = write(tmp_path / "all.yaml", SUPERPOD, partition("a", 64))
    image = tmp_path / "map.png"
    assert cli.main(["plan", "-f", str(documents), "--png", str(image)]) == 0
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {image}" in capsys.readouterr().out


def test_plan_without_a_superpod_is_an_error(tmp_path, capsys):
    documents = write(tmp_path / "p.yaml", partition("a", 1))
    assert cli.main(["plan", "-f", str(documents)]) == 2
    assert "expected exactly one SuperPod" in capsys.readouterr().err


def test_bench_gen_then_run_reports_every_algorithm_and_writes_placements(tmp_path, capsys):
    assert cli.main(["bench", "gen", "--profile", "ascend-910b", "--seed", "3", "--requests", "120"]) == 0
    trace_file = tmp_path / "trace.jsonl"
    trace_file.write_text(capsys.readouterr().out)
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert {line["op"] for line in lines} == {"create", "delete"}
    out_file = tmp_path / "placements.jsonl"
    argv = ["bench", "run", "--profile", "ascend-910b", "--trace", str(trace_file), "--json"]
    assert cli.main([*argv, "--placements-out", str(out_file)]) == 0
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["algorithm"] for s in summaries] == ["superpod", "first-fit", "random", "kueue-greedy"]
    creates = sum(1 for line in lines if line["op"] == "create")
    assert all(s["requests"] == creates for s in summaries)
    placements = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(placements) == 4 * creates
    first = next(p for p in placements if "devices" in p)
    assert all("/" in device for device in first["devices"])
    assert {p.get("reason") for p in placements} - {None} <= {
        "Fragmented",
        "InsufficientCapacity",
        "Unsatisfiable",
    }


def test_bench_run_prints_a_table_for_one_algorithm(tmp_path, capsys):
    trace_file = tmp_path / "trace.jsonl"
    trace_file.write_text('{"at":0,"op":"create","id":"a","npus":4}\n{"at":1,"op":"delete","id":"a"}\n')
    argv = [
        "bench",
        "run",
        "--profile",
        "ascend-910b",
        "--trace",
        str(trace_file),
        "--algorithm",
        "first-fit",
    ]
    assert cli.main(argv) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["algorithm", "requests", "placed", "rejected"]
    assert row.split()[:3] == ["first-fit", "1", "1"]


def test_bench_compare_and_scale_report_json(capsys):
    argv = ["bench", "compare", "--profile", "ascend-910b", "--seeds", "1-2", "--requests", "80", "--json"]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["algorithm"] == "superpod" and rows[0]["seeds"] == 2
    assert all(len(row["winsTiesLosses"]) == 3 for row in rows[1:])
    argv = ["bench", "scale", "--profiles", "ascend-910b", "--decisions", "20", "--json"]
    assert cli.main(argv) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["devices"] == 128 and row["decisions"] == 20
    assert row["cpuP50Ms"] >= 0 and row["decisionP99Ms"] <= row["decisionMaxMs"]


def test_bench_gen_tenants_then_run_replays_both_victim_pickers(tmp_path, capsys):
    argv = ["bench", "gen", "--profile", "atlas-950", "--nodes", "16", "--tenants", "3", "--requests", "150"]
    assert cli.main(argv) == 0
    trace_file = tmp_path / "tenants.jsonl"
    trace_file.write_text(capsys.readouterr().out)
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert [line["id"] for line in lines if line["op"] == "quota"] == ["team-1", "team-2", "team-3"]
    run = ["bench", "run", "--profile", "atlas-950", "--nodes", "16", "--trace", str(trace_file)]
    assert cli.main([*run, "--json"]) == 0
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["algorithm"] for s in summaries] == ["superpod", "kueue-classic"]
    assert all(
        s["requests"] == 150 and set(s["tenants"]) == {"team-1", "team-2", "team-3"} for s in summaries
    )
    assert cli.main([*run, "--algorithm", "superpod"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.startswith("picker") and row.startswith("superpod") and "team-1:" in row


def test_bench_refuses_a_victim_picker_on_a_plain_trace_and_zero_tenants(tmp_path, capsys):
    trace_file = tmp_path / "trace.jsonl"
    trace_file.write_text('{"at":0,"op":"create","id":"a","npus":4}\n')
    argv = ["bench", "run", "--profile", "ascend-910b", "--trace", str(trace_file), "--algorithm"]
    assert cli.main([*argv, "kueue-classic"]) == 2
    assert "needs a tenant trace" in capsys.readouterr().err
    assert cli.main([*argv, "superpod"]) == 0  # the allocator's name as well as its victim picker's
    capsys.readouterr()
    assert cli.main(["bench", "gen", "--profile", "ascend-910b", "--tenants", "0"]) == 2
    assert "--tenants must be at least 1" in capsys.readouterr().err


def test_bench_preempt_reports_both_pickers(capsys):
    argv = ["bench", "preempt", "--profile", "atlas-950", "--decisions", "6", "--json"]
    assert cli.main(argv) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["devices"] == 8192 and row["decisions"] == 6 and row["searched"] >= 3
    assert row["superpodSearchedCpuP99Ms"] > 0 and row["kueue-classicSearchedCpuP99Ms"] > 0
    assert cli.main(["bench", "preempt", "--profile", "atlas-950", "--decisions", "4"]) == 0
    assert "searched p99 ms" in capsys.readouterr().out


def test_plan_explain_on_the_shared_superpod_example_names_victims_and_refusals(capsys):
    examples = Path(__file__).resolve().parents[3] / "examples"
    files = ["tenancy-superpod.yaml", "tenancy-priorityclasses.yaml", "tenancy-plan.yaml"]
    args = ["plan", "--explain", *(arg for name in files for arg in ("-f", str(examples / name)))]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    # team-b takes its share back from team-a, which borrowed it
    assert "team-a/pretrain: Pending, Preempted: preempted by team-b/finetune (reclaim: quota team-a" in out
    assert "why: preempts team-a/pretrain (reclaim: quota team-a borrows 160 NPUs beyond its share" in out
    assert (
        "why: waits for quota: quota team-b: 256 of 256 NPUs in use, 32 more would exceed the nominal share "
        "and borrowing is Never"
    ) in out
    assert "why: preempts team-a/eval (priority 0 below 1000; 128 NPUs, no running pod)" in out
    assert "quota team-a: 416 of 384 NPUs used, 32 borrowed" in out
    assert cli.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    entries = {entry["partition"]: entry for entry in report["partitions"]}
    assert entries["team-a/eval"]["reason"] == "Preempted"
    assert entries["team-a/urgent"]["explain"].startswith("preempts team-a/eval ")
    assert {"name": "team-b", "nominal": 256, "used": 256, "borrowed": 0} in report["quotas"]


def test_plan_without_explain_prints_no_why_and_a_missing_priority_class_waits(tmp_path, capsys):
    documents = write(tmp_path / "all.yaml", SUPERPOD, partition("a", 16, priorityClassName="nowhere"))
    assert cli.main(["plan", "-f", str(documents)]) == 0
    out = capsys.readouterr().out
    assert "team/a: Pending, PriorityClassNotFound: PriorityClass nowhere does not exist" in out
    assert "why:" not in out and "quota" not in out
