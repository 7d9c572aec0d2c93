"""`superpod bench`: churn traces and decision latency for the allocator and the baselines.

- `gen --profile P --seed S --load 0.9 [--movable SHARE] > trace.jsonl`: write a churn trace (see
  superpod.placement.trace); `--movable` marks that share of the partitions movable.
- `run --profile P --trace F [--algorithm NAME|all] [--defrag POLICY] [--json] [--placements-out FILE]`:
  replay it for each algorithm on a fresh, synthesised inventory of the profile and report the metrics;
  with `--defrag`, Fragmented creates may move partitions (superpod.placement.defragbench) and the report
  is device acceptance against the device-count limit, moves and devices moved.
- `scale`: decision latency on 768, 15,488 and 524,288 devices: fill to about 85% with trace requests,
  then time plan decisions under churn.
- `gen --tenants K` writes a tenant trace (quotas, priorities, run times; superpod.placement.tenancy), and
  `run` on such a trace replays it through the queue with the topology-aware victim search and with
  Kueue's classic picker, and reports per tenant the share of its nominal quota it could use.
- `preempt`: victim-search latency on a filled SuperPod, beside the classic picker's.
- `compact --profile P [--seeds 1-10] [--threshold T] [--max-moves N] [--tier node]`: what one pass of
  background compaction (as the operator runs it) recovers on snapshots of churn replays: the tier's
  fragmentation and whole free domains before and after, moves and devices moved.

The machine this runs on may be shared: compare algorithms within one run, and quote medians.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from superpod.commands import sandboxed
from superpod.placement import allocator as placement_allocator
from superpod.placement import baselines, bestfit, defragbench, mobility, result, tenancy, trace
from superpod.placement import policy as placement_policy
from superpod.topology import inventory, profiles, tree

ALGORITHMS: dict[str, Callable[[int], placement_policy.Policy]] = {
    bestfit.BestFit.name: lambda seed: bestfit.BestFit(),
    baselines.FirstFit.name: lambda seed: baselines.FirstFit(),
    baselines.RandomSpread.name: lambda seed: baselines.RandomSpread(seed),
    baselines.GreedyBestFit.name: lambda seed: baselines.GreedyBestFit(),
}

SCALE_PROFILES = ("cloudmatrix-384", "atlas-960", "atlas-950-supercluster")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    profile_names = sorted(name for name in profiles.BUILTIN)

    gen = sub.add_parser("gen", help="write a churn trace as JSON lines on stdout")
    gen.add_argument("--profile", required=True, choices=profile_names)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--load", type=float, default=0.9, help="steady load of the churn phase (default 0.9)")
    gen.add_argument("--requests", type=int, default=3000, help="create events (default 3000)")
    gen.add_argument("--nodes", type=int, help="nodes of the synthesised inventory (default: the profile's)")
    gen.add_argument("--tenants", type=int, help="write a tenant trace with this many quotas (see `run`)")
    gen.add_argument("--movable", type=float, default=0.0, metavar="SHARE", help="share marked movable (0)")
    gen.add_argument(
        "--bind-after",
        type=float,
        metavar="SECONDS",
        help="seconds until a partition's pods run (default 30)",
    )

    run = sub.add_parser("run", help="replay a trace for the allocator and the baselines")
    run.add_argument("--profile", required=True, choices=profile_names)
    run.add_argument("--trace", required=True, type=Path)
    run.add_argument(
        "--algorithm",
        default="all",
        choices=["all", *ALGORITHMS, *tenancy.PICKERS],
        help="placement algorithm; on a tenant trace, victim picker",
    )
    run.add_argument("--seed", type=int, default=1, help="seed of the random-spread baseline")
    run.add_argument("--nodes", type=int, help="nodes of the synthesised inventory (default: the profile's)")
    run.add_argument("--json", action="store_true", help="print one JSON object per algorithm")
    run.add_argument(
        "--defrag",
        choices=[policy.value for policy in mobility.Policy],
        help="let Fragmented creates move partitions under this policy; report acceptance and moves",
    )
    _compaction_arguments(run)
    run.add_argument(
        "--placements-out",
        type=Path,
        help="write one JSON line per create: id and node/device list or reason",
    )

    compare = sub.add_parser(
        "compare", help="generate a trace per seed, replay every algorithm, report medians and wins"
    )
    compare.add_argument("--profile", required=True, choices=profile_names)
    compare.add_argument("--seeds", default="1-10", help="seed range, for example 1-10 (default)")
    compare.add_argument("--load", type=float, default=0.9)
    compare.add_argument("--requests", type=int, default=3000)
    compare.add_argument("--json", action="store_true")
    compare.add_argument("--movable", type=float, default=0.5, metavar="SHARE", help="with --defrag (0.5)")
    compare.add_argument(
        "--bind-after", type=float, metavar="SECONDS", help="with --defrag: seconds until pods run (30)"
    )
    compare.add_argument(
        "--defrag", action="store_true", help="also replay the allocator with each defragmentation policy"
    )
    _compaction_arguments(compare)

    preempt = sub.add_parser(
        "preempt", help="victim-search latency on a filled SuperPod, beside the baseline"
    )
    preempt.add_argument("--profile", default="atlas-960", choices=profile_names)
    preempt.add_argument("--decisions", type=int, default=200, help="timed preemptors (default 200)")
    preempt.add_argument("--fill", type=float, default=0.85, help="utilization to fill to (default 0.85)")
    preempt.add_argument("--tenants", type=int, default=4)
    preempt.add_argument("--seed", type=int, default=1)
    preempt.add_argument("--json", action="store_true")

    compact = sub.add_parser(
        "compact",
        help="what one compaction pass recovers on snapshots of churn replays (fragmentation, free nodes)",
    )
    compact.add_argument("--profile", required=True, choices=profile_names)
    compact.add_argument("--seeds", default="1-10", help="seed range, for example 1-10 (default)")
    compact.add_argument("--load", type=float, default=0.9)
    compact.add_argument("--requests", type=int, default=3000)
    compact.add_argument(
        "--threshold", type=float, default=0.0, help="compact while the fragmentation is above this (0)"
    )
    compact.add_argument(
        "--max-moves", type=int, default=10, help="partitions one pass may move (maxMovesPerHour, 10)"
    )
    compact.add_argument("--tier", help="the tier whose domains are reopened (default node)")
    compact.add_argument(
        "--bind-after", type=float, metavar="SECONDS", help="seconds until a partition's pods run (30)"
    )
    compact.add_argument("--json", action="store_true", help="print one JSON object per snapshot")

    scale = sub.add_parser("scale", help="decision latency on 768, 15,488 and 524,288 devices")
    scale.add_argument("--profiles", nargs="+", default=list(SCALE_PROFILES), choices=profile_names)
    scale.add_argument("--decisions", type=int, default=300, help="timed decisions per profile (default 300)")
    scale.add_argument("--fill", type=float, default=0.85, help="utilization to fill to first (default 0.85)")
    scale.add_argument("--seed", type=int, default=1)
    scale.add_argument("--json", action="store_true")

    e2e = _bench_e2e()
    if e2e is None:
        sandboxed.add_missing(sub.add_parser("e2e", help=sandboxed.MISSING, add_help=False), "bench e2e")
    else:
        e2e.add_arguments(
            sub.add_parser("e2e", help="partitions through the sandbox and the operator: latency, burst, RSS")
        )


class _Command(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _bench_e2e() -> _Command | None:
    """`bench e2e` starts the sandbox API server and the simulated fleet: it lives in superpod-sandbox."""
    if sandboxed.package() is None:
        return None
    module: _Command = importlib.import_module(f"{sandboxed.PACKAGE}.bench_e2e")
    return module


def _compaction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compact",
        type=float,
        metavar="THRESHOLD",
        help="with --defrag: after each departure, compact while the node fragmentation exceeds THRESHOLD",
    )
    parser.add_argument(
        "--moves-per-hour", type=int, default=60, help="compaction's rate limit, in trace time (default 60)"
    )


def _compaction(args: argparse.Namespace) -> defragbench.Compaction | None:
    if args.compact is None:
        return None
    return defragbench.Compaction(threshold=args.compact, per_hour=args.moves_per_hour)


def run(args: argparse.Namespace) -> int:
    if args.bench_command == "gen":
        return _gen(args, sys.stdout)
    if args.bench_command == "run":
        return _run(args, sys.stdout)
    if args.bench_command == "compare":
        return _compare(args, sys.stdout)
    if args.bench_command == "e2e":
        e2e = _bench_e2e()
        return sandboxed.refuse("bench e2e") if e2e is None else e2e.run(args)
    if args.bench_command == "preempt":
        return _preempt(args, sys.stdout)
    if args.bench_command == "compact":
        return _compact(args, sys.stdout)
    return _scale(args, sys.stdout)


def _allocator(
    profile_name: str, policy: placement_policy.Policy, nodes: int | None
) -> placement_allocator.Allocator:
    profile = profiles.BUILTIN[profile_name]
    return placement_allocator.Allocator(tree.build(profile, inventory.synthesize(profile, nodes)), policy)


def _gen(args: argparse.Namespace, out: TextIO) -> int:
    allocator = _allocator(args.profile, bestfit.BestFit(), args.nodes)
    if args.tenants is not None:
        if args.tenants < 1:
            print("superpod bench gen: --tenants must be at least 1", file=sys.stderr)
            return 2
        events = tenancy.generate(allocator, seed=args.seed, tenants=args.tenants, requests=args.requests)
    else:
        events = trace.generate(allocator, seed=args.seed, load=args.load, requests=args.requests)
    if args.movable or args.bind_after is not None:
        events = trace.mark_movable(events, args.movable, args.seed, args.bind_after)
    for event in events:
        out.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
    return 0


def _run(args: argparse.Namespace, out: TextIO) -> int:
    with args.trace.open() as handle:
        events = [trace.Event.from_json(json.loads(line)) for line in handle if line.strip()]
    if any(event.op == "quota" for event in events):
        return _run_tenants(args, events, out)
    if args.algorithm not in ("all", *ALGORITHMS):  # a picker name ("superpod" is both)
        print(
            f"superpod bench run: {args.algorithm} needs a tenant trace (bench gen --tenants K)",
            file=sys.stderr,
        )
        return 2
    names = list(ALGORITHMS) if args.algorithm == "all" else [args.algorithm]
    sink = args.placements_out.open("w") if args.placements_out else None
    summaries = []
    policy = mobility.Policy(args.defrag) if args.defrag else None
    try:
        for name in names:
            allocator = _allocator(args.profile, ALGORITHMS[name](args.seed), args.nodes)
            recorder = _recorder(sink, name, len(names) > 1) if sink else None
            summary = _replay(events, allocator, policy, recorder, _compaction(args))
            summary.pop("defragCpuMs", None)
            summaries.append(summary)
    finally:
        if sink:
            sink.close()
    if args.json:
        for summary in summaries:
            out.write(json.dumps(summary) + "\n")
    else:
        _table(summaries, out, DEFRAG_COLUMNS if policy else COLUMNS)
    return 0


def _run_tenants(args: argparse.Namespace, events: list[trace.Event], out: TextIO) -> int:
    """Replay a tenant trace through the queue once per victim picker, on the project's allocator."""
    if args.algorithm not in ("all", *tenancy.PICKERS):
        print(
            f"superpod bench run: a tenant trace is replayed per victim picker ({', '.join(tenancy.PICKERS)})",
            file=sys.stderr,
        )
        return 2
    names = list(tenancy.PICKERS) if args.algorithm == "all" else [args.algorithm]
    summaries = []
    for name in names:
        allocator = _allocator(args.profile, bestfit.BestFit(), args.nodes)
        metrics = tenancy.replay(
            events, allocator, algorithm=name, clock=time.perf_counter, cpu_clock=time.thread_time
        )
        summaries.append(metrics.summary())
    if args.json:
        for summary in summaries:
            out.write(json.dumps(summary) + "\n")
        return 0
    rows = [
        {**summary, "tenantShares": " ".join(f"{t}:{v['shareUsed']}" for t, v in summary["tenants"].items())}
        for summary in summaries
    ]
    _table(rows, out, TENANT_COLUMNS)
    return 0


