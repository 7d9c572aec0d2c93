"""The partitions of one SuperPod waiting for room, oldest first, each with its own backoff. Pure (no clock).

A partition waits here from the moment it cannot be placed (or its SuperPod is not ready) until it is placed,
deleted or released. The SuperPod's daemon tries the `due` ones in creation order whenever capacity may have
changed. Oldest means created first and, among partitions created in the same second (creationTimestamp has
one-second resolution), first seen by the operator (the watch delivers them in the order the API server stored
them), never the name: first come, first served. A partition whose try raised (its status write refused, say) is not due again for a delay of its own,
doubling from `FIRST` to `MOST` seconds, while the ones behind it are tried: one partition the API keeps refusing
must not hold up every other pending partition of the SuperPod.
"""

from __future__ import annotations

import itertools

FIRST = 2.0  # seconds before a partition whose try raised is due again; doubles each time
MOST = 60.0


class PendingQueue:
    """Waiting partitions by key (`namespace/name`), in creation order."""

    def __init__(self) -> None:
        # key -> (creationTimestamp, arrival, key): the order
        self._waiting: dict[str, tuple[str, int, str]] = {}
        self._arrival: dict[str, int] = {}  # key -> when the operator first saw it, kept until `forget`
        self._counter = itertools.count()
        self._backoff: dict[str, tuple[float, float]] = {}  # key -> (when it is due again, current delay)

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def keys(self) -> list[str]:
        """Every waiting partition, oldest first."""
        return [key for _, _, key in sorted(self._waiting.values())]

    def seen(self, key: str) -> None:
        """The operator has seen `key` (waiting or not): its arrival, the tie-break within a second, is now."""
        self._arrival.setdefault(key, next(self._counter))

    def add(self, key: str, created: str) -> None:
        """Queue `key` (created at `created`, RFC 3339); a partition already waiting keeps its place."""
        self.seen(key)
        self._waiting.setdefault(key, (created, self._arrival[key], key))

    def remove(self, key: str) -> None:
        """`key` no longer waits (placed, deleted): its backoff goes too."""
        self._waiting.pop(key, None)
        self._backoff.pop(key, None)

    def forget(self, key: str) -> None:
        """`key` is gone for good (deleted): it waits no more and its arrival is forgotten."""
        self.remove(key)
        self._arrival.pop(key, None)

    def due(self, now: float) -> list[str]:
        """The waiting partitions to try at monotonic time `now`, oldest first."""
        for key in set(self._backoff) - set(self._waiting):
            del self._backoff[key]
        return [key for key in self.keys() if self._backoff.get(key, (0.0, 0.0))[0] <= now]

    def failed(self, key: str, now: float) -> float:
        """A try of `key` raised at `now`: the seconds until it is due again (its delay, doubled)."""
        _, delay = self._backoff.get(key, (0.0, 0.0))
        delay = min(MOST, max(FIRST, 2 * delay))
        self._backoff[key] = (now + delay, delay)
        return delay

    def succeeded(self, key: str) -> None:
        """A try of `key` went through (placed, or pending with its reason written): no backoff."""
        self._backoff.pop(key, None)
