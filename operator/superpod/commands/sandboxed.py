"""The commands that live in the superpod-sandbox distribution: offered when it is installed, a hint otherwise.

`sandbox`, `sim`, `demo` and `bench e2e` need the in-memory API server or the simulated fleet, which are not
part of the operator (nor of its image). The operator never imports them by name (an import-linter contract):
it looks the package up at run time, and without it each of these commands answers with one line saying what
to install and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

PACKAGE = "superpod_sandbox.commands"
NAMES = ("demo", "sandbox", "sim")  # and `bench e2e`, offered by `superpod bench`
INSTALL = "pip install -e ./sandbox"
MISSING = "(not installed: needs the superpod-sandbox package)"


def package() -> ModuleType | None:
    """`superpod_sandbox.commands` if the distribution is installed, else None (any other failure is raised)."""
    try:
        return importlib.import_module(PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == "superpod_sandbox" or exc.name.startswith(PACKAGE)):
            return None
        raise


def hint(command: str) -> str:
    return f"superpod {command}: needs the superpod-sandbox package ({INSTALL})"


def add_missing(parser: argparse.ArgumentParser, command: str) -> None:
    """Mark `parser` (made with add_help=False) as a missing command: `superpod.cli` ignores its arguments,
    so `superpod demo --once` gets the hint rather than a usage error."""
    parser.set_defaults(_missing=command)


def refuse(command: str) -> int:
    print(hint(command), file=sys.stderr)
    return 1
