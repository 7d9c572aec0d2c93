"""The mirror's copy of a partition: the newest seen, never older than the watch's, never revived after it went."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from superpod.cluster import deviceinfo
from superpod.controller import clustermirror

from tests.builders import objects
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


def refreshed(configmap: JSON, version: str, **device_list: str) -> JSON:
    """The device plugin's next write of `configmap`: a new UpdateTime and CheckCode, `device_list` entries set."""
    document = json.loads(configmap["data"][deviceinfo.DATA_KEY])
    document["DeviceInfo"]["UpdateTime"] += 300
    document["DeviceInfo"]["DeviceList"].update(device_list)
    document["CheckCode"] = f"check-{version}"
    metadata = {**configmap["metadata"], "resourceVersion": version}
    return {**configmap, "metadata": metadata, "data": {deviceinfo.DATA_KEY: json.dumps(document)}}


def reported(node: JSON, version: str, ready: str = "True") -> JSON:
    """The kubelet's next status report of `node`: new heartbeat times, the Ready condition's status `ready`."""
    beat = json.loads(json.dumps(node))
    beat["metadata"]["resourceVersion"] = version
    beat["metadata"]["managedFields"] = [{"manager": "kubelet", "time": f"2026-12-07T06:{version}:00Z"}]
    for condition in beat["status"]["conditions"]:
        condition["lastHeartbeatTime"] = f"2026-12-07T06:{version}:00Z"
        if condition["type"] == "Ready":
            condition["status"] = ready
    return beat


async def test_heartbeats_and_device_info_refreshes_reach_no_handler_and_real_changes_do() -> None:
    """Every replica is sent every Node's status report and every ConfigMap's refresh: those that change
    nothing the operator reads reach no handler, and the copy every handler holds takes their resourceVersion
    (the isolation taint's writes are guarded by it); a node turning NotReady, a device turning Unhealthy,
    still reach the inventory."""
    api = fakeapi.FakeApi()
    fakeapi.cloudmatrix(api, nodes=1)
    node, configmap = api.lists[fakeapi.NODES][0], api.lists[fakeapi.DEVICEINFO][0]
    node["metadata"]["resourceVersion"], configmap["metadata"]["resourceVersion"] = "1", "2"
    key = f"kube-system/{configmap['metadata']['name']}"
    listener = Recorder()
    cache = clustermirror.ClusterMirror(api, listener, debounce=0.0)  # type: ignore[arg-type]
    await cache.list_all()
    told_node = cache.nodes["n0"]
    cache.watch()
    try:
        api.send(fakeapi.NODES, "MODIFIED", reported(node, "11"))
        api.send(fakeapi.DEVICEINFO, "MODIFIED", refreshed(configmap, "12"))
        await fakeapi.until(lambda: cache.deviceinfo["n0"]["metadata"]["resourceVersion"] == "12")
        await fakeapi.until(lambda: cache.nodes["n0"]["metadata"]["resourceVersion"] == "11")
        await asyncio.sleep(0.05)  # an inventory change would have been told by now (debounce 0)
        assert listener.nodes == ["n0"]  # the list's, not the heartbeat's
        assert listener.told == []
        assert told_node["metadata"]["resourceVersion"] == "11"

        api.send(fakeapi.NODES, "MODIFIED", reported(node, "13", ready="False"))
        await fakeapi.until(lambda: listener.told)
        assert [kind for kind, *_ in listener.told] == ["inventory"]
        assert listener.nodes == ["n0", "n0"]

        listener.told.clear()
        unhealthy = {f"{objects.RESOURCE}-Unhealthy": f"{objects.RESOURCE.rsplit('/', 1)[1]}-3"}
        api.send(fakeapi.DEVICEINFO, "MODIFIED", refreshed(configmap, "14", **unhealthy))
        await fakeapi.until(lambda: listener.told)
        assert [kind for kind, *_ in listener.told] == ["inventory"]
        assert cache.reflectors[2].objects[key]["metadata"]["resourceVersion"] == "14"
    finally:
        await cache.stop()
