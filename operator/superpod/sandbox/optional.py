"""Sibling modules that may not exist yet in a checkout (written in parallel); None when absent.

Used for the schema, table, OpenAPI, protobuf and admission modules so the server keeps working, with less
fidelity, before they land. Once all have landed this indirection can go.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(name: str) -> Any:
    try:
        return importlib.import_module(f"superpod.sandbox.{name}")
    except ImportError:
        return None
