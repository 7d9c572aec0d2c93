"""`superpod defrag plan`: the moves that would reopen the largest block of each tier, offline or live.

- `superpod defrag plan -f SUPERPOD.yaml -f PARTITIONS.yaml [--policy P] [--json] [--png FILE]`: the
  partitions are placed as `superpod plan` places them; offline no pod runs, so every partition counts as
  unbound.
- `superpod defrag plan [SUPERPOD] [--kubeconfig F] [--policy P] [--json] [--png FILE]`: the SuperPod as
  `superpod map` reads it (partition statuses); a partition with a pod bound to a slot is running.

For each tier from the module up to the one below the widest (node, rack, ...): if no domain of the tier is
wholly free, `plan_defragmentation` is asked for a request that fills one (a whole module, node, rack) under
the policy (default Unbound), and the moves are printed with the occupancy map after them; the map before
comes first. `--png FILE` writes the map before to FILE and each map after to FILE-<tier>.png beside it.
Nothing is changed anywhere: this is a what-if.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.commands import plan as plan_command
from superpod.placement import allocator as placement_allocator
from superpod.placement import defrag, mobility, moves, result
from superpod.placement import request as placement_request


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="defrag_command", metavar="ACTION", required=True)
    action = sub.add_parser(
        "plan",
        help="print the moves that would reopen the largest block per tier, with maps before and after",
    )
    action.add_argument("superpod", nargs="?", help="live: the SuperPod's name (default: every SuperPod)")
    action.add_argument(
        "-f", "--filename", dest="files", action="append", type=Path,
        help="offline: YAML file(s) as for `superpod plan`: a SuperPod, its partitions, optionally Nodes",
    )  # fmt: skip
    action.add_argument("--kubeconfig", help="live: kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    action.add_argument(
        "--policy",
        choices=[policy.value for policy in mobility.Policy],
        default=mobility.Policy.UNBOUND.value,
        help="what may move (default Unbound: partitions without a running pod)",
    )
    action.add_argument("--json", action="store_true", help="print the plans as JSON")
    action.add_argument("--png", type=Path, help="write the maps as PNG files (FILE, FILE-<tier>.png)")


@dataclasses.dataclass(frozen=True)
class TierPlan:
    """What reopening one domain of a tier takes."""

    tier: str
    devices: int  # the block a whole domain of the tier is
    outcome: moves.Moves | result.Rejection | None  # None: a domain of the tier is free already
    free_domain: str  # the domain that is (or would be) free
    after: placement_allocator.Allocator | None  # the allocator once the moves are done


def run(args: argparse.Namespace) -> int:
    policy = mobility.Policy(args.policy)
    try:
        if args.files:
            if args.superpod or args.kubeconfig:
                raise ValueError("give either -f files or a SuperPod and --kubeconfig, not both")
            documents = [doc for path in args.files for doc in _load(path)]
            reports: list[tuple[plan_command.Report, dict[str, mobility.Workload]]] = [
                (plan_command.plan(documents), {})
            ]
        else:
            reports = _live(args)
    except (OSError, ValueError, yaml.YAMLError) as error:
        print(f"superpod defrag plan: {error}", file=sys.stderr)
        return 2
    if not reports:
        print("no SuperPods found")
    out = sys.stdout
    for report, running in reports:
        allocator = report.allocator
        workloads = {pid: running.get(pid, mobility.Workload()) for pid in allocator.partitions}
        plans = plan_tiers(allocator, policy, workloads)
        if args.json:
            json.dump(to_json(report.name, policy, plans), out, indent=2)
            out.write("\n")
        else:
            _print(report, policy, plans, out, colour=out.isatty())
        if args.png:
            _pngs(report, plans, args.png, quiet=args.json)
    return 0


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


def _live(args: argparse.Namespace) -> list[tuple[plan_command.Report, dict[str, mobility.Workload]]]:
    """(report, partition -> workload) per SuperPod, as the cluster has them now: a slot with a pod bound
    is a running pod (`live_workloads`); the devices reserved for a move stay held, as `superpod map` shows
    them."""
    from superpod.cluster import client
    from superpod.commands import map as map_command

    try:
        credentials = client.credentials_from_kubeconfig(args.kubeconfig)
    except (OSError, KeyError) as error:
        raise ValueError(f"cannot read the kubeconfig: {error}") from error

    async def fetch() -> list[tuple[plan_command.Report, dict[str, mobility.Workload]]]:
        async with client.KubeClient(credentials) as api:
            reports = await map_command.live_reports(api, args.superpod)
            partitions = await api.list(client.resource_path(common.API_VERSION, api_partition.PLURAL))
        running = live_workloads(partitions)
        return [(report, running) for report in reports]

    try:
        return asyncio.run(fetch())
    except client.ApiError as error:
        raise ValueError(str(error)) from error


def live_workloads(partitions: list[dict[str, Any]]) -> dict[str, mobility.Workload]:
    """Each partition's workload from its object: a slot with a pod bound is a running pod, `spec.movable`
    marks a workload that tolerates a restart. A partition being moved (`status.move`) is left out: it counts
    as running and not movable, as the operator keeps it where it is until its move is done."""
    found = {}
    for obj in partitions:
        if (obj.get("status") or {}).get("move"):
            continue
        pid = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        slots = (obj.get("status") or {}).get("allocation") or []
        pods = sum(1 for slot in slots if isinstance(slot, dict) and slot.get("pod"))
        found[pid] = mobility.Workload(
            running_pods=pods, movable=bool((obj.get("spec") or {}).get("movable", False))
        )
    return found


def plan_tiers(
    allocator: placement_allocator.Allocator,
    policy: mobility.Policy,
    workloads: dict[str, mobility.Workload],
) -> list[TierPlan]:
    """Per tier below the widest: what reopening one whole domain of it takes."""
    tree = allocator.tree
    profile = tree.profile
    plans = []
    for index in range(len(profile.tiers) - 1):
        tier = profile.tiers[index]
        request = _whole_domain(allocator, index)
        if request is None:
            continue
        devices = request.npus
        largest = dict(allocator.capacity().largest_free_block).get(tier.name, 0)
        if largest >= devices:
            found = allocator.plan_partition(request)
            domain = _domain_of(found, tier.name) if isinstance(found, result.Placement) else ""
            plans.append(TierPlan(tier.name, devices, None, domain, None))
            continue
        outcome = defrag.plan_defragmentation(allocator, request, policy=policy, workloads=workloads)
        after = None
        domain = ""
        if isinstance(outcome, moves.Moves):
            after = allocator.copy()
            moves.carry_out(after, outcome.moves)
            domain = _domain_of(outcome.placement, tier.name)
        plans.append(TierPlan(tier.name, devices, outcome, domain, after))
    return plans


def _whole_domain(
    allocator: placement_allocator.Allocator, index: int
) -> placement_request.PlacementRequest | None:
    """A request that fills one whole domain of profile tier `index` (None when it could never fit)."""
    tree = allocator.tree
    profile = tree.profile
    tier = profile.tiers[index]
    if index < tree.node_tier:  # a module: one pod of the module's size
        size = profile.rule.module_size
        if not profile.rule.allows(size):
            return None
        return placement_request.PlacementRequest(size, max_tier=tier.name)
    level = index - tree.node_tier
    most = 0
    for found in tree.levels[level]:
        nodes = [tree.nodes[n] for n in range(found.first_node, found.end_node)]
        if nodes and not any(node.reserve for node in nodes):
            most = max(most, sum(len(node.devices) for node in nodes))
    if not most:
        return None
    request = placement_request.PlacementRequest(
        most, max_tier=tier.name, devices_per_pod=profile.rule.devices_per_node
    )
    return request if allocator.ideal_tiers(request) is not None else None


def _domain_of(found: result.Placement, tier: str) -> str:
    slot = found.slots[0]
    if tier in slot.domains:
        return slot.domains[tier]
    return f"{slot.node} ({', '.join(found.slots[0].devices)})"


def _moved_slots(move: moves.Move) -> list[tuple[int, str, str]]:
    """(rank, from, to) of each slot that changes."""
    return [
        (old.rank, f"{old.node}/{','.join(old.devices)}", f"{new.node}/{','.join(new.devices)}")
        for old, new in zip(move.before.slots, move.after.slots, strict=True)
        if (old.node, old.devices) != (new.node, new.devices)
    ]


def to_json(name: str, policy: mobility.Policy, plans: list[TierPlan]) -> dict[str, Any]:
    tiers = []
    for found in plans:
        entry: dict[str, Any] = {"tier": found.tier, "devices": found.devices}
        if found.outcome is None:
            entry.update(status="Free", domain=found.free_domain)
        elif isinstance(found.outcome, result.Rejection):
            entry.update(status="NoMoves", reason=found.outcome.reason.value, message=found.outcome.message)
        else:
            entry.update(
                status="Moves",
                domain=found.free_domain,
                devicesMoved=found.outcome.devices_moved,
                podsDisturbed=found.outcome.pods_disturbed,
                exact=found.outcome.exact,
                moves=[
                    {
                        "partition": move.partition_id,
                        "devicesMoved": move.devices_moved,
                        "podsDisturbed": move.pods_disturbed,
                        "slots": [
                            {"rank": rank, "from": old, "to": new} for rank, old, new in _moved_slots(move)
                        ],
                    }
                    for move in found.outcome.moves
                ],
            )
        tiers.append(entry)
    return {"superPod": name, "policy": policy.value, "tiers": tiers}


def _print(
    report: plan_command.Report, policy: mobility.Policy, plans: list[TierPlan], out: TextIO, *, colour: bool
) -> None:
    report.print(out, colour=colour)
    for found in plans:
        out.write(f"\n{found.tier}: a whole {found.tier} ({found.devices} devices)")
        if found.outcome is None:
            out.write(f" is free already: {found.free_domain}\n")
            continue
        if isinstance(found.outcome, result.Rejection):
            if found.outcome.reason is api_partition.PendingReason.INSUFFICIENT_CAPACITY:
                out.write(f": fewer devices are free than one holds ({found.outcome.message})\n")
            else:
                out.write(
                    f": no moves the policy {policy.value} allows reopen one ({found.outcome.message})\n"
                )
            continue
        planned = found.outcome
        proof = "the fewest possible" if planned.exact else "found by the fast search"
        out.write(
            f": reopen {found.free_domain} by moving {planned.partitions_moved} partition(s), "
            f"{planned.devices_moved} devices, {planned.pods_disturbed} running pods disturbed ({proof}), "
            "in this order:\n"
        )
        for step, move in enumerate(planned.moves, start=1):
            for rank, old, new in _moved_slots(move):
                out.write(f"  {step}. {move.partition_id} rank {rank}: {old} -> {new}\n")
        assert found.after is not None
        out.write(f"occupancy after the moves ({found.free_domain} free):\n")
        after = plan_command.Report(report.superpod, found.after, report.decisions, report.synthesised, [])
        for line in plan_command.occupancy_lines(after, colour=colour):
            out.write(line + "\n")


def _pngs(report: plan_command.Report, plans: list[TierPlan], path: Path, *, quiet: bool) -> None:
    plan_command.write_png(report, path)
    written = [path]
    for found in plans:
        if found.after is not None:
            after = plan_command.Report(
                report.superpod, found.after, report.decisions, report.synthesised, []
            )
            target = path.with_name(f"{path.stem}-{found.tier}{path.suffix or '.png'}")
            plan_command.write_png(after, target)
            written.append(target)
    if not quiet:
        print("wrote " + ", ".join(map(str, written)))
