"""Chaos: `kill -9` the operator in the middle of a churn of 500 partitions and restart it while the churn goes
on. Allocations live only in partition status, so the restarted operator must rebuild every one of them before
it places anything: no device may end up in two partitions, no Allocated partition may lose or change its
devices, and every partition must end Allocated or Pending with the reason that matches the free capacity.

Needs the operator as a process of its own, so it runs on the sandbox only.
"""

from __future__ import annotations

import asyncio

import pytest

from e2e import churn, environment, scenario
from e2e.conftest import SUPERPODS, superpod_manifest
from tests.integration.operator.conftest import eventually

KILL_AT = 150  # creates issued before the kill
KILL_WHEN_PLACED = 40  # Allocated partitions before the kill (the churn waits for them)
DOWN_FOR = 100  # creates issued while the operator is down (the churn goes on while it restarts)

pytestmark = pytest.mark.skipif(
    environment.cluster_kubeconfig() is not None, reason="kills the operator process: sandbox only"
)


async def test_a_killed_operator_restarts_without_losing_or_sharing_a_device():
    async with environment.sandbox_target() as target:
        api, operator = target.api, target.operator
        assert operator is not None and operator.process is not None
        await api.create(SUPERPODS, superpod_manifest())
        await eventually(lambda: churn.superpod_devices(api), timeout=30)
        namespace = "chaos"
        await api.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        at_kill: dict[str, set[tuple[str, str]]] = {}
        shared_at_kill: dict[tuple[str, str], list[str]] = {}
        killed_pid = operator.process.pid
        restart: list[asyncio.Task[None]] = []

        async def placed() -> int:
            partitions = await churn.snapshot(api, namespace)
            count = sum(
                1
                for obj in partitions
                if (obj.get("status") or {}).get("phase") == "Allocated"
                and not obj["metadata"].get("deletionTimestamp")
            )
            return count if count >= KILL_WHEN_PLACED else 0

        async def chaos(index: int) -> None:
            if index == KILL_AT:
                await eventually(placed, timeout=90, interval=0.2)  # the operator catches up a little first
                await operator.kill()  # SIGKILL: no cleanup handlers, no last status writes
                # from here on only the churn writes: what the operator left is frozen
                partitions = await churn.snapshot(api, namespace)
                shared_at_kill.update(scenario.shared_devices(partitions))
                for obj in partitions:
                    status = obj.get("status") or {}
                    if status.get("phase") == "Allocated" and not obj["metadata"].get("deletionTimestamp"):
                        at_kill[obj["metadata"]["name"]] = scenario.devices_of(status)
            elif index == KILL_AT + DOWN_FOR:
                restart.append(asyncio.create_task(operator.start(timeout=60)))

        work = churn.Churn(api, namespace, creates=500, delete_share=0.4)
        await work.run(on_progress=chaos)
        await asyncio.gather(*restart)
        expected = len(work.created) - len(work.deleted)
        final, wrong = await churn.converge(api, namespace, expected, timeout=120)

        assert operator.process.pid != killed_pid and operator.process.returncode is None
        assert len(at_kill) >= KILL_WHEN_PLACED - 10  # the churn's deletes may take a few after the count
        assert not shared_at_kill
        assert wrong == []
        by_name = {obj["metadata"]["name"]: obj for obj in final}
        changed = {
            name: sorted(before ^ scenario.devices_of(by_name[name]["status"]))
            for name, before in at_kill.items()
            if name in by_name and scenario.devices_of(by_name[name]["status"]) != before
        }
        assert changed == {}, "allocations changed across the restart"
        phases = {obj["status"]["phase"] for obj in final}
        assert phases == {"Allocated", "Pending"}, "the churn should leave both placed and waiting partitions"
        assert "Traceback" not in operator.log.read_text()
