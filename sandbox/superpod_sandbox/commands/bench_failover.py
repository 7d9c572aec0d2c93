"""`superpod bench e2e --failover`: one replica killed with SIGKILL halfway through the paced phase.

The last replica is killed (`kill -9`: no Lease given back, no last write) once half of the paced partitions
are applied; the paced applies go on meanwhile. Measured from the kill:

- `ownedAgainSeconds`: until every SuperPod it held is held by a live replica (its shard Lease names one);
- `placedSeconds`: until every partition of those SuperPods that was applied before they were owned again and
  not yet placed when it died is placed (these wait for the takeover: nobody writes them before).

Both include the lease duration (a Lease is taken over only once it expired). At the end of the run `books`
checks the invariants over every SuperPod: no device held by two partitions, each placed partition holding
exactly the devices it asked for, and the SuperPod's device counts equal to what its partitions hold (none
lost, none counted twice) and adding up to its total.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod

from superpod_sandbox.commands import bench_cluster

if TYPE_CHECKING:
    from superpod.cluster import client

JSON = dict[str, Any]
STATES = ("free", "allocated", "unhealthy", "reserved")
PLACED = (api_partition.Phase.ALLOCATED.value, api_partition.Phase.BOUND.value)


async def books(api: client.KubeClient, superpods: list[str]) -> JSON:
    """The invariants over every SuperPod's partitions and device counts; `ok` when all hold."""
    from superpod.cluster import client

    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, bench_cluster.NAMESPACE)
    items = await api.list(path, limit=str(bench_cluster.PAGE))  # 20,000 partitions in one answer: 170 MB
    held: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in superpods}
    short: list[str] = []
    placed = 0
    for item in items:
        status = item.get("status") or {}
        devices = [
            (slot["node"], device) for slot in status.get("allocation") or [] for device in slot["devices"]
        ]
        if status.get("phase") in PLACED:
            placed += 1
            if len(devices) != int(item["spec"]["npus"]):
                short.append(item["metadata"]["name"])
        held.setdefault(item["spec"]["superPod"], Counter()).update(devices)
    twice = sorted(
        f"{superpod}: {node}/{device}"
        for superpod, counter in held.items()
        for (node, device), count in counter.items()
        if count > 1
    )
    unbalanced = []
    for name in superpods:
        superpod_path = client.resource_path(common.API_VERSION, api_superpod.PLURAL, name=name)
        counts = ((await api.get(superpod_path)).get("status") or {}).get("devices") or {}
        holding = sum(held[name].values())
        if counts.get("allocated") != holding or sum(counts.get(s, 0) for s in STATES) != counts.get("total"):
            unbalanced.append({"superPod": name, "counts": dict(counts), "heldByPartitions": holding})
    return {
        "partitions": len(items),
        "placed": placed,
        "devicesHeld": sum(sum(counter.values()) for counter in held.values()),
        "devicesHeldTwice": twice[:20],
        "partitionsWithWrongCount": sorted(short)[:20],
        "superPodsUnbalanced": unbalanced[:20],
        "ok": not twice and not short and not unbalanced,
    }


async def settled_books(api: client.KubeClient, superpods: list[str], timeout: float) -> JSON:
    """`books` once it holds, or its last answer after `timeout` (a SuperPod's counts follow its partitions'
    writes by one status write: wait for them, but a device held twice never settles)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await books(api, superpods)
        if found["ok"] or found["devicesHeldTwice"] or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1.0)


async def kill_and_follow(
    cluster: bench_cluster.Cluster,
    applied: dict[str, float],
    placed: dict[str, float],
    superpod_of: dict[str, str],
    delay: float,
    timeout: float,
) -> JSON:
    """After `delay` seconds, kill the last replica; follow its SuperPods until owned and their queue placed."""
    victim = len(cluster.operator_pids) - 1
    identity = f"r{victim}"
    await asyncio.sleep(delay)
    orphans = sorted(name for name, holder in (await bench_cluster.holders(cluster.api)).items()
                     if holder == identity)  # fmt: skip
    cluster.kill(victim)
    killed = time.monotonic()
    deadline = killed + timeout
    owned_again = None
    while owned_again is None and time.monotonic() < deadline:
        table = await bench_cluster.holders(cluster.api)
        if all(table.get(name) not in (None, identity) for name in orphans):
            owned_again = time.monotonic()
        else:
            await asyncio.sleep(0.1)
    if owned_again is None:  # reported, not raised: the rest of the run still says what happened
        return {"killed": identity, "superPods": orphans, "ownedAgainSeconds": None, "waitingPartitions": None,
                "placedSeconds": None, "holders": await _holder_counts(cluster)}  # fmt: skip
    # the partitions the takeover has to place: applied before it, not placed when the replica died
    waiting = {
        name
        for name, superpod in superpod_of.items()
        if superpod in orphans
        and applied.get(name, owned_again + 1) <= owned_again
        and placed.get(name, killed) >= killed
    }
    while any(name not in placed for name in waiting) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    missing = sorted(name for name in waiting if name not in placed)
    last = max((placed[name] for name in waiting if name in placed), default=owned_again)
    return {
        "killed": identity,
        "superPods": orphans,
        "ownedAgainSeconds": round(owned_again - killed, 2),
        "waitingPartitions": len(waiting),
        "notPlaced": missing[:20],
        "placedSeconds": None if missing else round(max(last, owned_again) - killed, 2),
        "holders": await _holder_counts(cluster),
    }


async def _holder_counts(cluster: bench_cluster.Cluster) -> dict[str, int]:
    return dict(sorted(Counter((await bench_cluster.holders(cluster.api)).values()).items()))
