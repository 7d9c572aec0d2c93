"""Races around a placement's status write: the write fails, or the world changes while it is in flight.

The operator decides in memory under the SuperPod's lock and writes the status after it; these tests break that
write for one partition (the sandbox's fault middleware, aimed at one path) and check the product's rules: the
partition's status ends up telling the truth, and no device is held by two partitions or by none.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from superpod.cluster import client
from superpod_sandbox.apiserver import errors, server

from tests.builders import objects
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    devices_of,
    eventually,
    manifest,
    partition,
    phase_is,
    status_of,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class FailedStatusWrites:
    """Answers the next `times` status patches of one partition with `failure`, without serving them."""

    name: str
    failure: Callable[[], errors.ApiError]
    times: int
    failed: int = 0

    def install(self, sandbox: server.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        serve = sandbox.faults._inject
        path = f"{SPP}/{self.name}/status"

        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method == "PATCH" and request.path == path and self.failed < self.times:
                self.failed += 1
                error = self.failure()
                return web.json_response(error.status, status=error.code)
            return await serve(request, handler)

        monkeypatch.setattr(sandbox.faults, "_inject", inject)


# the client retries a 5xx 4 times: 5 failures in a row reach the fleet; a 422 is not retried
WRITE_FAILURES = [
    pytest.param(
        lambda: errors.internal("etcdserver: leader changed"), 5, id="the API answers 500 five times"
    ),
    pytest.param(
        lambda: errors.invalid(
            "superpod.dev",
            "SuperPodPartition",
            "queued",
            [errors.FieldError("FieldValueInvalid", "refused by a validating webhook", "status")],
        ),
        1,
        id="the API refuses it once with 422",
    ),
]


@pytest.mark.parametrize(("failure", "times"), WRITE_FAILURES)
async def test_a_queued_partition_whose_placement_write_fails_is_still_placed(
    cluster, running, monkeypatch, failure, times
):
    """The SuperPod's daemon, not kopf, places a queued partition: nobody retries its handler for it."""
    sandbox, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("first", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "first", "Allocated"))
    await api.create(SPP, partition("queued", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "queued", "Pending"))
    faults = FailedStatusWrites("queued", failure, times)
    faults.install(sandbox, monkeypatch)

    await api.delete(f"{SPP}/first")
    placed = await eventually(lambda: phase_is(api, "queued", "Allocated"), timeout=8)
    assert faults.failed == times
    assert len(devices_of(placed)) == 16

    async def counted() -> dict | None:
        counts = ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("devices") or {}
        return counts if counts.get("allocated") == 16 and counts.get("free") == 0 else None

    await eventually(counted)


async def test_a_repair_whose_status_write_fails_is_written_later(cluster, running, monkeypatch):
    """Memory moved the partition off a failed die; the status must follow, not keep naming the failed die."""
    sandbox, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("train", 8, maxTier="node"))
    before = await eventually(lambda: phase_is(api, "train", "Allocated"))
    node, device = before["allocation"][0]["node"], before["allocation"][0]["devices"][0]
    faults = FailedStatusWrites("train", lambda: errors.internal("etcdserver: leader changed"), 5)
    faults.install(sandbox, monkeypatch)
    index = int(node.rsplit("-", 1)[1])
    configmap = objects.deviceinfo_configmap(
        node, server_index=index, rack_id=index // 4, unhealthy=(int(device.rsplit("-", 1)[1]),)
    )
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": configmap["data"]})

    async def repaired() -> dict | None:
        status = await status_of(api, "train")
        return status if status.get("allocation") and (node, device) not in devices_of(status) else None

    after = await eventually(repaired, timeout=8)
    assert faults.failed == 5
    assert after["phase"] == "Allocated" and len(devices_of(after)) == 8


