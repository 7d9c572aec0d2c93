"""A replica's Lease renewals stay on time whatever its event loop does, and its fence still holds.

A burst of work used to starve the renewals (a 16-SuperPoD fill lapsed two replicas' Leases 25 times in 8
minutes, each lapse fencing their SuperPods): they ran on the operator's event loop and shared its connection
pool, so a long synchronous step or thousands of queued requests delayed them past their deadline. They now
run on a thread and a connection of their own (`shards.Renewals`). `Shards` runs here in the test's loop
against a sandbox on a thread of its own, one SuperPod to own; the renewals are the PUTs of the replica's
membership Lease as the sandbox saw them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator

import pytest
from superpod.cluster import client, leases
from superpod.controller import shards
from superpod_sandbox.apiserver import chaos, server

IDENTITY = "ra"
SUPERPOD = "sp0"
DEADLINE = 2.0  # --renew-deadline
PERIOD = 0.5  # --retry-period
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class Renewals:
    """The times (monotonic) at which the sandbox answered a renewal of the replica's Lease."""

    def __init__(self, sandbox: server.Sandbox) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()
        path = leases.path("default", leases.member_name(IDENTITY))

        def seen(request) -> None:  # on the sandbox's thread
            if request.method == "PUT" and request.path == path:
                with self._lock:
                    self.times.append(time.monotonic())

        sandbox.request_observers.append(seen)

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [at for at in self.times if start <= at <= end]


@contextlib.asynccontextmanager
async def replica(
    sandbox: server.Sandbox, *, connections: int = 64, token: str | None = None
) -> AsyncIterator[tuple[client.KubeClient, shards.Shards]]:
    """A replica's `Shards` with its writes fenced (as the operator wires it), once it owns the SuperPod."""
    credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
    if token is not None:
        credentials = dataclasses.replace(credentials, token=token)

    async def reload(names: list[str]) -> None:
        pass

    async with client.KubeClient(
        credentials, user_agent=f"superpod-operator/{IDENTITY}", connections=connections
    ) as api:
        owner = shards.Shards(
            api,
            identity=IDENTITY,
            namespace="default",
            superpods=lambda: {SUPERPOD},
            reload=reload,
            duration=3.0,
            renew_deadline=DEADLINE,
            retry_period=PERIOD,
        )
        api.write_guard = owner.guard
        await owner.start()
        try:
            await _until(lambda: owner.owned() == [SUPERPOD], timeout=15)
            yield api, owner
        finally:
            await owner.stop()


def busy(seconds: float) -> None:
    """A synchronous step that holds the event loop (and computes, as a long admission pass does)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


async def write_for(api: client.KubeClient, owner: shards.Shards, name: str) -> None:
    """A write of the SuperPod's work (it passes the fence)."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}}
    with owner.writing(SUPERPOD):
        await api.create(CONFIGMAPS, body)


def assert_on_time(renewals: list[float], start: float, end: float) -> None:
    """Renewals all through [start, end], never further apart than the renew deadline."""
    marks = [start, *renewals, end]
    gaps = [later - earlier for earlier, later in itertools.pairwise(marks)]
    assert len(renewals) >= (end - start) / PERIOD / 3, renewals
    assert max(gaps) < DEADLINE, gaps


async def test_renewals_stay_on_time_while_a_long_synchronous_step_holds_the_loop(sandbox_thread):
    renewals = Renewals(sandbox_thread)
    async with replica(sandbox_thread) as (api, owner):
        start = time.monotonic()
        busy(3 * DEADLINE)
        end = time.monotonic()
        assert_on_time(renewals.between(start, end), start, end)
        assert not owner.fenced()
        await asyncio.sleep(2 * PERIOD)  # the loop's next turns: nothing was dropped, the writes go on
        assert owner.owned() == [SUPERPOD]
        assert owner.epoch == 0
        await write_for(api, owner, "after-the-step")


async def test_renewals_do_not_queue_behind_the_shared_connection_pool(sandbox_thread):
    renewals = Renewals(sandbox_thread)
    # two connections: both taken by calls that never end (watches sent as plain GETs), and every other call
    # of the shared client waits for one of them (as thousands of placements' writes queue in a burst)
    async with replica(sandbox_thread, connections=2) as (api, owner):
        holders = [asyncio.create_task(api.get(CONFIGMAPS, watch="true")) for _ in range(2)]
        await asyncio.sleep(0.2)
        queued = asyncio.create_task(api.get(CONFIGMAPS))
        start = time.monotonic()
        await asyncio.sleep(3 * DEADLINE)
        end = time.monotonic()
        try:
            assert not queued.done()  # the pool is full indeed
            assert_on_time(renewals.between(start, end), start, end)
            assert not owner.fenced()
            assert owner.owned() == [SUPERPOD]
            assert owner.epoch == 0
        finally:
            for holder in holders:
                holder.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
        await queued  # the shared pool serves it once a connection is free


async def test_a_replica_whose_renewals_fail_stops_writing_before_its_lease_can_expire(
    sandbox_thread, caplog
):
    """Fencing on the renewal thread: no renewal for the renew deadline, and no write of a SuperPod's work goes
    out (judged by the requests the sandbox saw) well before the lease duration; renewals back, it takes the
    SuperPod again through its Lease."""
    caplog.set_level(logging.WARNING, logger=shards.__name__)
    token = "replica-ra"
    renewals = Renewals(sandbox_thread)
    writes: list[float] = []

    def seen(request) -> None:
        if request.method == "POST" and request.path == CONFIGMAPS:
            writes.append(time.monotonic())

    sandbox_thread.request_observers.append(seen)
    async with replica(sandbox_thread, token=token) as (api, owner):
        await write_for(api, owner, "before")
        # the API server refuses every request of this replica from now on, its renewals included
        sandbox_thread.faults.set(chaos.Plan(error_rate=1.0, token=token))
        failing = time.monotonic()
        last = max(renewals.between(0, failing))
        await _until(owner.fenced, timeout=2 * DEADLINE)
        fenced = time.monotonic()
        assert fenced - last < DEADLINE + PERIOD + 0.5  # fenced at its deadline, before the 3 s lease expires
        with pytest.raises(shards.Fenced):
            await write_for(api, owner, "while-fenced")
        assert not [at for at in writes if at > failing]  # refused before it was sent
        await _until(lambda: not owner.held, timeout=2 * DEADLINE)
        assert "stops writing for sp0" in caplog.text

        sandbox_thread.faults.set(None)
        await _until(lambda: owner.owned() == [SUPERPOD], timeout=15)
        assert owner.epoch >= 1  # dropped, then taken again through its Lease
        await write_for(api, owner, "after")


async def _until(check, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.05)
