"""The watch hub: bounded history per resource, replay after a resourceVersion, 410 beyond the history."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.listwatch import selectorparser
from superpod_sandbox.apiserver.storage import watchhub

CONFIGMAPS = ("", "configmaps")
PODS = ("", "pods")


def event(version, name="a", kind="ADDED", namespace="default"):
    return watchhub.Event(version, kind, {"metadata": {"name": name, "namespace": namespace}})


def drain(watcher):
    items = []
    while not watcher.queue.empty():
        items.append(watcher.queue.get_nowait())
    return [(kind, obj["metadata"]["name"]) for kind, obj in items]


async def test_a_watch_replays_only_events_after_its_version():
    hub = watchhub.Hub(history_size=10)
    for version, name in ((1, "a"), (2, "b"), (3, "c")):
        hub.publish(CONFIGMAPS, event(version, name))
    assert drain(hub.subscribe(CONFIGMAPS, 1, None, None)) == [("ADDED", "b"), ("ADDED", "c")]


async def test_history_is_bounded_and_older_versions_expire():
    hub = watchhub.Hub(history_size=3, fresh_seconds=0)
    for version in range(1, 11):
        hub.publish(CONFIGMAPS, event(version, f"o{version}"))
    assert len(hub._histories[CONFIGMAPS].events) == 3
    with pytest.raises(errors.ApiError) as caught:
        hub.subscribe(CONFIGMAPS, 5, None, None)
    assert caught.value.code == 410 and caught.value.status["reason"] == "Expired"
    assert drain(hub.subscribe(CONFIGMAPS, 7, None, None)) == [
        ("ADDED", "o8"),
        ("ADDED", "o9"),
        ("ADDED", "o10"),
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_events_younger_than_the_fresh_window_stay_beyond_the_count():
    clock = Clock()
    hub = watchhub.Hub(history_size=3, fresh_seconds=75.0, clock=clock)
    for version in range(1, 11):  # ten in a second: all fresh
        clock.now += 0.1
        hub.publish(CONFIGMAPS, event(version, f"o{version}"))
    assert [name for _, name in drain(hub.subscribe(CONFIGMAPS, 1, None, None))] == [
        f"o{v}" for v in range(2, 11)
    ]
    clock.now += 80.0  # all stale now: the next event leaves the last three
    hub.publish(CONFIGMAPS, event(11, "o11"))
    assert [name for _, name in drain(hub.subscribe(CONFIGMAPS, 8, None, None))] == ["o9", "o10", "o11"]
    with pytest.raises(errors.ApiError) as caught:
        hub.subscribe(CONFIGMAPS, 7, None, None)
    assert caught.value.code == 410


async def test_a_history_never_holds_more_than_the_upper_bound(monkeypatch):
    monkeypatch.setattr(watchhub, "UPPER_BOUND", 5)
    clock = Clock()
    hub = watchhub.Hub(history_size=2, fresh_seconds=75.0, clock=clock)
    for version in range(1, 21):
        hub.publish(CONFIGMAPS, event(version, f"o{version}"))
    assert len(hub._histories[CONFIGMAPS].events) == 5
    with pytest.raises(errors.ApiError):
        hub.subscribe(CONFIGMAPS, 14, None, None)
    assert len(drain(hub.subscribe(CONFIGMAPS, 15, None, None))) == 5


async def test_events_reach_only_the_watchers_of_their_resource_and_namespace():
    hub = watchhub.Hub(history_size=10)
    pods = hub.subscribe(PODS, None, None, None)
    mine = hub.subscribe(CONFIGMAPS, None, "default", None)
    other = hub.subscribe(CONFIGMAPS, None, "other", None)
    hub.publish(CONFIGMAPS, event(1, "a"))
    assert (drain(pods), drain(mine), drain(other)) == ([], [("ADDED", "a")], [])


async def test_an_unsubscribed_watcher_gets_nothing_more():
    hub = watchhub.Hub(history_size=10)
    watcher = hub.subscribe(CONFIGMAPS, None, None, None)
    hub.unsubscribe(CONFIGMAPS, watcher)
    hub.publish(CONFIGMAPS, event(1))
    assert drain(watcher) == [] and hub.watcher_count() == 0


SELECTORS = [
    "fleet=a",
    "fleet=b",
    "fleet in (a,b)",
    "fleet=a,zone=x",
    "zone=x",
    "zone!=x",
    "fleet",
    "!fleet",
    "",
]
LABELS = st.fixed_dictionaries(
    {}, optional={"fleet": st.sampled_from(["a", "b", "c"]), "zone": st.sampled_from(["x", "y"])}
)
WRITES = st.lists(st.tuples(st.sampled_from(["o1", "o2", "o3"]), st.none() | LABELS), max_size=30)


def _replay(writes, indexed):
    """Every selector's watcher's events when `writes` (name, labels; None deletes) are published."""
    hub = watchhub.Hub(history_size=100)
    watchers = [
        hub.subscribe(
            CONFIGMAPS,
            None,
            None,
            selectorparser.labels(selector),
            selectorparser.label_values(selector) if indexed else None,
        )
        for selector in SELECTORS
    ]
    stored: dict[str, dict] = {}
    for version, (name, labels) in enumerate(writes, start=1):
        old = stored.get(name)
        if labels is None:
            if old is None:
                continue
            del stored[name]
            hub.publish(CONFIGMAPS, watchhub.Event(version, "DELETED", old, old))
            continue
        new = {"metadata": {"name": name, "namespace": "default", "labels": labels, "rv": version}}
        stored[name] = new
        hub.publish(CONFIGMAPS, watchhub.Event(version, "ADDED" if old is None else "MODIFIED", new, old))
    return [
        [(kind, obj["metadata"]["name"], obj["metadata"]["rv"]) for kind, obj in _all(w)] for w in watchers
    ]


def _all(watcher):
    items = []
    while not watcher.queue.empty():
        items.append(watcher.queue.get_nowait())
    return items


@settings(max_examples=200, deadline=None)
@given(WRITES)
def test_watchers_offered_events_by_label_see_what_testing_every_event_shows(writes):
    """The hub offers a watcher whose selector requires a label only the events of objects carrying it (before
    or after): exactly the events it would see were every event tested against its selector."""
    assert _replay(writes, indexed=True) == _replay(writes, indexed=False)
