"""Races around a placement's status write: the write fails, or the world changes while it is in flight.

The operator decides in memory under the SuperPod's lock and writes the status after it; these tests break that
write for one partition (the sandbox's fault middleware, aimed at one path) and check the product's rules: the
partition's status ends up telling the truth, and no device is held by two partitions or by none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from superpod.cluster import client
from superpod.sandbox import errors, server

from tests.builders import objects
from tests.integration.operator.conftest import add_a3_nodes, eventually, manifest

SPOD = "/apis/superpod.dev/v1alpha1/superpods"
SPP = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions"
CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def partition(name: str, npus: int) -> dict:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"superPod": "cm384-a", "npus": npus, "maxTier": "node"},
    }


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


async def status_of(api: client.KubeClient, name: str) -> dict:
    obj = await api.get_or_none(f"{SPP}/{name}")
    return dict((obj or {}).get("status") or {})


async def is_phase(api: client.KubeClient, name: str, phase: str) -> dict | None:
    status = await status_of(api, name)
    return status if status.get("phase") == phase else None


def devices(status: dict) -> set[tuple[str, str]]:
    return {(slot["node"], device) for slot in status.get("allocation") or [] for device in slot["devices"]}


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
    await api.create(SPP, partition("first", 16))
    await eventually(lambda: is_phase(api, "first", "Allocated"))
    await api.create(SPP, partition("queued", 16))
    await eventually(lambda: is_phase(api, "queued", "Pending"))
    faults = FailedStatusWrites("queued", failure, times)
    faults.install(sandbox, monkeypatch)

    await api.delete(f"{SPP}/first")
    placed = await eventually(lambda: is_phase(api, "queued", "Allocated"), timeout=8)
    assert faults.failed == times
    assert len(devices(placed)) == 16

    async def counted() -> dict | None:
        counts = ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("devices") or {}
        return counts if counts.get("allocated") == 16 and counts.get("free") == 0 else None

    await eventually(counted)


async def test_a_repair_whose_status_write_fails_is_written_later(cluster, running, monkeypatch):
    """Memory moved the partition off a failed die; the status must follow, not keep naming the failed die."""
    sandbox, api = cluster
    await add_a3_nodes(api, 4)
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    await api.create(SPP, partition("train", 8))
    before = await eventually(lambda: is_phase(api, "train", "Allocated"))
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
        return status if status.get("allocation") and (node, device) not in devices(status) else None

    after = await eventually(repaired, timeout=8)
    assert faults.failed == 5
    assert after["phase"] == "Allocated" and len(devices(after)) == 8
