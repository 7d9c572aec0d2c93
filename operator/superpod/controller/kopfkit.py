"""Small helpers around kopf that several handler modules share, and the storages kopf keeps its state in."""

from __future__ import annotations

import asyncio
import contextlib
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


class Sleeper:
    """The sleeps of one daemon loop between its passes: each until the loop is poked, the daemon is stopped,
    or a timeout passes.

        async with kopfkit.Sleeper(stopped) as sleeper:
            while not stopped:
                wake.clear()
                ...  # a pass
                await sleeper.until_poked(wake, timeout)

    kopf's `stopped.wait()` makes a task at every call, and waiting on it beside the poke made two more (the
    rank-table loop sleeps twice per placement). Here one task, for as long as the loop runs, sets the event
    being slept on when the daemon is stopped, and each sleep waits on that one `asyncio.Event`.
    """

    def __init__(self, stopped: kopf.DaemonStopped) -> None:
        self.stopped = stopped
        self._sleeping_on: asyncio.Event | None = None
        self._relay: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sleeper:
        self._relay = asyncio.create_task(self._wake_when_stopped(), name=f"stop relay of {self.stopped!r}")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay

    async def _wake_when_stopped(self) -> None:
        await self.stopped.wait()
        if self._sleeping_on is not None:
            self._sleeping_on.set()

    async def until_poked(self, wake: asyncio.Event, timeout: float | None) -> None:
        """Return when `wake` is set (at once if it is), the daemon is stopped, or `timeout` seconds pass
        (None: no timeout)."""
        if self.stopped or wake.is_set():
            return
        self._sleeping_on = wake
        try:
            async with asyncio.timeout(timeout):
                await wake.wait()
        except TimeoutError:
            pass
        finally:
            self._sleeping_on = None


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
