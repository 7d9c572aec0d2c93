"""Chaos: `kill -9` the operator in the middle of a churn of 500 partitions and restart it while the churn goes
on. Allocations live only in partition status, so the restarted operator must rebuild every one of them before
it places anything: no device may end up in two partitions, no Allocated partition may lose or change its
devices, and every partition must end Allocated or Pending with the reason that matches the free capacity.

Needs the operator as a process of its own, so it runs on the sandbox only.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from superpod_sandbox.sim import control, devicefaults

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
        # a partition without pods may be moved to make room for a Fragmented one (the default policy
        # Unbound); such a move is deliberate and reported, never a restart's loss
        moved = {name for name in changed if _moved(by_name[name])}
        assert {name: changed[name] for name in changed.keys() - moved} == {}, (
            "allocations changed across the restart"
        )
        phases = {obj["status"]["phase"] for obj in final}
        assert phases == {"Allocated", "Pending"}, "the churn should leave both placed and waiting partitions"
        assert "Traceback" not in operator.log.read_text()


def _moved(partition: dict) -> bool:
    """The partition carries the record of a deliberate move (Moving False, reason Moved)."""
    conditions = (partition.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Moving" and c.get("reason") == "Moved" for c in conditions)


CHURN_CREATES = 200
NARROW_AT, CORRUPT_AT, KILL2_AT, RESTART2_AT, WIDEN_AT = 30, 50, 70, 100, 140
DEVICEINFO = "/api/v1/namespaces/kube-system/configmaps/mindx-dl-deviceinfo-{}"


async def test_device_lists_and_selectors_changing_under_kill_9_churn_lose_nothing():
    """During the churn a SuperPod's selector narrows (4 nodes out) and widens again, one node's device-plugin
    ConfigMap names a device the hardware lacks and another's device fails, and the operator is killed while
    they are so and restarts into them: restore conflicts and repairs settle, and at the end no device is held
    twice, none is leaked (the SuperPod's allocated count is what the partitions hold), no partition is lost."""
    async with environment.sandbox_target() as target:
        api, operator = target.api, target.operator
        assert operator is not None and operator.process is not None
        nodes = list(target.nodes)
        corrupted, failing = nodes[0], nodes[1]
        for node in nodes[:-4]:
            await api.patch(f"/api/v1/nodes/{node}", {"metadata": {"labels": {"chaos": "kept"}}})
        await api.create(SUPERPODS, superpod_manifest())
        await eventually(lambda: churn.superpod_devices(api), timeout=30)
        namespace = "chaos"
        await api.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        superpod = f"{SUPERPODS}/{environment.SUPERPOD}"
        original = (await api.get(DEVICEINFO.format(corrupted)))["data"]
        restart: list[asyncio.Task[None]] = []

        async def chaos(index: int) -> None:
            if index == NARROW_AT:
                await api.patch(superpod, {"spec": {"nodeSelector": {"matchLabels": {"chaos": "kept"}}}})
            elif index == CORRUPT_AT:
                document = json.loads(original["DeviceInfoCfg"])
                listed = document["DeviceInfo"]["DeviceList"][scenario.RESOURCE]
                document["DeviceInfo"]["DeviceList"][scenario.RESOURCE] = f"{listed},Ascend910-99".lstrip(",")
                await api.patch(
                    DEVICEINFO.format(corrupted), {"data": {"DeviceInfoCfg": json.dumps(document)}}
                )
                await control.inject(api, failing, devicefaults.Kind.UNHEALTHY, "Ascend910-3")
            elif index == KILL2_AT:
                await operator.kill()
            elif index == RESTART2_AT:
                restart.append(asyncio.create_task(operator.start(timeout=60)))
            elif index == WIDEN_AT:
                await api.patch(superpod, {"spec": {"nodeSelector": None}})
                await api.patch(DEVICEINFO.format(corrupted), {"data": original})
                await control.heal(api, failing)

        work = churn.Churn(api, namespace, creates=CHURN_CREATES, delete_share=0.4)
        await work.run(on_progress=chaos)
        await asyncio.gather(*restart)
        expected = len(work.created) - len(work.deleted)
        final, wrong = await churn.converge(api, namespace, expected, timeout=120)

        assert wrong == []
        assert not scenario.shared_devices(final)
        devices = await churn.superpod_devices(api)
        assert devices.get("allocated") == churn.held(final)
        assert (await api.get(superpod))["status"]["nodes"] == len(nodes)  # every node is back
        assert "Traceback" not in operator.log.read_text()
