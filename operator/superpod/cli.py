"""The `superpod` command line (also installed as `kubectl-superpod`).

Each subcommand lives in its own module under `superpod.commands`; a command module imports its heavy
dependencies (kopf, aiohttp, matplotlib) inside `run`, so `superpod --help` and `superpod crds` stay fast.
`sandbox`, `sim` and `demo` live in the superpod-sandbox distribution (`superpod_sandbox.commands`), offered
when it is installed (`commands/sandboxed.py`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol

from superpod import __version__
from superpod.commands import sandboxed

# name -> (module under superpod.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "map": (
        "map",
        "print the live occupancy map of a SuperPod (rack x node x device, one letter per partition)",
    ),
    "run": ("run", "run the operator (kopf): discover SuperPods and place partitions"),
    "crds": (
        "crds",
        "write the CustomResourceDefinitions generated from the API models (--check: diff only)",
    ),
    "plan": (
        "plan",
        "offline what-if: place a SuperPod's partitions and print the placements and an occupancy map",
    ),
    "defrag": (
        "defrag",
        "defragmentation what-if (plan): the moves that would reopen the largest block per tier, with maps",
    ),
    "bench": ("bench", "placement benchmarks: generate and replay churn traces, measure decision latency"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="superpod",
        description="Topology-aware partitions of Huawei Ascend SuperPoDs on Kubernetes.",
    )
    parser.add_argument("--version", action="version", version=f"superpod {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in all_commands().items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=module_name)
        _command_module(module_name).add_arguments(command_parser)
    if sandboxed.package() is None:
        for name in sandboxed.NAMES:
            sandboxed.add_missing(sub.add_parser(name, help=sandboxed.MISSING, add_help=False), name)
    return parser


def all_commands() -> dict[str, tuple[str, str]]:
    """name -> (full module name, one-line help): the operator's commands, and the sandbox's when installed."""
    found = {name: (f"superpod.commands.{module}", text) for name, (module, text) in COMMANDS.items()}
    extra = sandboxed.package()
    if extra is not None:
        sandbox_commands: dict[str, tuple[str, str]] = extra.COMMANDS
        found.update(
            {
                name: (f"{sandboxed.PACKAGE}.{module}", text)
                for name, (module, text) in sandbox_commands.items()
            }
        )
    return found


class _Command(Protocol):
    """The shape of a command module."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _command_module(module_name: str) -> _Command:
    module: _Command = importlib.import_module(module_name)
    return module


def error_line(error: BaseException) -> str:
    """One readable line for an error a command reports: its type and its message on one line, the type alone
    when it has no message (a bare `TimeoutError()` would otherwise print nothing)."""
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "_missing", None):
        return sandboxed.refuse(args._missing)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    try:
        return _command_module(args._module).run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
