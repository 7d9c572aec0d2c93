"""`superpod run` in a process forked from a server that has imported the operator once per test session.

Starting `python -m superpod.cli run` costs about 1.5 s of CPU before the operator does anything (the interpreter,
kopf and the kubernetes client it imports, pydantic models, every command module the CLI's parser imports);
the integration tests start an operator some 150 times. multiprocessing's forkserver imports all of that once;
each operator is then a fresh fork of that server running `superpod.cli.main(argv)`: a process of its own, with
its own PID, signals and exit code, its stdout and stderr in its log file. What the server has done before the
fork is importing modules, nothing else: no event loop, no thread, no connection, no configuration.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from superpod import cli

_CONTEXT = multiprocessing.get_context("forkserver")
_RUN = ("superpod.commands.run", "superpod.controller.operator", "superpod.controller.admission")
"""What `superpod run` imports before it starts the operator (commands.run imports the last two lazily)."""


def _preload() -> list[str]:
    """The modules the server imports: the CLI, every command module its parser imports, the operator's, this."""
    return ["superpod.cli", *(module for module, _ in cli.all_commands().values()), *_RUN, __name__]


def _main(argv: list[str], log: str, env: dict[str, str] | None) -> None:
    """In the forked process: its environment (`env`, else the test process's when the server started), stdout
    and stderr to the log (appended), then the command, its code the exit code."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.exit(cli.main(argv))


class Process:
    """A `superpod` command in a forked process, with what the tests use of asyncio.subprocess.Process."""

    def __init__(self, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        _CONTEXT.set_forkserver_preload(_preload())  # read when the server starts, by the first process
        # daemon: stopped at the end of the session should a test leave it running
        self._process = _CONTEXT.Process(
            target=_main, args=(list(argv), str(log), None if env is None else dict(env)), daemon=True
        )
        self._process.start()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs; its exit code, or -N when signal N ended it (as asyncio's)."""
        return self._process.exitcode

    def send_signal(self, number: int) -> None:
        if self.returncode is None:  # never a signal to a PID that may have been reused
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        while (code := self.returncode) is None:
            await asyncio.sleep(0.02)
        return code
