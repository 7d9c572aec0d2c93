"""A deleted partition's devices go to the partition waiting for them only once the deleted one is finalized:
never may two partitions' statuses name one device (a restart between the two would restore both). The fleet
runs for real against an API in memory whose writes take a moment, as a real API server's do."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from superpod.cluster import writer
from superpod.controller import eviction, inuse, ranktables
from superpod.controller import fleet as fleet_module

from tests.unit.controller import fakeapi
from tests.unit.controller.test_partition_events import Owner, api, partition, replica

JSON = dict[str, Any]


def named(name: str, npus: int) -> JSON:
    obj = partition()
    obj["metadata"].update(name=name, uid=f"uid-{name}")
    obj["spec"]["npus"] = npus
    return obj


class SlowServer:
    """Applies merge patches to the partitions it holds, a status after `delay` seconds, finalizers after ten
    times that (any order of answers may happen); records what was done, when it was done."""

    def __init__(self, api: fakeapi.FakeApi, *objs: JSON, delay: float = 0.02) -> None:
        self.api = api
        self.objs = {writer.partition_path("team", obj["metadata"]["name"]): obj for obj in objs}
        self.delay = delay
        self.done: list[tuple[str, str]] = []  # (partition, "status" with an allocation | "finalized")

    async def patch(self, path: str, body: JSON) -> JSON:
        await asyncio.sleep(self.delay if path.endswith("/status") else 10 * self.delay)
        base = path.removesuffix("/status")
        obj = copy.deepcopy(self.objs[base])
        if path.endswith("/status"):
            obj["status"] = body["status"]
            if body["status"].get("allocation"):
                self.done.append((obj["metadata"]["name"], "status"))
        else:
            obj["metadata"]["finalizers"] = body["metadata"]["finalizers"]
            if inuse.FINALIZER not in body["metadata"]["finalizers"]:
                self.done.append((obj["metadata"]["name"], "finalized"))
                if obj["metadata"].get("deletionTimestamp") and not obj["metadata"]["finalizers"]:
                    self.api.send(fakeapi.PARTITIONS, "DELETED", obj)  # its last finalizer went: it is gone
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
        self.objs[base] = obj
        return copy.deepcopy(obj)


async def held_by_a_pod(_obj: JSON) -> float:
    return 60.0


async def superpod_daemon(fleet: fleet_module.Fleet) -> None:
    """What the SuperPod's daemon does when poked: try the waiting partitions again."""
    state = fleet.superpods["sp"]
    while True:
        await state.wake.wait()
        state.wake.clear()
        await fleet.retry_pending(state)


async def test_a_waiting_partition_gets_a_deleted_ones_devices_only_after_its_finalizer_is_gone(api):
    old, new = named("old", 32), named("new", 32)  # each all a SuperPod of 4 nodes has (32 reserved)
    server = SlowServer(api, old, new)
    api.patch_with = server.patch
    async with replica(api, Owner("sp")) as fleet:
        api.send(fakeapi.PARTITIONS, "ADDED", old)
        await fakeapi.until(lambda: ("old", "status") in server.done)
        api.send(fakeapi.PARTITIONS, "ADDED", new)
        await fakeapi.until(
            lambda: (
                (fleet.partitions.get("team/new") or {}).get("status", {}).get("reason")
                == "InsufficientCapacity"
            )
        )
        deleted = copy.deepcopy(server.objs[writer.partition_path("team", "old")])
        deleted["metadata"]["deletionTimestamp"] = "2026-11-29T00:01:00Z"
        server.objs[writer.partition_path("team", "old")] = copy.deepcopy(deleted)
        fleet.deletion_listeners.append(held_by_a_pod)  # as the bindings loop does while a pod runs
        api.send(fakeapi.PARTITIONS, "MODIFIED", deleted)
        await asyncio.sleep(0.2)
        assert ("new", "status") not in server.done  # kept while a pod holds it

        # no pod holds it any more: finalized, and its devices freed for the waiting one
        daemon = asyncio.create_task(superpod_daemon(fleet))
        await inuse.InUse(fleet, ranktables.RankTables(api), eviction.Evictions(api)).release(deleted)  # type: ignore[arg-type]
        await fakeapi.until(lambda: ("new", "status") in server.done)
        assert server.done.index(("old", "finalized")) < server.done.index(("new", "status")), server.done
        assert fleet.superpods["sp"].allocator is not None
        assert fleet.superpods["sp"].allocator.placement_of("team/old") is None
        daemon.cancel()


__all__ = ["api"]  # the fixture
