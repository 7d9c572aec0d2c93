"""A churn of partitions (creates and deletes), and the invariants every settled state must satisfy.

Used by the chaos scenarios: the churn runs while the operator is killed and restarted, or while the API fails;
`settled` waits until the operator has caught up, and `violations` lists what is wrong with the end state:

- a device in two live partitions;
- a partition neither Allocated nor Pending (or Pending without a reason);
- an Allocated partition holding the wrong number of devices;
- a Pending reason that contradicts the SuperPod's free devices: `InsufficientCapacity` while enough devices are
  free, `Fragmented` while too few are;
- the SuperPod's allocated count not equal to the devices the partitions hold (the operator's memory and the
  API disagree).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
from collections.abc import Awaitable, Callable
from typing import Any

from superpod.api import partition as api_partition
from superpod.cluster import client

from e2e import environment, scenario
from e2e.conftest import SUPERPODS

JSON = dict[str, Any]
SIZES = (1, 2, 4, 8, 16)
WEIGHTS = (3, 4, 4, 3, 2)
SETTLED_PHASES = (api_partition.Phase.ALLOCATED.value, api_partition.Phase.PENDING.value)


@dataclasses.dataclass
class Churn:
    """`creates` partitions of random sizes in one namespace, `rate` per second; after each create, a random
    live one is deleted with probability `delete_share`. `on_progress(i)` runs (awaited) after the i-th create."""

    api: client.KubeClient
    namespace: str
    creates: int = 500
    delete_share: float = 0.4
    seed: int = 11
    concurrency: int = 8
    rate: float | None = 50.0  # creates per second (None: as fast as the API answers)
    created: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)

    async def run(self, on_progress: Callable[[int], Awaitable[None]] | None = None) -> None:
        rng = random.Random(self.seed)
        live: list[str] = []
        gate = asyncio.Semaphore(self.concurrency)  # calls in flight, issued in order
        creating: dict[str, asyncio.Task[Any]] = {}
        tasks: list[asyncio.Task[Any]] = []

        async def call(make: Callable[[], Awaitable[Any]]) -> None:
            try:
                await make()
            finally:
                gate.release()

        async def spawn(make: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
            await gate.acquire()
            task = asyncio.create_task(call(make))
            tasks.append(task)
            return task

        async def delete(victim: str) -> None:
            await creating[victim]  # a delete racing its own create would miss the object
            await self.api.delete(scenario.partitions_path(self.namespace, victim))

        started = asyncio.get_running_loop().time()
        for index in range(self.creates):
            if self.rate:
                await asyncio.sleep(max(0.0, started + index / self.rate - asyncio.get_running_loop().time()))
            name = f"churn-{index:04d}"
            body = scenario.partition(name, self.namespace, rng.choices(SIZES, WEIGHTS)[0])
            creating[name] = await spawn(
                lambda body=body: self.api.create(scenario.partitions_path(self.namespace), body)
            )
            self.created.append(name)
            live.append(name)
            if len(live) > 1 and rng.random() < self.delete_share:
                victim = live.pop(rng.randrange(len(live) - 1))  # never the one just created
                self.deleted.append(victim)
                await spawn(lambda victim=victim: delete(victim))
            if on_progress is not None:
                await on_progress(index)
        await asyncio.gather(*tasks)


async def snapshot(api: client.KubeClient, namespace: str) -> list[JSON]:
    return await api.list(scenario.partitions_path(namespace))


async def superpod_devices(api: client.KubeClient) -> JSON:
    status = (await api.get(f"{SUPERPODS}/{environment.SUPERPOD}")).get("status") or {}
    devices: JSON = status.get("devices") or {}
    return devices


def held(partitions: list[JSON]) -> int:
    return sum(
        len(scenario.devices_of(obj.get("status") or {}))
        for obj in partitions
        if (obj.get("status") or {}).get("phase") in ("Allocated", "Bound", "Degraded")
    )


async def settled(api: client.KubeClient, namespace: str, expected: int) -> list[JSON] | None:
    """The partitions once the operator has caught up: `expected` of them, none being deleted, each Allocated
    or Pending, and the SuperPod's allocated count equal to what they hold; else None."""
    partitions = await snapshot(api, namespace)
    if len(partitions) != expected:
        return None
    if any(obj["metadata"].get("deletionTimestamp") for obj in partitions):
        return None
    if any((obj.get("status") or {}).get("phase") not in SETTLED_PHASES for obj in partitions):
        return None
    devices = await superpod_devices(api)
    return partitions if devices.get("allocated") == held(partitions) else None


async def converge(
    api: client.KubeClient, namespace: str, expected: int, timeout: float
) -> tuple[list[JSON], list[str]]:
    """Wait until the partitions are settled with no violations; after `timeout`, the last settled state and
    its violations (or an AssertionError when they never even settled). The operator writes a Pending reason
    when it retries, so right after settling a reason may still be catching up with the last placements."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: tuple[list[JSON], list[str]] | None = None
    while asyncio.get_running_loop().time() < deadline:
        partitions = await settled(api, namespace, expected)
        if partitions is not None:
            free = int((await superpod_devices(api)).get("free", 0))
            last = (partitions, violations(partitions, free))
            if not last[1]:
                return last
        await asyncio.sleep(1.0)
    if last is None:
        why = await unsettled(api, namespace, expected)
        raise AssertionError(f"the {expected} partitions did not settle within {timeout:.0f} s: {why}")
    return last


async def unsettled(api: client.KubeClient, namespace: str, expected: int) -> str:
    """Why `settled` says no, in one line: what a failed wait reports."""
    partitions = await snapshot(api, namespace)
    deleting = [obj["metadata"]["name"] for obj in partitions if obj["metadata"].get("deletionTimestamp")]
    phases = collections.Counter((obj.get("status") or {}).get("phase") for obj in partitions)
    devices = await superpod_devices(api)
    return (
        f"{len(partitions)} exist, {len(deleting)} being deleted {deleting[:5]}, phases {dict(phases)}, "
        f"the SuperPod counts {devices.get('allocated')} allocated where they hold {held(partitions)}"
    )


def violations(partitions: list[JSON], free: int) -> list[str]:
    """What is wrong with a settled state (see the module docstring); empty when nothing is."""
    found = [
        f"{device} is in {names}" for device, names in sorted(scenario.shared_devices(partitions).items())
    ]
    for obj in partitions:
        name = obj["metadata"]["name"]
        npus = obj["spec"]["npus"]
        status = obj.get("status") or {}
        phase, reason = status.get("phase"), status.get("reason")
        if phase == api_partition.Phase.ALLOCATED.value:
            if len(scenario.devices_of(status)) != npus:
                found.append(f"{name}: Allocated with {len(scenario.devices_of(status))} devices, not {npus}")
        elif phase == api_partition.Phase.PENDING.value:
            if status.get("allocation"):
                found.append(f"{name}: Pending but holds an allocation")
            if reason == api_partition.PendingReason.INSUFFICIENT_CAPACITY.value and npus <= free:
                found.append(f"{name}: InsufficientCapacity for {npus} NPUs while {free} are free")
            elif reason == api_partition.PendingReason.FRAGMENTED.value and npus > free:
                found.append(f"{name}: Fragmented for {npus} NPUs while only {free} are free")
            elif reason not in (
                api_partition.PendingReason.INSUFFICIENT_CAPACITY.value,
                api_partition.PendingReason.FRAGMENTED.value,
            ):
                found.append(f"{name}: Pending with reason {reason!r}")
        else:
            found.append(f"{name}: phase {phase!r}")
    return found
