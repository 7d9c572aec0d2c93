"""Ctrl-C for a command that starts processes of its own (`superpod bench e2e`): it and they stop promptly.

- The processes (the sandbox API server, the operator replicas) start in sessions of their own (`spawn`), so a
  terminal's Ctrl-C reaches the command alone. The command stops them as its `finally` blocks unwind, in its
  order: the load and the simulated fleets first (the API server still answers them), then the operators, then
  the API server (`stop`: SIGTERM to each group at once, SIGKILL to what still runs after a grace).
- `run` turns SIGINT, SIGTERM and SIGHUP into a cancellation of the command's main task, as asyncio's runner
  does for SIGINT, and adds a deadline: if the command has not ended `DEADLINE` seconds after the signal (a
  cleanup waiting on something that no longer answers, a task that does not take its cancellation), every
  process it started is killed and the command exits at once. A second signal does that without waiting. After
  the first signal the command's log lines are dropped (a cluster being taken down says nothing a user needs),
  and the command prints one line (`Interrupted`'s) and exits with 130.

A `kill -9` of the command leaves its processes running (nothing runs in it to stop them): their logs are in the
command's `--dir`, named by what they are; stop them by their PIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Coroutine, Mapping
from types import FrameType
from typing import IO, Any, TypeVar

T = TypeVar("T")
DEADLINE = 8.0  # seconds from the signal to a forced exit
GRACE = 3.0  # seconds a stopped process gets between SIGTERM and SIGKILL
EXIT_CODE = 130  # what a shell reports for a command ended by SIGINT
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # the children, in sessions of their own, get none

_spawned: list[asyncio.subprocess.Process] = []  # every process `spawn` started in this command


class Interrupted(Exception):
    """The command was stopped by a signal; every process it started is gone."""

    def __init__(self, command: str, processes: int) -> None:
        super().__init__(f"{command}: interrupted; it and the {processes} process(es) it started are stopped")


async def spawn(
    *argv: str, stdout: IO[bytes] | int | None = None, env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start `argv` in a session (and process group) of its own, its stderr joined to `stdout`; `env`: its
    environment (default: this process's)."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=stdout, stderr=asyncio.subprocess.STDOUT, start_new_session=True, env=env
    )
    _spawned.append(process)
    return process


async def stop(processes: list[asyncio.subprocess.Process], grace: float = GRACE) -> None:
    """SIGTERM to every process's group at once; SIGKILL after `grace` seconds to the groups still running."""
    running = [process for process in processes if process.returncode is None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    if not running:
        return
    waits = [asyncio.ensure_future(process.wait()) for process in running]
    _, late = await asyncio.wait(waits, timeout=grace)
    if late:
        for process in running:
            _signal_group(process, signal.SIGKILL)
        await asyncio.gather(*waits)


def run(main: Coroutine[Any, Any, T], command: str) -> T:
    """`codec.run(main)`, stopped by SIGINT or SIGTERM as the module docstring says; raises `Interrupted`."""
    signals: list[int] = []
    deadline: list[threading.Timer] = []
    ending = threading.Lock()  # held by whichever ends the command: the forced exit or `run` itself
    before = len(_spawned)

    def force() -> None:
        """The deadline passed, or a second signal: kill what was started and exit now."""
        if not ending.acquire(blocking=False):
            return  # the command is ending on its own and says so
        _kill_all()
        sys.stderr.write(f"{Interrupted(command, len(_spawned) - before)}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            signals.append(signum)
            if len(signals) > 1:
                force()
            logging.disable(logging.CRITICAL)
            timer = threading.Timer(DEADLINE, force)
            timer.daemon = True
            timer.start()
            deadline.append(timer)
            loop.call_soon_threadsafe(task.cancel)

        previous = {signum: signal.signal(signum, on_signal) for signum in SIGNALS}
        try:
            return await main
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    from superpod.cluster import heap

    from superpod_sandbox import codec  # uvloop: imported where used (`superpod --help` loads this module)

    heap.freeze_survivors()  # a bench's views of its fleet are long-lived: its own pauses would be measured

    try:
        result = codec.run(guarded())
    except (asyncio.CancelledError, Exception):
        if not signals:
            raise
    else:
        if not signals:
            return result
    ending.acquire()  # a forced exit under way ends the process here
    for timer in deadline:
        timer.cancel()
    _kill_all()  # what a cleanup cut short by the cancellation left running
    raise Interrupted(command, len(_spawned) - before)


def _kill_all() -> None:
    """SIGKILL to the group of every started process that has not been reaped."""
    for process in _spawned:
        _signal_group(process, signal.SIGKILL)


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
