"""Evicting pods through the Eviction API (`policy/v1` `pods/<name>/eviction`), disruption budgets honoured.

What empties a partition's devices uses this: a partition deleted with `deletionPolicy: EvictPods`, and the
preemption and defragmentation that move partitions. The caller owns the truth of which pods still run (its
own mirror of the pods, or `list_pods`) and hands them over each time it looks; `Evictions.evict(owner, pods)`
asks the API server to evict those that are due and returns a `Progress`: which pods remain, which evictions
were accepted now, which are refused and why, and when to call again. The caller writes its status and Events
from it (`Progress.summary`), and is done when `Progress.done`.

- An eviction is asked once per pod (by uid, with a uid precondition, so a new pod of the same name is never
  evicted in the old one's place); a pod that is already terminating is waited for, not evicted again.
- A refusal (429: a PodDisruptionBudget forbids it now; 403, 5xx, a timeout) is retried after a backoff that
  doubles per pod from `initial_backoff` to `max_backoff`, and never bypassed by a plain delete: the budget's
  owner decides when the pod may go. Its message is kept in `Progress.blocked` for the status and the Event.
- An accepted eviction whose pod still shows no deletion after `accepted_recheck` seconds is asked again (a
  lost reply, or a caller's stale mirror).
- 404: the pod is gone already.

`drain` is the loop for callers without a pod mirror: list, evict, report, wait, until every pod is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from superpod.api import common
from superpod.cluster import client

JSON = common.JSON
FINISHED = frozenset({"Succeeded", "Failed"})
INITIAL_BACKOFF = 1.0  # seconds before a refused eviction is asked again, doubled per refusal
MAX_BACKOFF = 30.0
ACCEPTED_RECHECK = 30.0  # seconds after an accepted eviction before it is asked again if the pod still runs
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where the eviction of one owner's pods stands after a call of `Evictions.evict`."""

    remaining: tuple[str, ...] = ()
    """Pods not gone yet (running, or terminating after their eviction), sorted by name."""
    evicted: tuple[str, ...] = ()
    """Pods whose eviction the API server accepted in this call (each one once: post an Event per call)."""
    blocked: tuple[tuple[str, str], ...] = ()
    """(pod, why) for pods whose eviction was refused and waits for its retry, for example a
    PodDisruptionBudget's "The disruption budget db needs 2 healthy pods and has 2 currently"."""
    retry_in: float | None = None
    """Seconds until the next eviction is due again; None when none is (every pod asked and accepted)."""

    @property
    def done(self) -> bool:
        """Every pod is gone."""
        return not self.remaining

    def summary(self, limit: int = 5) -> str:
        """One line for a status message or an Event: how many pods remain, which, and what blocks them."""
        if self.done:
            return "every pod is gone"
        names = ", ".join(self.remaining[:limit]) + (
            f" and {len(self.remaining) - limit} more" if len(self.remaining) > limit else ""
        )
        line = f"{len(self.remaining)} pod(s) still running: {names}"
        if self.blocked:
            pod, why = self.blocked[0]
            more = f" (and {len(self.blocked) - 1} more)" if len(self.blocked) > 1 else ""
            line += f"; eviction of {pod} refused{more}: {why}; retried with backoff"
        return line


@dataclasses.dataclass
class _Attempt:
    uid: str | None
    failures: int = 0
    next_at: float = 0.0  # monotonic time when the eviction may be asked (again)
    refusal: str | None = None  # why the last attempt was refused


