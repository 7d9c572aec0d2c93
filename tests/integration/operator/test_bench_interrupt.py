"""Ctrl-C stops `superpod bench e2e` and every process it started (the sandbox API server, the operator) within a
few seconds, and the bench says so in one line.

The smallest run that has every process up: a CloudMatrix 384 (48 nodes, the smallest simulated SuperPoD), one
replica, a paced phase slow enough to be interrupted in the middle of it. The signal goes either to the whole
process group, as a terminal's Ctrl-C does, or to the bench alone (`kill -INT <pid>`) while its operator does
not answer a SIGTERM (stopped with SIGSTOP, as a replica stuck in its shutdown): the bench must stop its
children itself, and not wait on one that does not go.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

STOPPED_WITHIN = 10.0  # seconds from the signal to the bench and all its children gone


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def is_operator(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and b"superpod.cli" in argv


@pytest.mark.parametrize(
    "whole_group",
    [True, False],
    ids=["a terminal's Ctrl-C (the process group)", "kill -INT of the bench alone, its operator stuck"],
)
async def test_ctrl_c_stops_the_bench_and_every_process_it_started_with_one_line(tmp_path, whole_group):
    bench = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "superpod.cli", "bench", "e2e", "--profile", "cloudmatrix-384",
        "--partitions", "400", "--rate", "4", "--burst", "1", "--timeout", "120", "--dir", str(tmp_path),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert bench.stderr is not None
    children: set[int] = set()
    try:
        lines: list[str] = []
        # up to setup's last line (the isolation taint): the load starts after it
        while not any("isolation taint:" in line for line in lines):
            line = (await asyncio.wait_for(bench.stderr.readline(), 120)).decode()
            assert line, f"the bench ended before its cluster was up: {''.join(lines)}"
            lines.append(line)
        await asyncio.sleep(2.0)  # into the paced phase: partitions applied, placed, watched
        children = descendants(bench.pid)
        assert len(children) >= 2, children  # the sandbox API server and the operator at least

        if whole_group:
            os.killpg(bench.pid, signal.SIGINT)
        else:
            stuck = [pid for pid in children if is_operator(pid)]
            assert stuck, children
            for pid in stuck:
                os.kill(pid, signal.SIGSTOP)
            bench.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = await asyncio.wait_for(bench.communicate(), STOPPED_WITHIN)
        while any(alive(pid) for pid in children) and time.monotonic() - sent < STOPPED_WITHIN:
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - sent
    finally:  # whatever the outcome, nothing this test started stays
        for pid in [bench.pid, *children]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if bench.returncode is None:
            await bench.wait()
    assert not [pid for pid in children if alive(pid)], "processes the bench started outlived it"
    assert elapsed < STOPPED_WITHIN
    said = [line for line in err.decode().splitlines() if line.strip()]
    assert len(said) == 1, said
    assert said[0].startswith("superpod bench e2e: interrupted"), said
    assert bench.returncode == 130