TENANT_COLUMNS = (
    ("algorithm", "picker"),
    ("requests", "requests"),
    ("admissions", "admissions"),
    ("tenantShares", "share of nominal used when in demand, per tenant"),
    ("minShareUsed", "min share"),
    ("preemptions", "preemptions"),
    ("victims", "victims"),
    ("reclaims", "reclaims"),
    ("devicesPreempted", "devices preempted"),
    ("preemptedPerPlacedDevice", "per placed device"),
    ("uselessPreemptions", "useless"),
    ("urgentWaitP50s", "urgent wait p50 s"),
    ("pickerP99Ms", "picker p99 ms"),
    ("cpuP99Ms", "cpu p99"),
)


def _preempt(args: argparse.Namespace, out: TextIO) -> int:
    allocator = _allocator(args.profile, bestfit.BestFit(), None)
    row = tenancy.latency(
        allocator,
        decisions=args.decisions,
        fill=args.fill,
        seed=args.seed,
        tenants=args.tenants,
        clock=time.perf_counter,
        cpu_clock=time.thread_time,
    )
    if args.json:
        out.write(json.dumps(row) + "\n")
        return 0
    out.write(
        f"{row['profile']} devices {row['devices']} fill {row['utilization']:.2f} partitions {row['partitions']} "
        f"decisions {row['decisions']} searched {row['searched']} (preempted {row['preempted']})\n"
    )
    lines = [
        [
            "picker",
            "all p50 ms",
            "all p99 ms",
            "cpu p99",
            "searched p50 ms",
            "searched p99 ms",
            "cpu p50",
            "cpu p99",
            "victims",
            "devices preempted",
            "useless",
        ]
    ]
    for name in tenancy.PICKERS:
        classic = name != "superpod"
        lines.append(
            [
                name,
                *(
                    str(row[f"{name}{key}"])
                    for key in (
                        "P50Ms",
                        "P99Ms",
                        "CpuP99Ms",
                        "SearchedP50Ms",
                        "SearchedP99Ms",
                        "SearchedCpuP50Ms",
                        "SearchedCpuP99Ms",
                    )
                ),
                str(row["classicVictims" if classic else "victims"]),
                str(row["classicDevicesPreempted" if classic else "devicesPreempted"]),
                str(row["classicUseless" if classic else "useless"]),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        )
    return 0


def _replay(
    events: list[trace.Event],
    allocator: placement_allocator.Allocator,
    policy: mobility.Policy | None = None,
    recorder: Callable[[trace.Event, result.Placement | result.Rejection], None] | None = None,
    compact: defragbench.Compaction | None = None,
) -> dict[str, Any]:
    """The replay's summary; with a defragmentation `policy`, moves are allowed and the summary gains
    acceptance against the device-count limit (on the same arrivals), moves, devices moved per device
    placed and the planner's CPU time."""
    usable = allocator.capacity().free
    mover = (
        defragbench.Mover(allocator, events, policy, cpu_clock=time.thread_time, compact=compact)
        if policy
        else None
    )
    metrics = trace.replay(
        events,
        allocator,
        clock=time.perf_counter,
        cpu_clock=time.thread_time,
        on_decision=recorder,
        rescue=mover,
        after_event=mover.after if mover else None,
    )
    summary = metrics.summary()
    if policy is None or mover is None:
        return summary
    limit = defragbench.device_count_limit(events, usable)
    counts = mover.counts
    cpu = sorted(counts.cpu_ms)
    summary.update(
        defrag=policy.value,
        limitAcceptance=round(limit.acceptance, 6),
        acceptanceVsLimit=round(metrics.placed_devices / limit.accepted, 6) if limit.accepted else None,
        heldAtEndVsLimit=(
            round(allocator.state.total_held / limit.held_at_end, 6) if limit.held_at_end else None
        ),
        fragmented=counts.fragmented,
        rescued=counts.rescued,
        movers=counts.movers,
        wholeNodeMovers=counts.whole_node_movers,
        youngestSmallAge=counts.youngest_small_age,
        moves=counts.partitions_moved,
        devicesMoved=counts.devices_moved,
        podsDisturbed=counts.pods_disturbed,
        compactionMoves=counts.compaction_moves,
        movedPerPlacedDevice=(
            round(counts.devices_moved / metrics.placed_devices, 6) if metrics.placed_devices else None
        ),
        defragPlans=len(cpu),
        defragCpuMs=cpu,  # every plan's, pooled over seeds by `compare` (and dropped before printing)
        defragCpuP50Ms=round(trace.percentile(cpu, 0.5), 3) if cpu else None,
        defragCpuP99Ms=round(trace.percentile(cpu, 0.99), 3) if cpu else None,
    )
    return summary


def _recorder(
    sink: TextIO, algorithm: str, tagged: bool
) -> Callable[[trace.Event, result.Placement | result.Rejection], None]:
    def record(event: trace.Event, decision: result.Placement | result.Rejection) -> None:
        line: dict[str, Any] = {"id": event.id}
        if tagged:
            line["algorithm"] = algorithm
        if isinstance(decision, result.Placement):
            line["devices"] = decision.device_ids()
        else:
            line["reason"] = decision.reason.value
        sink.write(json.dumps(line) + "\n")

    return record


COLUMNS = (
    ("algorithm", "algorithm"),
    ("requests", "requests"),
    ("placed", "placed"),
    ("rejected", "rejected"),
    ("idealTierRate", "idealTier"),
    ("meanTierSpan", "tierSpan"),
    ("meanNodesPerPartition", "nodes/part"),
    ("utilizationAtFirstRejection", "util@1stReject"),
    ("meanUtilization", "meanUtil"),
    ("meanFragmentation", "meanFrag"),
    ("meanRackFragmentation", "rackFrag"),
    ("decisionP50Ms", "p50 ms"),
    ("decisionP99Ms", "p99 ms"),
    ("cpuP50Ms", "cpu p50"),
    ("cpuP99Ms", "cpu p99"),
)


DEFRAG_COLUMNS = (
    ("algorithm", "algorithm"),
    ("defrag", "defrag"),
    ("requests", "requests"),
    ("placed", "placed"),
    ("rejected", "rejected"),
    ("deviceAcceptance", "devAccept"),
    ("limitAcceptance", "limit"),
    ("acceptanceVsLimit", "vsLimit"),
    ("heldAtEndVsLimit", "endVsLimit"),
    ("utilizationAtFirstRejection", "util@1stReject"),
    ("rescued", "rescued"),
    ("moves", "moves"),
    ("compactionMoves", "compacted"),
    ("devicesMoved", "devMoved"),
    ("podsDisturbed", "pods"),
    ("movedPerPlacedDevice", "moved/placed"),
    ("defragCpuP50Ms", "plan cpu p50"),
    ("defragCpuP99Ms", "plan cpu p99"),
)


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}:{count}" for key, count in value.items()) or "-"
    return "-" if value is None else str(value)


