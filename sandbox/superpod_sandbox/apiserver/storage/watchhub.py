"""Watch fan-out: a bounded event history per resource and the watchers subscribed to it.

Events keep the global resourceVersion they were written at. A watch from resourceVersion N replays the
history after N and then follows live events; when events after N have already been evicted, the watch is
refused with 410 Expired, as kube-apiserver's watch cache does. Like its cache (sized since 1.19 to hold
75 s of events, up to 100 x 1,024), a history keeps its last `size` events and, beyond them, every event
younger than `fresh_seconds`, at most `UPPER_BOUND`: a fixed count covered seconds of a SuperCluster's
writes, so a replica whose list took longer found its watch expired, listed again, and again. Watchers are
indexed by resource, so publishing an event touches only the watchers of that resource.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry.resources import GroupResource

Object = dict[str, Any]
Predicate = Callable[[Object], bool]


@dataclasses.dataclass(frozen=True)
class Event:
    """A change to one object: the object after it (the last state for DELETED) and before it."""

    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    object: Object
    old: Object | None = None


LabelRequirement = tuple[str, frozenset[str]]
"""A label key a watcher's selector requires to have one of some values (`selectorparser.label_values`)."""


class Watcher:
    """One client's subscription: filters events by namespace and predicate, queues what matches.

    `label`: a requirement its predicate implies, by which the hub offers it only events of objects labelled so
    (before or after the change)."""

    def __init__(
        self, namespace: str | None, predicate: Predicate | None, label: LabelRequirement | None = None
    ) -> None:
        self.namespace = namespace
        self.predicate = predicate
        self.label = label
        self.queue: asyncio.Queue[tuple[str, Object]] = asyncio.Queue()

    def _matches(self, obj: Object | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate is None or self.predicate(obj)

    def offer(self, event: Event) -> None:
        now = self._matches(event.object)
        if event.type == "MODIFIED" and (self.predicate is not None):
            before = self._matches(event.old)
            # An object that stops (starts) matching a selector leaves (enters) the watched set.
            if before and not now:
                self.queue.put_nowait(("DELETED", event.object))
                return
            if now and not before:
                self.queue.put_nowait(("ADDED", event.object))
                return
        if now:
            self.queue.put_nowait((event.type, event.object))


UPPER_BOUND = 100 * 1024
"""The most events a history keeps, however young (kube's watch cache's upper bound)."""


class _History:
    def __init__(self) -> None:
        self.events: collections.deque[Event] = collections.deque()
        self.times: collections.deque[float] = collections.deque()  # when each was published
        self.evicted_up_to = 0  # resourceVersion of the newest event no longer held

    def evict(self, size: int, fresh_until: float) -> None:
        """Drop the oldest events beyond `size` that were published before `fresh_until`, and any beyond
        `UPPER_BOUND`."""
        events, times = self.events, self.times
        while len(events) > size and (times[0] < fresh_until or len(events) > UPPER_BOUND):
            self.evicted_up_to = events.popleft().resource_version
            times.popleft()


class Hub:
    """Histories and watchers, per resource."""

    def __init__(
        self, history_size: int, fresh_seconds: float = 75.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.history_size = history_size
        self.fresh_seconds = fresh_seconds
        self.clock = clock
        self._histories: dict[GroupResource, _History] = {}
        self._watchers: dict[GroupResource, set[Watcher]] = {}  # all of them
        self._unlabelled: dict[GroupResource, set[Watcher]] = {}  # offered every event
        # resource -> label key -> value -> the watchers requiring it: 64 simulated SuperPoDs each watch their
        # Nodes by label, and testing every Node's heartbeat against all 64 selectors was a fifth of the API server
        self._by_label: dict[GroupResource, dict[str, dict[str, set[Watcher]]]] = {}

    def publish(self, resource: GroupResource, event: Event) -> None:
        history = self._histories.get(resource)
        if history is None:
            history = self._histories[resource] = _History()
        now = self.clock()
        history.events.append(event)
        history.times.append(now)
        history.evict(self.history_size, now - self.fresh_seconds)
        for watcher in self._unlabelled.get(resource, ()):
            watcher.offer(event)
        by_key = self._by_label.get(resource)
        if by_key:
            for watcher in _labelled(by_key, event):
                watcher.offer(event)

    def subscribe(
        self,
        resource: GroupResource,
        since: int | None,
        namespace: str | None,
        predicate: Predicate | None,
        label: LabelRequirement | None = None,
    ) -> Watcher:
        """A watcher that first receives the history after `since` (None: nothing) and then live events.

        `label` must be implied by `predicate` (an object without it never matches). Raises 410 Expired when
        events after `since` were evicted. Runs without awaiting, so no event can fall between the replay and
        the subscription.
        """
        watcher = Watcher(namespace, predicate, label)
        history = self._histories.get(resource)
        if since is not None and history is not None:
            if since < history.evicted_up_to:
                raise errors.expired(f"too old resource version: {since} ({history.evicted_up_to + 1})")
            # from the newest back to `since`: a watch resumes near the end of a history that holds 75 s
            replay = list(itertools.takewhile(lambda e: e.resource_version > since, reversed(history.events)))
            for event in reversed(replay):
                watcher.offer(event)
        self._watchers.setdefault(resource, set()).add(watcher)
        if label is None:
            self._unlabelled.setdefault(resource, set()).add(watcher)
        else:
            by_value = self._by_label.setdefault(resource, {}).setdefault(label[0], {})
            for value in label[1]:
                by_value.setdefault(value, set()).add(watcher)
        return watcher

    def unsubscribe(self, resource: GroupResource, watcher: Watcher) -> None:
        watchers = self._watchers.get(resource)
        if watchers is None or watcher not in watchers:
            return
        watchers.discard(watcher)
        if watcher.label is None:
            self._unlabelled[resource].discard(watcher)
            return
        key, values = watcher.label
        by_key = self._by_label[resource]
        for value in values:
            by_key[key][value].discard(watcher)
            if not by_key[key][value]:
                del by_key[key][value]
        if not by_key[key]:
            del by_key[key]

    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())


def _labelled(by_key: dict[str, dict[str, set[Watcher]]], event: Event) -> set[Watcher]:
    """The watchers whose label requirement the object meets before or after `event` (leaving and entering
    a selection are told too)."""
    chosen: set[Watcher] = set()
    after = event.object["metadata"].get("labels") or {}
    before = (event.old["metadata"].get("labels") or {}) if event.old is not None else {}
    for key, by_value in by_key.items():
        for labels in (after, before):
            value = labels.get(key)
            if value is not None:
                found = by_value.get(value)
                if found:
                    chosen |= found
    return chosen