@dataclasses.dataclass
class HeldStatusWrite:
    """Holds the first `times` status patches of one partition until `go` is set: serves each at once and holds
    its reply (`failure` None), or holds it unserved, then answers `failure`."""

    name: str
    failure: Callable[[], errors.ApiError] | None
    times: int = 1
    held: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    go: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    seen: int = 0

    def install(self, sandbox: server.Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        serve = sandbox.faults._inject
        path = f"{SPP}/{self.name}/status"

        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != "PATCH" or request.path != path or self.seen >= self.times:
                return await serve(request, handler)
            if self.failure is None:  # the write lands at once; its reply waits
                response = await serve(request, handler)
                if response.status >= 300:  # a 409 (the partition moved on): not a write that landed
                    return response
                self.seen += 1
                self.held.set()
                await self.go.wait()
                return response
            self.seen += 1
            self.held.set()
            await self.go.wait()
            error = self.failure()
            return web.json_response(error.status, status=error.code)

        monkeypatch.setattr(sandbox.faults, "_inject", inject)


IN_FLIGHT_ENDINGS = [
    pytest.param(None, 1, id="the write lands, its reply late"),
    pytest.param(lambda: errors.internal("etcdserver: leader changed"), 5, id="the write fails with 500"),
    pytest.param(
        lambda: errors.ApiError(errors.status(429, "TooManyRequests", "slow down")), 5, id="429 every time"
    ),
]


@pytest.mark.parametrize(("failure", "times"), IN_FLIGHT_ENDINGS)
async def test_a_partition_deleted_while_its_placement_is_written_frees_its_devices(
    cluster, running, monkeypatch, failure, times
):
    sandbox, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: superpod_counts(api, allocated=0, free=16))
    write = HeldStatusWrite("doomed", failure, times)
    write.install(sandbox, monkeypatch)
    await api.create(SPP, partition("doomed", 16, maxTier="node"))
    await asyncio.wait_for(write.held.wait(), timeout=5)

    # gone at once when the daemon placed it before kopf added its finalizer; else held by the finalizer
    await api.delete(f"{SPP}/doomed")
    write.go.set()

    await eventually(lambda: gone(api, "doomed"), timeout=8)
    await eventually(lambda: superpod_counts(api, allocated=0, free=16))
    await api.create(SPP, partition("next", 16, maxTier="node"))
    assert len(devices_of(await eventually(lambda: phase_is(api, "next", "Allocated")))) == 16


async def gone(api: client.KubeClient, name: str) -> bool:
    return await api.get_or_none(f"{SPP}/{name}") is None


async def superpod_counts(api: client.KubeClient, **expected: int) -> dict | None:
    counts = ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("devices") or {}
    return counts if all(counts.get(name) == value for name, value in expected.items()) else None


async def test_a_pending_partition_is_placed_after_a_restart_when_capacity_came_meanwhile(cluster, running):
    """kopf's diff base is derived from the spec once a phase is written: a Pending partition must still be
    retried after a restart, not taken for handled."""
    _, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("first", 16, maxTier="node"))
    first = await eventually(lambda: phase_is(api, "first", "Allocated"))
    await api.create(SPP, partition("queued", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "queued", "Pending"))

    await running.kill()
    await add_a3_nodes(api, 1, first=3)  # a 4th node: 2 usable nodes
    await running.start()

    queued = await eventually(lambda: phase_is(api, "queued", "Allocated"), timeout=8)
    assert (await status_of(api, "first"))["allocation"] == first["allocation"]
    assert not devices_of(first) & devices_of(queued)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(None, id="the write landed, its reply lost"),
        pytest.param(lambda: errors.internal("gone"), id="it never lands"),
    ],
)
async def test_a_kill_between_the_decision_and_its_write_loses_and_duplicates_nothing(
    cluster, running, monkeypatch, failure
):
    sandbox, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: superpod_counts(api, allocated=0, free=16))
    write = HeldStatusWrite("decided", failure)
    write.install(sandbox, monkeypatch)
    await api.create(SPP, partition("decided", 8, maxTier="node"))
    await asyncio.wait_for(write.held.wait(), timeout=5)

    await running.kill()
    write.go.set()
    landed = await status_of(api, "decided")
    assert bool(landed) == (failure is None)
    await api.create(SPP, partition("other", 8, maxTier="node"))
    await running.start()

    decided = await eventually(lambda: phase_is(api, "decided", "Allocated"), timeout=8)
    other = await eventually(lambda: phase_is(api, "other", "Allocated"))
    assert len(devices_of(decided)) == len(devices_of(other)) == 8
    assert not devices_of(decided) & devices_of(other)
    assert devices_of(landed) in (set(), devices_of(decided))  # a decision that landed is the one kept
    await eventually(lambda: superpod_counts(api, allocated=16, free=0))


