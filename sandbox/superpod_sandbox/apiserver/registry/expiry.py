"""Events expire, as kube-apiserver's `--event-ttl` (default one hour) makes them do.

A task deletes Events whose last timestamp (lastTimestamp, series.lastObservedTime, eventTime, or
creationTimestamp) is older than the TTL, so a long demo does not accumulate them and listing the Events of
one object (kubectl describe) stays cheap. Watchers see DELETED events, as with kube's etcd lease expiry.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from superpod_sandbox.apiserver.registry.semantics import State

Object = dict[str, Any]
EVENTS = ("", "events")
logger = logging.getLogger(__name__)


def _last_seen(event: Object) -> datetime.datetime | None:
    series = event.get("series") or {}
    for stamp in (event.get("lastTimestamp"), series.get("lastObservedTime"), event.get("eventTime"),
                  event["metadata"].get("creationTimestamp")):  # fmt: skip
        if isinstance(stamp, str) and stamp:
            try:
                parsed = datetime.datetime.fromisoformat(stamp)
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
    return None


def expire_once(api: State, ttl: float) -> int:
    """Delete the Events older than `ttl` seconds; return how many went."""
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=ttl)
    expired = [
        e for e in api.store.objects(EVENTS, None) if (seen := _last_seen(e)) is not None and seen < cutoff
    ]
    for event in expired:
        api.store.delete(EVENTS, event)
    return len(expired)


async def run(api: State, ttl: float) -> None:
    """Run until cancelled, checking every minute (or every half TTL when that is shorter)."""
    while True:
        await asyncio.sleep(min(60.0, ttl / 2))
        try:
            expire_once(api, ttl)
        except Exception:  # expiry must outlive a malformed Event
            logger.exception("event expiry pass failed")
