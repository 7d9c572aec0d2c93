"""CPU of one operator replica per Node status report and per device-info ConfigMap refresh it is sent.

Every replica watches every Node (admission judges node selection against all of them) and every device-info
ConfigMap (they carry no SuperPoD label to filter by), and the kubelets and device plugins rewrite each of them
every few minutes: at 64 Atlas 950 SuperPoDs, 65,536 of each every 300 s, about 440 events a second on every
replica. This measures what one such event costs a replica, through the operator's own code: the client's
watch stream (aiohttp, lines, JSON), the reflector and its reduction of each object (`compact_node`,
`deviceinfo.compact`), the mirror's handlers and the admission's membership view, wired as `superpod run`
wires them (`fleet.Fleet`, `membership.Membership`).

1. Record: a sandbox API server (in this process) and the simulator's kubelets and device plugins
   (`sim.publisher`, as `bench e2e` runs them: nodes registered with the isolation taint) register `--nodes`
   nodes of `--profile`, their ConfigMaps and their SuperPod; then every node reports its status and has its
   ConfigMap refreshed `--rounds` times, the writes the simulator makes every `--heartbeat-seconds` (a new
   `lastHeartbeatTime`; a new `UpdateTime` and `CheckCode`). The lists and the watch streams of Nodes and
   ConfigMaps are kept as the API server sent them.
2. Replay: a server in a child process answers the operator's lists and watches with those bytes; a fresh
   fleet in this process lists, builds its SuperPod, then is sent the recorded Node events, then the ConfigMap
   events. The CPU this process spends until the last event is handled (`time.process_time`), divided by the
   number of events, is the figure; the child's CPU is not counted. `--repeat` replays, medians printed.

    PYTHONPATH=. .venv/bin/python tools/measure_watch_events.py [--profile atlas-950 --nodes 1024 --rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from superpod.api import common
from superpod.api import superpod as api_superpod
from superpod.cluster import client, deviceinfo
from superpod.controller import fleet as fleet_module
from superpod.controller import membership

JSON = dict[str, Any]
NODES = "/api/v1/nodes"
CONFIGMAPS = client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE)
SUPERPODS = client.resource_path(common.API_VERSION, api_superpod.PLURAL)
RECORDED = {"nodes": NODES, "configmaps": CONFIGMAPS}  # what is replayed, by file name
LISTED = {**RECORDED, "superpods": SUPERPODS}
EMPTY = b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}'


# ---- 1. record -------------------------------------------------------------------------------------------


async def record(args: argparse.Namespace, into: Path) -> dict[str, int]:
    from superpod_sandbox.commands import bench_cluster
    from superpod_sandbox.sim import publisher
    from superpod_sandbox.sim import simulator as sim_fleet

    from tests.integration.operator.conftest import sandbox_cluster

    name = "bench-0"
    async with sandbox_cluster() as (sandbox, api):
        options = sim_fleet.Options(register_taints=(bench_cluster.isolation_taint(name),))
        fleet = sim_fleet.Fleet(args.profile, api=api, nodes=args.nodes, options=options)
        await fleet.register()
        try:
            body = {
                "apiVersion": common.API_VERSION,
                "kind": api_superpod.KIND,
                "metadata": {"name": name},
                "spec": {"profile": args.profile, "superPodID": 0},
            }
            await api.create(SUPERPODS, body)
            params = {CONFIGMAPS: {"labelSelector": deviceinfo.CONSUMER_SELECTOR}}
            counts: dict[str, int] = {}
            async with aiohttp.ClientSession(base_url=sandbox.url) as session:
                version = ""
                for file, path in LISTED.items():
                    async with session.get(path, params=params.get(path, {})) as response:
                        raw = await response.read()
                    (into / f"{file}.list").write_bytes(raw)
                    version = json.loads(raw)["metadata"]["resourceVersion"]
                expected = len(fleet.node_names) * args.rounds
                readers = {
                    file: asyncio.create_task(
                        _read_watch(
                            session, path, {**params.get(path, {}), "resourceVersion": version}, expected
                        )
                    )
                    for file, path in RECORDED.items()
                }
                await asyncio.sleep(0.2)  # the watches are open
                assert fleet.publisher is not None
                for _ in range(args.rounds):
                    await publisher.bounded(32, fleet.publisher.heartbeat, list(fleet.node_names))
                    await publisher.bounded(32, fleet.publisher.publish, list(fleet.node_names))
                for file, reader in readers.items():
                    lines = await asyncio.wait_for(reader, 120)
                    (into / f"{file}.watch").write_bytes(b"".join(lines))
                    counts[file] = len(lines)
        finally:
            await fleet.stop()
    return counts


async def _read_watch(
    session: aiohttp.ClientSession, path: str, params: dict[str, str], count: int
) -> list[bytes]:
    """The first `count` lines of a watch, as sent."""
    lines: list[bytes] = []
    async with session.get(
        path, params={**params, "watch": "true"}, timeout=aiohttp.ClientTimeout()
    ) as response:
        async for line in client.json_lines(response.content):
            lines.append(line + b"\n")
            if len(lines) == count:
                return lines
    raise AssertionError(f"the watch of {path} ended after {len(lines)} of {count} events")


# ---- 2. replay: the server (a child process) -------------------------------------------------------------


async def serve(folder: Path) -> None:
    """Lists from `<name>.list`; the first watch of a recorded collection gets `<name>.watch` once `go-<name>`
    exists, any other watch stays open without an event until the client leaves."""
    lists = {path: (folder / f"{file}.list").read_bytes() for file, path in LISTED.items()}
    watches = {path: file for file, path in RECORDED.items()}
    served: set[str] = set()

    async def answer(writer: asyncio.StreamWriter, body: bytes, *, close: bool = False) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body)
        await writer.drain()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                while (await reader.readline()).strip():
                    pass  # headers (requests here carry no body)
                target = urlsplit(line.split()[1].decode())
                if parse_qs(target.query).get("watch") != ["true"]:
                    await answer(writer, lists.get(target.path, EMPTY))
                    continue
                file = watches.get(target.path)
                if file is None or target.path in served:
                    await reader.read()  # no event: open until the client goes
                    return
                served.add(target.path)
                while not (folder / f"go-{file}").exists():
                    await asyncio.sleep(0.005)
                await answer(writer, (folder / f"{file}.watch").read_bytes(), close=True)
                return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    (folder / "port.tmp").write_text(str(port))
    (folder / "port.tmp").rename(folder / "port")
    async with server:
        await server.serve_forever()


# ---- 2. replay: the operator's side (this process) -------------------------------------------------------


def _last(folder: Path, file: str) -> tuple[str, str, int]:
    """The key and resourceVersion of the last event of a recorded watch, and how many events it holds."""
    lines = (folder / f"{file}.watch").read_bytes().splitlines()
    metadata = json.loads(lines[-1])["object"]["metadata"]
    key = f"{metadata['namespace']}/{metadata['name']}" if metadata.get("namespace") else metadata["name"]
    return key, metadata["resourceVersion"], len(lines)


async def replay(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    for stale in folder.glob("go-*"):
        stale.unlink()
    (folder / "port").unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(folder)])
    try:
        while not (folder / "port").exists():
            await asyncio.sleep(0.02)
            if server.poll() is not None:
                raise AssertionError("the replay server exited")
        url = f"http://127.0.0.1:{(folder / 'port').read_text()}"
        codec = {"loads": json.loads, "dumps": json.dumps} if args.decoder == "json" else {}
        async with client.KubeClient(client.Credentials(server=url), **codec) as api:  # type: ignore[arg-type]
            fleet = fleet_module.Fleet(api)
            view = membership.Membership()  # every replica's admission keeps it (controller.admission)
            fleet.node_listeners.append(view.on_node)
            fleet.superpod_listeners.append(view.on_superpod)
            await fleet.start()
            try:
                mirrors = {mirror.path: mirror for mirror in fleet.mirror.reflectors}
                result: dict[str, float] = {}
                for file, path in RECORDED.items():
                    key, version, count = _last(folder, file)
                    objects = mirrors[path].objects
                    profile = cProfile.Profile() if args.cprofile else None
                    began = time.process_time()
                    if profile is not None:
                        profile.enable()
                    (folder / f"go-{file}").touch()
                    deadline = time.monotonic() + 300
                    while (objects.get(key) or {}).get("metadata", {}).get("resourceVersion") != version:
                        assert time.monotonic() < deadline, f"{file}: the last event not handled in 300 s"
                        await asyncio.sleep(0.002)
                    result[file] = (time.process_time() - began) * 1e6 / count
                    if profile is not None:
                        profile.disable()
                        print(f"---- {file}: where the time went (cProfile, which slows it)", file=sys.stderr)
                        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(
                            args.cprofile
                        )
                    result[f"{file}Events"] = count
            finally:
                await fleet.stop()
        return result
    finally:
        server.terminate()
        server.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default="atlas-950", help="the simulated nodes' profile (default atlas-950)"
    )
    parser.add_argument(
        "--nodes", type=int, default=1024, help="nodes (default 1024, one Atlas 950 SuperPoD)"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="status reports and refreshes of each (default 4)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="replays (default 5); medians printed")
    parser.add_argument("--decoder", choices=("default", "json"), default="default",
                        help="the client's JSON codec: its default, or the standard library's")  # fmt: skip
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="print the N functions that took the most time in each replay (cProfile)")  # fmt: skip
    parser.add_argument("--dir", type=Path, help="keep the recording here (default: a temporary directory)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        await serve(args.serve)
        return
    folder = args.dir or Path(tempfile.mkdtemp(prefix="superpod-watch-events-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "nodes.watch").exists():
        counts = await record(args, folder)
        print(f"recorded {counts} in {folder}", file=sys.stderr)
    sizes = {file: os.path.getsize(folder / f"{file}.watch") for file in RECORDED}
    runs = [await replay(folder, args) for _ in range(args.repeat)]
    load = os.getloadavg()
    for file in RECORDED:
        values = sorted(run[file] for run in runs)
        count = int(runs[0][f"{file}Events"])
        print(
            f"{file:<10} {count} events of {sizes[file] / count / 1024:.1f} KB: CPU per event "
            f"median {statistics.median(values):.1f} us (runs: {', '.join(f'{v:.1f}' for v in values)})"
        )
    print(f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; decoder {args.decoder}")


if __name__ == "__main__":
    asyncio.run(main())