async def test_a_degraded_partition_switched_to_auto_repair_is_repaired(cluster, running):
    """repairPolicy is the one mutable field of the spec: kopf's diff base ignores it, the operator must not."""
    _, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(
        SPP,
        {
            **partition("manual", 4, maxTier="node"),
            "spec": {**partition("manual", 4, maxTier="node")["spec"], "repairPolicy": "Manual"},
        },
    )
    before = await eventually(lambda: phase_is(api, "manual", "Allocated"))
    node, device = before["allocation"][0]["node"], before["allocation"][0]["devices"][0]
    index = int(node.rsplit("-", 1)[1])
    configmap = objects.deviceinfo_configmap(
        node, server_index=index, rack_id=index // 4, unhealthy=(int(device.rsplit("-", 1)[1]),)
    )
    await api.patch(f"{CONFIGMAPS}/mindx-dl-deviceinfo-{node}", {"data": configmap["data"]})
    await eventually(lambda: phase_is(api, "manual", "Degraded"))

    await api.patch(f"{SPP}/manual", {"spec": {"repairPolicy": "Auto"}})

    after = await eventually(lambda: phase_is(api, "manual", "Allocated"), timeout=5)
    assert (node, device) not in devices_of(after) and len(devices_of(after)) == 4


@pytest.mark.parametrize(("failure", "times"), WRITE_FAILURES)
async def test_two_partitions_placed_at_once_when_one_write_fails_share_no_device(
    cluster, running, monkeypatch, failure, times
):
    sandbox, api = cluster
    await add_a3_nodes(api, 4)  # 2 usable nodes of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await eventually(lambda: superpod_counts(api, allocated=0, free=32))
    faults = FailedStatusWrites("unlucky", failure, times)
    faults.install(sandbox, monkeypatch)

    await asyncio.gather(
        api.create(SPP, partition("unlucky", 16, maxTier="node")),
        api.create(SPP, partition("lucky", 16, maxTier="node")),
    )

    unlucky = await eventually(lambda: phase_is(api, "unlucky", "Allocated"), timeout=8)
    lucky = await eventually(lambda: phase_is(api, "lucky", "Allocated"))
    assert faults.failed == times
    assert len(devices_of(unlucky)) == len(devices_of(lucky)) == 16
    assert not devices_of(unlucky) & devices_of(lucky)
    await eventually(lambda: superpod_counts(api, allocated=32, free=0))


async def test_a_partition_the_api_keeps_refusing_does_not_hold_up_the_ones_behind_it(
    cluster, running, monkeypatch
):
    """Pending partitions are tried oldest first; the oldest failing for good must not starve the others."""
    sandbox, api = cluster
    await add_a3_nodes(api, 3)  # 1 usable node of 16 dies
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("first", 16, maxTier="node"))
    await eventually(lambda: phase_is(api, "first", "Allocated"))
    await api.create(SPP, partition("refused", 8, maxTier="node"))
    await eventually(lambda: phase_is(api, "refused", "Pending"))
    await api.create(SPP, partition("behind", 8, maxTier="node"))
    await eventually(lambda: phase_is(api, "behind", "Pending"))
    refusal = errors.invalid(
        "superpod.dev",
        "SuperPodPartition",
        "refused",
        [errors.FieldError("FieldValueInvalid", "refused by a validating webhook", "status")],
    )
    faults = FailedStatusWrites("refused", lambda: refusal, times=10**6)
    faults.install(sandbox, monkeypatch)

    await api.delete(f"{SPP}/first")
    placed = await eventually(lambda: phase_is(api, "behind", "Allocated"), timeout=8)
    assert len(devices_of(placed)) == 8
    # first come, first served (even within one second of creationTimestamp): "refused" was tried first
    assert faults.failed >= 1
    assert (await status_of(api, "refused")).get("phase") == "Pending"  # its writes never land
