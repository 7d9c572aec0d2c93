"""The API server's CPU per heartbeat write: what a SuperCluster's kubelets and device plugins cost it at rest.

Starts `superpod sandbox` and `--superpods` simulated Atlas 950 SuperPoDs (`superpod sim up`, 1,024 nodes each)
whose kubelets and device plugins write every `--seconds` (a Node status and a device-info ConfigMap per node),
waits `--settle` seconds, then reads the API server's CPU time over `--measure` seconds and divides it by the
writes made in that time, counted on a watch of Nodes and one of ConfigMaps (the figure includes delivering
each write to the simulators' watches and to these two, as to one operator replica's). Everything it starts
binds 127.0.0.1 and is stopped by PID at the end.

    PYTHONPATH=. .venv/bin/python tools/measure_heartbeats.py [--superpods 4 --seconds 20 --measure 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

NODES_PER_SUPERPOD = 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise SystemExit(f"measure_heartbeats: {path.name} did not say {text!r} within {timeout:.0f} s")


class WriteCounter(threading.Thread):
    """Counts the MODIFIED events of one collection's watch while `counting` is set."""

    def __init__(self, port: int, path: str, counting: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.counting, self.count = port, path, counting, 0

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        connection.request("GET", f"{self.path}?limit=1", headers={"Authorization": "Bearer sandbox"})
        version = json.loads(connection.getresponse().read())["metadata"]["resourceVersion"]
        connection.request(
            "GET",
            f"{self.path}?watch=1&resourceVersion={version}",
            headers={"Authorization": "Bearer sandbox"},
        )
        for line in connection.getresponse():
            if self.counting.is_set() and line.startswith(b'{"type":"MODIFIED"'):
                self.count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--superpods", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="heartbeat and refresh period")
    parser.add_argument("--settle", type=float, default=25.0)
    parser.add_argument("--measure", type=float, default=30.0)
    args = parser.parse_args()
    # a TERM still stops what it started (the `finally` below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("measure_heartbeats: stopped"))
    cli = [sys.executable, "-m", "superpod.cli"]
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        kubeconfig = folder / "kubeconfig"
        try:
            server_log = folder / "sandbox.log"
            port = free_port()
            server = subprocess.Popen(
                [*cli, "sandbox", "--port", str(port), "--kubeconfig", str(kubeconfig)],
                stdout=server_log.open("w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            processes.append(server)
            wait_for(server_log, "kubeconfig", 30)
            logs = []
            for index in range(args.superpods):
                log = folder / f"sim{index}.log"
                logs.append(log)
                sim = [*cli, "sim", "up", "--profile", "atlas-950", "--superpod-id", str(index),
                       "--heartbeat-seconds", str(args.seconds), "--refresh-seconds", str(args.seconds),
                       "--kubeconfig", str(kubeconfig)]  # fmt: skip
                processes.append(subprocess.Popen(sim, stdout=log.open("w"), stderr=subprocess.STDOUT))
            for log in logs:
                wait_for(log, "running", 300)
            counting = threading.Event()
            counters = [
                WriteCounter(port, path, counting) for path in ("/api/v1/nodes", "/api/v1/configmaps")
            ]
            for counter in counters:
                counter.start()
            time.sleep(args.settle)
            load_before = os.getloadavg()[0]
            start = cpu_seconds(server.pid)
            counting.set()
            time.sleep(args.measure)
            counting.clear()
            used = cpu_seconds(server.pid) - start
            writes = sum(counter.count for counter in counters)
            due = args.superpods * NODES_PER_SUPERPOD * 2 / args.seconds * args.measure
            print(
                f"API server: {used:.2f} s of CPU over {args.measure:.0f} s for {writes} writes ({due:.0f} due): "
                f"{used / max(writes, 1) * 1000:.3f} ms per write (load {load_before:.1f} -> {os.getloadavg()[0]:.1f})"
            )
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