def _table(rows: list[dict[str, Any]], out: TextIO, columns: tuple[tuple[str, str], ...] = COLUMNS) -> None:
    cells = [[title for _, title in columns]] + [[_cell(row[key]) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        )


MEDIANS = (
    "idealTierRate",
    "utilizationAtFirstRejection",
    "meanUtilization",
    "meanFragmentation",
    "meanRackFragmentation",
    "decisionP50Ms",
    "decisionP99Ms",
    "cpuP50Ms",
    "cpuP99Ms",
)


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


SNAPSHOTS = (0.25, 0.5, 0.75)  # where in each trace (share of its events replayed) compaction is measured


def _compact(args: argparse.Namespace, out: TextIO) -> int:
    """Per seed and snapshot: the churn trace replayed up to the snapshot, then one compaction pass measured
    twice: with the trace's running pods (a partition runs from `at` + `bindAfter`: only younger ones may
    move, as in the operator) and as if no pod ran yet (the most compaction could recover)."""
    rows: list[dict[str, Any]] = []
    try:
        for seed in _seeds(args.seeds):
            allocator = _allocator(args.profile, bestfit.BestFit(), None)
            events = trace.generate(allocator, seed=seed, load=args.load, requests=args.requests)
            events = trace.mark_movable(events, 0.0, seed, args.bind_after)
            done = 0
            for share in SNAPSHOTS:
                upto = int(len(events) * share)
                trace.replay(events[done:upto], allocator, clock=time.perf_counter)
                done = upto
                now = events[upto - 1].at
                for mode, workloads in (
                    ("running", defragbench.running_workloads(allocator, events[:upto], now)),
                    ("idle", {pid: mobility.Workload() for pid in allocator.partitions}),
                ):
                    found = defragbench.compaction_snapshot(
                        allocator,
                        workloads,
                        threshold=args.threshold,
                        max_moves=args.max_moves,
                        tier=args.tier,
                    )
                    rows.append({"seed": seed, "at": share, "pods": mode, **dataclasses.asdict(found)})
    except ValueError as error:
        print(f"superpod bench compact: {error}", file=sys.stderr)
        return 2
    if args.json:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        return 0
    tier = args.tier or "node"
    out.write(
        f"compaction on {args.profile} ({tier} tier, threshold {args.threshold:g}, at most {args.max_moves} moves"
        f" per pass), snapshots at {', '.join(f'{s:g}' for s in SNAPSHOTS)} of each trace; fragmentation: mean"
        " over the snapshots; the rest: sums\n"
    )
    summary = []
    for mode in ("running", "idle"):
        mine = [row for row in rows if row["pods"] == mode]
        summary.append(
            {
                "pods": mode,
                "snapshots": len(mine),
                "fragmentation_before": round(
                    statistics.mean(row["fragmentation_before"] for row in mine), 4
                ),
                "fragmentation_after": round(statistics.mean(row["fragmentation_after"] for row in mine), 4),
                **{
                    key: sum(row[key] for row in mine)
                    for key in ("free_domains_before", "free_domains_after", "moves", "devices_moved")
                },
                "improved": sum(1 for row in mine if row["free_domains_after"] > row["free_domains_before"]),
            }
        )
    _table(summary, out, COMPACT_COLUMNS)
    out.write(
        "per snapshot (seed at): fragmentation before -> after, free domains before -> after, moves/devices\n"
    )
    for row in rows:
        out.write(
            f"{row['seed']} {row['at']:g} {row['pods']:<7} {row['fragmentation_before']:.4f} -> "
            f"{row['fragmentation_after']:.4f}  {row['free_domains_before']} -> {row['free_domains_after']}"
            f"  {row['moves']}/{row['devices_moved']}\n"
        )
    return 0


COMPACT_COLUMNS = (
    ("pods", "pods"),
    ("snapshots", "snapshots"),
    ("fragmentation_before", "frag before"),
    ("fragmentation_after", "frag after"),
    ("free_domains_before", "free domains before"),
    ("free_domains_after", "free domains after"),
    ("moves", "moves"),
    ("devices_moved", "devices moved"),
    ("improved", "snapshots with a domain reopened"),
)


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    """Per seed: one trace, every algorithm on it; then medians per algorithm, and for the first-rejection
    utilization how often the project's allocator beats, ties or trails each baseline on the same trace."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ALGORITHMS}
    moved: dict[mobility.Policy, list[dict[str, Any]]] = {policy: [] for policy in mobility.Policy}
    for seed in _seeds(args.seeds):
        shape = _allocator(args.profile, bestfit.BestFit(), None)
        events = trace.generate(shape, seed=seed, load=args.load, requests=args.requests)
        for name, factory in ALGORITHMS.items():
            allocator = _allocator(args.profile, factory(seed), None)
            metrics = trace.replay(events, allocator, clock=time.perf_counter, cpu_clock=time.thread_time)
            runs[name].append(metrics.summary())
        if args.defrag:
            marked = trace.mark_movable(events, args.movable, seed, args.bind_after)
            for policy in mobility.Policy:
                allocator = _allocator(args.profile, bestfit.BestFit(), None)
                moved[policy].append(
                    {"seed": seed, **_replay(marked, allocator, policy, None, _compaction(args))}
                )
    ours = runs[bestfit.BestFit.name]
    rows = []
    for name, summaries in runs.items():
        row: dict[str, Any] = {"algorithm": name, "seeds": len(summaries)}
        for key in MEDIANS:
            values = [summary[key] for summary in summaries if summary[key] is not None]
            row[key] = round(statistics.median(values), 4) if values else None
        if name != bestfit.BestFit.name:
            pairs = [
                (mine["utilizationAtFirstRejection"] or 0.0, theirs["utilizationAtFirstRejection"] or 0.0)
                for mine, theirs in zip(ours, summaries, strict=True)
            ]
            row["winsTiesLosses"] = [
                sum(1 for a, b in pairs if a > b),
                sum(1 for a, b in pairs if a == b),
                sum(1 for a, b in pairs if a < b),
            ]
        rows.append(row)
    defrag_rows = _defrag_rows(moved) if args.defrag else []
    if args.json:
        for row in rows + defrag_rows:
            out.write(json.dumps(row) + "\n")
        return 0
    header = ["algorithm", *MEDIANS, "vs superpod util@1stReject (superpod wins/ties/losses)"]
    cells = [header] + [
        [
            row["algorithm"],
            *(_cell(row[key]) for key in MEDIANS),
            "/".join(map(str, row.get("winsTiesLosses", []))),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    out.write(f"{args.profile}, seeds {args.seeds}, medians over seeds\n")
    for line in cells:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        )
    if args.defrag:
        out.write(
            f"\ndefragmentation ({bestfit.BestFit.name}, {args.movable:g} of the partitions movable), "
            "medians over seeds; gain: device acceptance above policy Never on the same trace\n"
        )
        _table(defrag_rows, out, DEFRAG_MEDIAN_COLUMNS)
        out.write(
            "\nper seed and policy: device acceptance / the limit's, devices held at the end / the limit's, "
            "devices moved per device placed\n"
        )
        _table(_per_seed(moved, PER_SEED_FIGURES), out, PER_SEED_COLUMNS)
        out.write(
            "\nper seed and policy: Fragmented creates, rescued by moves, partitions the policy let move at "
            "them (summed over them), of which holding only whole nodes; youngest: seconds since the youngest "
            "partition not made of whole nodes was created, at the first Fragmented create\n"
        )
        rescues = _per_seed(moved, PER_SEED_RESCUES)
        for row, run in zip(rescues, moved[mobility.Policy.NEVER], strict=True):
            row["youngest"] = _cell(run["youngestSmallAge"])
        _table(rescues, out, (("seed", "seed"), ("youngest", "youngest"), *PER_SEED_COLUMNS[1:]))
    return 0


PER_SEED_FIGURES = ("acceptanceVsLimit", "heldAtEndVsLimit", "movedPerPlacedDevice")
PER_SEED_RESCUES = ("fragmented", "rescued", "movers", "wholeNodeMovers")
PER_SEED_COLUMNS = (("seed", "seed"), *((p.value, p.value) for p in mobility.Policy))


def _per_seed(
    moved: dict[mobility.Policy, list[dict[str, Any]]], keys: Sequence[str]
) -> list[dict[str, str]]:
    """One row per seed: per policy, the summaries' `keys` side by side."""
    return [
        {
            "seed": str(run["seed"]),
            **{
                policy.value: " ".join(str(moved[policy][i][key]) for key in keys)
                for policy in mobility.Policy
            },
        }
        for i, run in enumerate(moved[mobility.Policy.NEVER])
    ]


DEFRAG_MEDIANS = (
    "deviceAcceptance",
    "limitAcceptance",
    "acceptanceVsLimit",
    "heldAtEndVsLimit",
    "movedPerPlacedDevice",
)

DEFRAG_MEDIAN_COLUMNS = (
    ("defrag", "policy"),
    ("deviceAcceptance", "devAccept"),
    ("limitAcceptance", "limit"),
    ("acceptanceVsLimit", "vsLimit"),
    ("heldAtEndVsLimit", "endVsLimit"),
    ("moves", "moves (sum)"),
    ("defragPlans", "plans (sum)"),
    ("movedPerPlacedDevice", "moved/placed"),
    ("defragCpuP50Ms", "plan cpu p50 (all plans)"),
    ("defragCpuP99Ms", "plan cpu p99"),
    ("gain", "gain wins/ties/losses"),
)


def _defrag_rows(moved: dict[mobility.Policy, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per policy: medians over seeds, the moves summed, and how often it beat, tied or trailed policy Never
    on device acceptance on the same trace."""
    never = moved[mobility.Policy.NEVER]
    rows = []
    for policy, summaries in moved.items():
        row: dict[str, Any] = {"defrag": policy.value, "seeds": len(summaries)}
        for key in DEFRAG_MEDIANS:
            values = [summary[key] for summary in summaries if summary[key] is not None]
            row[key] = round(statistics.median(values), 6) if values else None
        row["moves"] = sum(summary["moves"] for summary in summaries)
        row["defragPlans"] = sum(summary["defragPlans"] for summary in summaries)
        pooled = sorted(ms for summary in summaries for ms in summary.pop("defragCpuMs"))
        row["defragCpuP50Ms"] = round(trace.percentile(pooled, 0.5), 3) if pooled else None
        row["defragCpuP99Ms"] = round(trace.percentile(pooled, 0.99), 3) if pooled else None
        pairs = [
            (mine["deviceAcceptance"], base["deviceAcceptance"])
            for mine, base in zip(summaries, never, strict=True)
        ]
        row["gain"] = "/".join(
            str(count)
            for count in (
                sum(1 for a, b in pairs if a > b),
                sum(1 for a, b in pairs if a == b),
                sum(1 for a, b in pairs if a < b),
            )
        )
        rows.append(row)
    return rows


def _scale(args: argparse.Namespace, out: TextIO) -> int:
    rows = []
    for name in args.profiles:
        rows.append(_scale_one(name, args.decisions, args.fill, args.seed))
        if not args.json:
            row = rows[-1]
            out.write(
                f"{row['profile']:<24} devices {row['devices']:>7}  fill {row['utilization']:.2f}  "
                f"decisions {row['decisions']}  p50 {row['decisionP50Ms']:.3f} ms  "
                f"p99 {row['decisionP99Ms']:.3f} ms  max {row['decisionMaxMs']:.3f} ms  "
                f"cpu p50 {row['cpuP50Ms']:.3f} ms  cpu p99 {row['cpuP99Ms']:.3f} ms\n"
            )
            out.flush()
    if args.json:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return 0


def _scale_one(profile_name: str, decisions: int, fill: float, seed: int) -> dict[str, Any]:
    """Fill with trace-like requests, then time `decisions` plan calls, each followed by a commit and the
    release of random live partitions until the load is back at `fill`."""
    allocator = _allocator(profile_name, bestfit.BestFit(), None)
    usable = allocator.capacity().free
    rng = random.Random(seed)
    big = trace.large_sizes(usable)
    live: list[str] = []
    serial = 0

    def draw() -> trace.Event:
        nonlocal serial
        serial += 1
        if rng.random() < trace.LARGE_SHARE:
            npus = rng.choice(big)
        else:
            npus = rng.choices(trace.SMALL_SIZES, trace.SMALL_WEIGHTS)[0]
        return trace.Event(at=0.0, op="create", id=f"s{serial}", npus=npus)

    misses = 0
    while allocator.state.total_held < fill * usable and misses < 200:
        event = draw()
        decision = allocator.plan_partition(event.request())
        if isinstance(decision, result.Placement):
            allocator.commit(event.id, decision)
            live.append(event.id)
        else:
            misses += 1
    latencies = []
    cpu = []
    for _ in range(decisions):
        event = draw()
        started = time.perf_counter()
        cpu_started = time.thread_time()
        decision = allocator.plan_partition(event.request())
        cpu.append((time.thread_time() - cpu_started) * 1000.0)
        latencies.append((time.perf_counter() - started) * 1000.0)
        if isinstance(decision, result.Placement):
            allocator.commit(event.id, decision)
            live.append(event.id)
        while live and allocator.state.total_held > fill * usable:
            allocator.release(live.pop(rng.randrange(len(live))))
    ordered = sorted(latencies)
    cpu.sort()
    return {
        "profile": profile_name,
        "devices": allocator.tree.total_devices,
        "utilization": round(allocator.state.total_held / usable, 3),
        "decisions": decisions,
        "decisionP50Ms": round(trace.percentile(ordered, 0.5), 3),
        "decisionP99Ms": round(trace.percentile(ordered, 0.99), 3),
        "decisionMaxMs": round(ordered[-1], 3) if ordered else 0.0,
        "cpuP50Ms": round(trace.percentile(cpu, 0.5), 3),
        "cpuP99Ms": round(trace.percentile(cpu, 0.99), 3),
    }
