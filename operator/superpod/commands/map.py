"""`superpod map [SUPERPOD] [--kubeconfig F] [--png FILE]`: the live occupancy map of a SuperPod.

Reads what the operator reads (the SuperPod, its Nodes, the device plugin's and NodeD's ConfigMaps) and every
partition's status.allocation, rebuilds the picture with the operator's own `superpodmodel.build` and the same
allocator (`restore`, never a new decision) and prints it
as `superpod plan` does: one letter and colour per partition, rack x node x device. Devices reserved for a
move in progress (a running partition's new devices, recorded in its `status.move`, held as the operator holds
them) show as `*`, with a legend line per move naming the partition and the one it makes room for.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import pydantic

from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client, deviceinfo, nodeinfo
from superpod.commands import plan
from superpod.controller import relocation, superpodmodel
from superpod.placement import allocator as placement_allocator
from superpod.placement import result
from superpod.topology import tree

JSON = common.JSON


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("superpod", nargs="?", help="SuperPod name (default: every SuperPod)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--png", type=Path, help="write the map as a PNG instead of printing it")


async def live_reports(api: client.KubeClient, name: str | None = None) -> list[plan.Report]:
    """One report per SuperPod (or the named one), from the cluster's current state."""
    superpods_path = client.resource_path(common.API_VERSION, api_superpod.PLURAL)
    superpods = [await api.get(f"{superpods_path}/{name}")] if name else await api.list(superpods_path)
    nodes = {node["metadata"]["name"]: node for node in await api.list("/api/v1/nodes")}
    configmaps = {
        node: cm
        for cm in await api.list(client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE))
        if (node := deviceinfo.node_of(cm["metadata"]["name"])) is not None
    }
    health = {
        verdict.node: verdict
        for cm in await api.list(client.resource_path("v1", "configmaps", nodeinfo.NAMESPACE))
        if (verdict := nodeinfo.parse(cm)) is not None
    }
    partitions = await api.list(client.resource_path(common.API_VERSION, api_partition.PLURAL))
    return [_report(superpod, nodes, configmaps, health, partitions) for superpod in superpods]


def _report(
    superpod_obj: JSON,
    nodes: dict[str, JSON],
    configmaps: dict[str, JSON],
    health: dict[str, nodeinfo.NodeHealth],
    partitions: list[JSON],
) -> plan.Report:
    superpod = api_superpod.SuperPod.model_validate({k: v for k, v in superpod_obj.items() if k != "status"})
    model = superpodmodel.build(
        superpodmodel.configure(views.SuperPod(superpod_obj).spec), nodes, configmaps, health
    )
    if model.error is not None or model.profile is None:
        raise plan.PlanError(f"SuperPod {superpod.metadata.get('name')}: {model.error}")
    allocator = model.allocator or placement_allocator.Allocator(
        tree.build(model.profile, (), reserve_nodes=superpod.spec.reserve_nodes)
    )
    decisions: list[tuple[str, result.Placement | result.Rejection]] = []
    moving: dict[str, JSON] = {}
    name = superpod.metadata.get("name")
    ordered = sorted(partitions, key=lambda p: (views.Partition(p).created, views.Partition(p).name))
    for obj in ordered:
        view = views.Partition(obj)
        if view.superpod != name:
            continue
        if view.placed:
            try:
                slots = view.slots()
            except pydantic.ValidationError:
                continue
            outcome = allocator.restore(view.key, slots, whole_nodes=view.whole_nodes)
            if isinstance(outcome, result.Placement):
                decisions.append((view.key, outcome))
                if view.move is not None:
                    moving[view.key] = view.move
        elif view.status.get("reason") in {reason.value for reason in api_partition.PendingReason}:
            reason = api_partition.PendingReason(view.status["reason"])
            decisions.append((view.key, result.Rejection(reason, str(view.status.get("message", "")))))
    report = plan.Report(superpod, allocator, decisions, synthesised=False, skipped=[])
    for key, move in moving.items():  # once every allocation is held, as the operator's restore does
        if relocation.hold_recorded(allocator, key, move):
            target = move.get("forPartition")
            report.making_room[key] = str(target) if target else None
    return report


def run(args: argparse.Namespace) -> int:
    try:
        credentials = client.credentials_from_kubeconfig(args.kubeconfig)
    except (OSError, KeyError) as error:
        print(f"superpod map: cannot read the kubeconfig: {error}", file=sys.stderr)
        return 1

    async def fetch() -> list[plan.Report]:
        async with client.KubeClient(credentials) as api:
            return await live_reports(api, args.superpod)

    try:
        reports = asyncio.run(fetch())
    except (client.ApiError, plan.PlanError) as error:
        print(f"superpod map: {error}", file=sys.stderr)
        return 1
    if not reports:
        print("no SuperPods found")
    for report in reports:
        if args.png:
            plan.write_png(report, args.png)
            print(f"wrote {args.png}")
        else:
            report.print(sys.stdout, colour=sys.stdout.isatty())
    return 0