class Evictions:
    """Evictions of pods, grouped by owner (for example the partition key they empty)."""

    def __init__(
        self,
        api: client.KubeClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        accepted_recheck: float = ACCEPTED_RECHECK,
        grace_period_seconds: int | None = None,
    ) -> None:
        self.api = api
        self.clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.accepted_recheck = accepted_recheck
        self.grace_period_seconds = grace_period_seconds  # None: each pod's own terminationGracePeriodSeconds
        self._owners: dict[str, dict[tuple[str, str], _Attempt]] = {}  # owner -> (namespace, pod) -> attempt

    async def evict(self, owner: str, pods: Iterable[JSON]) -> Progress:
        """Evict `pods` (full pod objects, as the caller last saw them) on behalf of `owner`.

        Pods that finished (Succeeded or Failed) hold nothing and are left alone. Call again whenever the pods
        change or `retry_in` passes; pods no longer passed are forgotten (gone, or not the owner's any more).
        """
        attempts = self._owners.setdefault(owner, {})
        seen: set[tuple[str, str]] = set()
        remaining: list[str] = []
        evicted: list[str] = []
        now = self.clock()
        for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
            metadata = pod["metadata"]
            if (pod.get("status") or {}).get("phase") in FINISHED:
                continue
            entry = (str(metadata.get("namespace") or ""), str(metadata["name"]))
            seen.add(entry)
            uid = metadata.get("uid")
            attempt = attempts.get(entry)
            if attempt is None or attempt.uid != uid:
                attempt = attempts[entry] = _Attempt(uid=uid)
            if metadata.get("deletionTimestamp"):  # terminating: wait for it
                attempt.refusal = None
                attempt.next_at = float("inf")
            elif attempt.next_at <= now and await self._ask(entry, attempt):
                if attempt.next_at == 0.0:  # a 404: gone already
                    continue
                evicted.append(entry[1])
            remaining.append(entry[1])
        for entry in set(attempts) - seen:
            del attempts[entry]
        if not attempts:
            self._owners.pop(owner, None)
        blocked = tuple(
            (entry[1], attempt.refusal) for entry, attempt in sorted(attempts.items()) if attempt.refusal
        )
        due = [attempt.next_at for attempt in attempts.values() if attempt.next_at != float("inf")]
        retry_in = max(0.0, min(due) - self.clock()) if due else None
        return Progress(tuple(sorted(remaining)), tuple(evicted), blocked, retry_in)

    async def _ask(self, entry: tuple[str, str], attempt: _Attempt) -> bool:
        """Ask for one eviction; True when it was accepted (or the pod is gone)."""
        namespace, name = entry
        delete_options: JSON = {}
        if attempt.uid:
            delete_options["preconditions"] = {"uid": attempt.uid}
        if self.grace_period_seconds is not None:
            delete_options["gracePeriodSeconds"] = self.grace_period_seconds
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": delete_options,
        }
        path = client.resource_path("v1", "pods", namespace, name, "eviction")
        try:
            await self.api.create(path, body)
        except client.ApiError as error:
            if error.status == 404:
                attempt.refusal, attempt.next_at = None, 0.0
                return True  # gone already
            if error.status == 409 and attempt.uid:  # the uid precondition: another pod of that name now
                attempt.refusal, attempt.next_at = None, float("inf")
                return False
            self._refused(attempt, _why(error))
            return False
        except (OSError, TimeoutError) as error:
            self._refused(attempt, f"the API server did not answer: {error}")
            return False
        attempt.failures, attempt.refusal = 0, None
        attempt.next_at = self.clock() + self.accepted_recheck
        logger.info("evicted pod %s/%s", namespace, name)
        return True

    def _refused(self, attempt: _Attempt, why: str) -> None:
        delay = min(self.max_backoff, self.initial_backoff * 2**attempt.failures)
        attempt.failures += 1
        attempt.refusal = why
        attempt.next_at = self.clock() + delay

    def forget(self, owner: str) -> None:
        """Drop what is known of `owner`'s evictions (it is gone, or gave up)."""
        self._owners.pop(owner, None)

    def owners(self) -> list[str]:
        """The owners with evictions under way."""
        return sorted(self._owners)


def _why(error: client.ApiError) -> str:
    """The reason of a refused eviction, as the API server gave it (a disruption budget's own words)."""
    details = error.body.get("details") if isinstance(error.body, dict) else None
    for cause in (details or {}).get("causes") or []:
        if cause.get("message"):
            return str(cause["message"])
    message = error.body.get("message") if isinstance(error.body, dict) else None
    return str(message or f"HTTP {error.status}")


async def list_pods(api: client.KubeClient, namespace: str, label_selector: str) -> list[JSON]:
    """The pods of `namespace` matching `label_selector` (for `drain`)."""
    return await api.list(client.resource_path("v1", "pods", namespace), labelSelector=label_selector)


async def drain(
    evictions: Evictions,
    owner: str,
    pods: Callable[[], Awaitable[list[JSON]]],
    *,
    on_progress: Callable[[Progress], Awaitable[Any]] | None = None,
    poll: float = 1.0,
    timeout: float | None = None,
) -> Progress:
    """Evict what `pods()` returns until nothing is left, or `timeout` seconds pass; the last progress.

    `on_progress` is awaited after every round whose progress differs from the last (a status, an Event).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: Progress | None = None
    while True:
        progress = await evictions.evict(owner, await pods())
        shown = dataclasses.replace(progress, retry_in=None)
        if on_progress is not None and shown != last:
            await on_progress(progress)
        last = shown
        if progress.done:
            evictions.forget(owner)
            return progress
        if deadline is not None and time.monotonic() >= deadline:
            return progress
        wait = poll if progress.retry_in is None else min(poll, max(progress.retry_in, 0.05))
        await asyncio.sleep(wait)
