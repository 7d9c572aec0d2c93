"""`superpod map [SUPERPOD] [--kubeconfig F] [--png FILE]`: the live occupancy map of a SuperPod.

Reads what the operator reads (the SuperPod, its Nodes, the device plugin's ConfigMaps) and every partition's
status.allocation, rebuilds the picture with the same allocator (`restore`, never a new decision) and prints it
as `superpod plan` does: one letter and colour per partition, rack x node x device.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import pydantic

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client, deviceinfo
from superpod.commands import plan
from superpod.placement import allocator as placement_allocator
from superpod.placement import result
from superpod.topology import profiles, tree

JSON = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("superpod", nargs="?", help="SuperPod name (default: every SuperPod)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--png", type=Path, help="write the map as a PNG instead of printing it")


async def live_reports(api: client.KubeClient, name: str | None = None) -> list[plan.Report]:
    """One report per SuperPod (or the named one), from the cluster's current state."""
    superpods_path = client.resource_path(common.API_VERSION, api_superpod.PLURAL)
    superpods = [await api.get(f"{superpods_path}/{name}")] if name else await api.list(superpods_path)
    nodes = await api.list("/api/v1/nodes")
    configmaps = {
        node: cm
        for cm in await api.list(client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE))
        if (node := deviceinfo.node_of(cm["metadata"]["name"])) is not None
    }
    partitions = await api.list(client.resource_path(common.API_VERSION, api_partition.PLURAL))
    return [_report(superpod, nodes, configmaps, partitions) for superpod in superpods]


def _report(
    superpod_obj: JSON, nodes: list[JSON], configmaps: dict[str, JSON], partitions: list[JSON]
) -> plan.Report:
    superpod = api_superpod.SuperPod.model_validate({k: v for k, v in superpod_obj.items() if k != "status"})
    profile = profiles.for_spec(superpod.spec)
    observed = plan.observed_nodes(nodes, configmaps, superpod.spec, profile)
    topology = tree.build(profile, observed, reserve_nodes=superpod.spec.reserve_nodes)
    allocator = placement_allocator.Allocator(topology)
    decisions: list[tuple[str, result.Placement | result.Rejection]] = []
    name = superpod.metadata.get("name")
    ordered = sorted(
        partitions, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
    )
    for obj in ordered:
        if (obj.get("spec") or {}).get("superPod") != name:
            continue
        pid = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        status = obj.get("status") or {}
        if status.get("allocation"):
            try:
                slots = [api_partition.Slot.model_validate(slot) for slot in status["allocation"]]
            except pydantic.ValidationError:
                continue
            outcome = allocator.restore(pid, slots, whole_nodes=bool(obj["spec"].get("wholeNodes")))
            if isinstance(outcome, result.Placement):
                decisions.append((pid, outcome))
        elif status.get("reason") in {reason.value for reason in api_partition.PendingReason}:
            reason = api_partition.PendingReason(status["reason"])
            decisions.append((pid, result.Rejection(reason, str(status.get("message", "")))))
    return plan.Report(superpod, allocator, decisions, synthesised=False, skipped=[])


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
    except client.ApiError as error:
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
