"""`superpod sim up|down|fault|heal`: a simulated Ascend fleet on any Kubernetes API server (the sandbox too).

`up` registers the Nodes and device-info ConfigMaps of one SuperPoD of a profile, then runs the kubelet and
device-plugin stand-in, heartbeats, ConfigMap refreshes and (with `--metrics-port`) the NPU-Exporter endpoint
until Ctrl-C. `fault` and `heal` change the cluster objects the way the real components would and work from any
process against a running `up`; `down` deletes what `up` created.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superpod.cluster import client


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from superpod_sandbox.sim import devicefaults, hardware

    sub = parser.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="register a simulated fleet and run it until Ctrl-C")
    up.add_argument("--profile", default="cloudmatrix-384", choices=hardware.names(), help="hardware profile")
    up.add_argument("--superpod-id", type=int, default=0, help="the SuperPoD id (default 0)")
    up.add_argument(
        "--nodes", type=int, default=None, help="node count (default: one SuperPoD or NVLink domain)"
    )
    up.add_argument("--no-bind", action="store_true", help="leave binding pending pods to a real scheduler")
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve NPU-Exporter metrics on 127.0.0.1:PORT (0: free port)",
    )
    up.add_argument("--heartbeat-seconds", type=float, default=60.0, help="Node Ready heartbeat interval")
    up.add_argument(
        "--refresh-seconds", type=float, default=60.0, help="device-info ConfigMap refresh interval"
    )
    up.add_argument(
        "--list-used-devices",
        action="store_true",
        help="keep devices pods use in the ConfigMap's free list (the real plugin leaves them out)",
    )
    up.add_argument(
        "--controllers",
        action="store_true",
        help="also run the Deployment, ReplicaSet and Job controllers (Pods for workloads, their status)",
    )
    up.add_argument("--once", action="store_true", help="register, print, and exit (objects stay)")
    down = sub.add_parser("down", help="delete the simulated Nodes, ConfigMaps and the pods bound to them")
    down.add_argument(
        "--profile", choices=hardware.names(), help="only this profile's fleet (with --superpod-id)"
    )
    down.add_argument("--superpod-id", type=int, default=0)
    fault = sub.add_parser("fault", help="inject a fault into a simulated node")
    heal = sub.add_parser("heal", help="heal faults of a simulated node")
    for action in (fault, heal):
        action.add_argument("--node", required=True, help="simulated node name")
        action.add_argument("--device", help="device name, for example Ascend910-3 (default: every device)")
    kinds = [kind.value for kind in devicefaults.Kind]
    fault.add_argument("--kind", required=True, choices=kinds)
    fault.add_argument("--port", type=int, default=0, help="UB switch port of a switch fault")
    heal.add_argument("--kind", choices=kinds, help="heal only this kind (default: every kind)")
    for action in (up, down, fault, heal):
        action.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, then ~/.kube/config)")


def run(args: argparse.Namespace) -> int:
    from superpod.cluster import heap

    from superpod_sandbox import codec

    handler = {"up": _up, "down": _down, "fault": _fault, "heal": _heal}[args.sim_command]
    heap.freeze_survivors()  # the fleet's model and views are long-lived: full collections scan what is new
    try:
        return codec.run(handler(args))
    except (KeyError, ValueError) as error:
        print(f"superpod sim {args.sim_command}: {error}", file=sys.stderr)
        return 2


async def _up(args: argparse.Namespace) -> int:
    from superpod_sandbox.sim import simulator

    options = simulator.Options(
        bind_pods=not args.no_bind,
        heartbeat_seconds=args.heartbeat_seconds,
        refresh_seconds=args.refresh_seconds,
        metrics_port=args.metrics_port,
        free_list_excludes_used=not args.list_used_devices,
        controllers=args.controllers,
    )
    simulated = simulator.Fleet(
        args.profile,
        kubeconfig=args.kubeconfig,
        superpod_id=args.superpod_id,
        nodes=args.nodes,
        options=options,
    )
    async with simulated:
        names = simulated.node_names
        print(
            f"fleet {simulated.layout.fleet}: {len(names)} nodes ({names[0]} .. {names[-1]}), "
            f"{len(names) * simulated.layout.hardware.devices_per_node} {simulated.layout.hardware.resource}, "
            f"registered in {simulated.registration_seconds:.2f} s",
            flush=True,
        )
        if simulated.metrics_url:
            print(f"NPU-Exporter metrics: {simulated.metrics_url}", flush=True)
        if args.once:
            return 0
        print("running; Ctrl-C to stop (objects stay; `superpod sim down` removes them)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    return 0


def _client(args: argparse.Namespace) -> client.KubeClient:
    from superpod.cluster import client

    from superpod_sandbox.sim import wire

    return wire.kube_client(client.credentials_from_kubeconfig(args.kubeconfig))


async def _down(args: argparse.Namespace) -> int:
    from superpod_sandbox.sim import control

    fleet_id = f"{args.profile}-{args.superpod_id}" if args.profile else None
    async with _client(args) as api:
        counts = await control.down(api, fleet_id)
    print(f"deleted {counts['nodes']} nodes, {counts['configmaps']} ConfigMaps, {counts['pods']} pods")
    return 0


async def _fault(args: argparse.Namespace) -> int:
    from superpod_sandbox.sim import control, devicefaults

    async with _client(args) as api:
        try:
            print(
                await control.inject(
                    api, args.node, devicefaults.Kind(args.kind), args.device, switch_port=args.port
                )
            )
        except devicefaults.FaultError as error:
            print(f"superpod sim fault: {error}", file=sys.stderr)
            return 1
    return 0


async def _heal(args: argparse.Namespace) -> int:
    from superpod_sandbox.sim import control, devicefaults

    async with _client(args) as api:
        try:
            kind = devicefaults.Kind(args.kind) if args.kind else None
            print(await control.heal(api, args.node, kind, args.device))
        except devicefaults.FaultError as error:
            print(f"superpod sim heal: {error}", file=sys.stderr)
            return 1
    return 0
