"""Two small helpers around kopf that several handler modules share."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf


def plain(body: kopf.Body) -> dict[str, Any]:
    """kopf's live Body as a plain dict copy (handlers keep and mutate it after kopf moves on)."""

    def thaw(value: Any) -> Any:
        if hasattr(value, "items"):
            return {k: thaw(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [thaw(v) for v in value]
        return value

    return {key: thaw(value) for key, value in body.items()}


async def wait_for_poke(wake: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    """Sleep in a daemon until `wake` is set, the daemon is stopped, or `timeout` seconds pass."""
    poke = asyncio.ensure_future(wake.wait())
    halt = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({poke, halt}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        poke.cancel()
        halt.cancel()
