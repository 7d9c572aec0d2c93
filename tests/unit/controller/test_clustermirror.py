"""The mirror's copy of a partition: the newest seen, never older than the watch's, never revived after it went."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from superpod.controller import clustermirror

from tests.unit.controller import fakeapi

JSON = dict[str, Any]


class Recorder:
    """A mirror listener that records what it is told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, JSON | None, JSON | None]] = []
        self.nodes: list[str] = []  # every Node change, heartbeats included

    def superpod_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        self.told.append(("superpod", name, old, new))

    def partition_changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.told.append(("partition", key, old, new))

    def node_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        self.nodes.append(name)

    def inventory_changed(self) -> None:
        self.told.append(("inventory", "", None, None))


def copy(version: str, uid: str = "u1", phase: str = "Allocated") -> JSON:
    return {
        "metadata": {"name": "job", "namespace": "team", "uid": uid, "resourceVersion": version},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("mirror", "written", "kept"),
    [
        (copy("10", phase="Pending"), copy("11"), "11"),
        (copy("12", phase="Bound"), copy("11"), "12"),
        (None, copy("11"), None),
        (copy("12", uid="u2", phase="Pending"), copy("11"), "12"),
    ],
    ids=[
        "a newer write replaces the mirror's copy",
        "a newer mirror copy (a pod bound meanwhile) stays",
        "a partition the mirror saw deleted is not brought back",
        "a partition recreated under the same name keeps its own copy",
    ],
)
def test_a_written_copy_is_kept_only_when_it_is_the_newest_of_the_same_partition(
    mirror: JSON | None, written: JSON, kept: str | None
) -> None:
    cache = clustermirror.ClusterMirror(fakeapi.FakeApi(), Recorder())  # type: ignore[arg-type]
    if mirror is not None:
        cache.partition_event("team/job", None, mirror)
    cache.remember(written)
    current = cache.partitions.get("team/job")
    assert (current["metadata"]["resourceVersion"] if current else None) == kept


def test_a_partition_replaced_under_its_name_is_told_as_gone_then_new() -> None:
    """A watch that resumes with a relist shows a delete and re-create as one update of the key."""
    listener = Recorder()
    cache = clustermirror.ClusterMirror(fakeapi.FakeApi(), listener)  # type: ignore[arg-type]
    old, new = copy("10"), copy("11", uid="u2", phase="Pending")
    cache.partition_event("team/job", None, old)
    cache.partition_event("team/job", old, new)
    assert [(kind, o, n) for kind, _, o, n in listener.told] == [
        ("partition", None, old),
        ("partition", old, None),
        ("partition", None, new),
    ]


async def test_heartbeats_and_device_info_refreshes_are_no_inventory_change() -> None:
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=1)
    listener = Recorder()
    cache = clustermirror.ClusterMirror(api, listener, debounce=0.0)  # type: ignore[arg-type]
    await cache.list_all()
    node = dict(cache.nodes["n0"])
    configmap = cache.deviceinfo["n0"]
    beat = {**node, "status": {**node["status"], "heartbeat": "later"}}
    cache.node_event("n0", node, beat)
    refreshed = {**configmap, "data": dict(configmap["data"])}
    cache.deviceinfo_event(f"kube-system/{configmap['metadata']['name']}", configmap, refreshed)
    await asyncio.sleep(0.05)
    assert listener.told == []
    assert listener.nodes[-1:] == ["n0"]  # the heartbeat itself is still told (the membership view reads it)

    not_ready = {**beat, "status": {**beat["status"], "conditions": [{"type": "Ready", "status": "False"}]}}
    cache.node_event("n0", beat, not_ready)
    await fakeapi.until(lambda: listener.told)
    assert [kind for kind, *_ in listener.told] == ["inventory"]
