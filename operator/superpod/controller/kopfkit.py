"""Small helpers around kopf that several handler modules share, and the storages kopf keeps its state in."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

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


class SpecDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base of a partition, stored nowhere: derived from the object itself.

    kopf keeps the last handled essence of each object to tell a create from an update; by default it writes it
    as an annotation, one patch (and one watch event that kopf processes again) per create, and builds it by
    deep-copying the whole body, status included, on every event. A partition's spec is immutable (its CRD says
    so) and the operator's own status write gives it a `status.phase`, so a partition with a phase has been
    handled and its essence cannot have changed: the essence is the spec, and the stored one is the current one.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        if extra_fields:  # a handler filtering on fields: kopf's full essence (none of ours does)
            return super().build(body=body, extra_fields=extra_fields)
        return cast(kopf.BodyEssence, {"spec": copy.deepcopy(dict(body.get("spec") or {}))})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if (body.get("status") or {}).get("phase"):
            return self.build(body=body)
        return None  # never handled: kopf calls the create handler

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        pass  # nothing to write: `fetch` derives it


class UnmarkedProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's progress annotations without its `<prefix>/kopf-managed: yes` marker.

    kopf records a handler's progress and then purges the record in the same patch when the handler succeeds
    at once, so the usual create writes nothing, except this marker, which alone would cost a patch per
    object. Retries of failed handlers are still recorded (and removed) as before.
    """

    def _store_marker(self, prefix: str | None, patch: kopf.Patch, body: kopf.Body) -> None:
        pass
