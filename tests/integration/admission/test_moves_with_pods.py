"""Moving a partition whose pods run, to place one the SuperPod is too fragmented for (policy Movable).

Two simulated CloudMatrix 384 nodes of 16 dies, no reserve. `mover` (movable, one running pod) and `stays`
(not movable, one running pod) hold half of one node each, so a `maxTier: node` partition of 16 is Fragmented
until `mover` moves beside `stays`. Its new devices are reserved first; its pod is evicted through the Eviction
API, which a PodDisruptionBudget holds back (reported, retried); an operator killed meanwhile holds the old and
the reserved devices again after its restart; once the budget allows it, the pod goes, `mover` takes the
reserved devices, the waiting partition gets the whole node and a recreated pod of `mover` binds to the new
devices. Every check of the guarantee is made on what pods really use (`huawei.com/AscendReal`), over the
whole move.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from superpod.cluster import client

from tests.integration.admission.conftest import (
    SPOD,
    eventually,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
    watching,
)
from tests.integration.admission.test_sharing import in_phase, pods_running, status
from tests.integration.operator.conftest import books_balance

JSON = dict[str, Any]
BUDGETS = client.resource_path("policy/v1", "poddisruptionbudgets", "team-a")


def superpod(policy: str = "Movable") -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPod",
        "metadata": {"name": "cm384-a"},
        "spec": {
            "profile": "cloudmatrix-384",
            "superPodID": 0,
            "reserveNodes": 0,
            "defragmentation": {"policy": policy, "maxMovesPerHour": 4},
        },
    }


def keep(name: str) -> JSON:
    """A PodDisruptionBudget `keep-<name>` that keeps the one pod of partition `name` from being evicted."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": f"keep-{name}", "namespace": "team-a"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"superpod.dev/partition": name}}},
    }


def devices(slots: list[JSON]) -> set[tuple[str, str]]:
    return {(slot["node"], device) for slot in slots for device in slot["devices"]}


async def reservations_kept(api: client.KubeClient) -> None:
    """The devices a move reserves (`status.move.allocation`) are held by no other partition, and used by no
    pod but the moved partition's own, whatever else happens."""
    items = await api.list("/apis/superpod.dev/v1alpha1/superpodpartitions")
    owner: dict[tuple[str, str], str] = {}
    for item in items:
        key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
        found = item.get("status") or {}
        for place in devices(found.get("allocation") or []) | devices(
            (found.get("move") or {}).get("allocation") or []
        ):
            assert owner.get(place, key) == key, (
                f"{place} held by {owner[place]} and reserved or held by {key}"
            )
            owner[place] = key
    for item in await api.list("/api/v1/pods"):
        metadata = item["metadata"]
        real = (metadata.get("annotations") or {}).get("huawei.com/AscendReal")
        if not real or (item.get("status") or {}).get("phase") not in ("Pending", "Running"):
            continue
        own = f"{metadata['namespace']}/{(metadata.get('labels') or {}).get('superpod.dev/partition')}"
        for device in real.split(","):
            holder = owner.get((item["spec"]["nodeName"], device))
            assert holder in (None, own), f"pod {metadata['name']} ({own}) uses {device}, held by {holder}"


@pytest_asyncio.fixture
async def fleet(cluster, operator) -> AsyncIterator[client.KubeClient]:
    sandbox, api = cluster
    async with simulated(sandbox, nodes=2):
        yield api


async def counts(api: client.KubeClient) -> JSON:
    return ((await api.get(f"{SPOD}/cm384-a")).get("status") or {}).get("devices") or {}


async def condition(api: client.KubeClient, name: str, kind: str) -> JSON:
    return next((c for c in (await status(api, name)).get("conditions") or [] if c["type"] == kind), {})


async def events(api: client.KubeClient, name: str, reason: str) -> list[JSON]:
    items = await api.list("/api/v1/namespaces/team-a/events")
    return [e for e in items if e["involvedObject"].get("name") == name and e["reason"] == reason]


async def fragmented_with_pods(api: client.KubeClient) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """`mover` and `stays` on half a node each, one pod running on each, a budget that keeps `mover`'s pod:
    the nodes of the partitions as placed, and `mover`'s devices."""
    await api.create(SPOD, superpod())

    async def ready() -> bool:
        return (await counts(api)).get("total") == 32

    await eventually(ready, timeout=20)
    for name in ("p0", "mover", "p2", "stays"):
        movable = name == "mover"
        await api.create(partitions_path(), partition(name, 8, maxTier="node", movable=movable))
        await eventually(lambda n=name: in_phase(api, n, "Allocated"), timeout=30)
    placed = {name: await status(api, name) for name in ("p0", "mover", "p2", "stays")}
    node_of = {name: found["allocation"][0]["node"] for name, found in placed.items()}
    assert node_of["p0"] == node_of["mover"] != node_of["p2"] == node_of["stays"], node_of
    await api.delete(f"{partitions_path()}/p0")
    await api.delete(f"{partitions_path()}/p2")
    for name in ("mover", "stays"):
        await api.create(pods_path(), pod(f"{name}-0", name))
        await eventually(lambda n=name: pods_running(api, n, 1, "team-a"), timeout=30)
    await api.create(BUDGETS, keep("mover"))
    return node_of, devices(placed["mover"]["allocation"])


async def blocked(api: client.KubeClient) -> JSON | None:
    found = await condition(api, "mover", "Moving")
    return found if found.get("reason") == "EvictionBlocked" else None


async def test_a_running_movable_partition_moves_after_its_pods_are_evicted_across_a_crash(
    cluster, operator, fleet
):
    api = fleet
    node_of, old = await fragmented_with_pods(api)

    async with watching(api, reservations_kept, flaky_api=True):
        await api.create(partitions_path(), partition("whole", 16, maxTier="node"))

        # the budget holds the pod back: reported on the moved partition, which keeps its devices, and retried
        flag = await eventually(lambda: blocked(api), timeout=60)
        assert flag["status"] == "True" and "keep-mover" in flag["message"], flag
        moving = await status(api, "mover")
        assert devices(moving["allocation"]) == old
        reserved = devices(moving["move"]["allocation"])
        assert moving["move"]["forPartition"] == "team-a/whole"
        assert {node for node, _ in reserved} == {node_of["stays"]} and not reserved & old
        assert (await events(api, "mover", "Moving")) and (await events(api, "mover", "EvictionBlocked"))
        waiting = await status(api, "whole")
        assert waiting["phase"] == "Pending" and "making room: moving team-a/mover" in waiting["message"]
        assert await pods_running(api, "mover", 1, "team-a")

        # held and reserved: 8 + 8 + 8 of 32 devices, none free for anyone else on stays' node
        async def still_held() -> bool:
            return (await counts(api)).get("allocated") == 24

        await eventually(still_held, timeout=30)
        refused = await _create_refused(api, pod("mover-1", "mover"))
        assert "being moved to make room for team-a/whole" in refused

        # a crash in the middle of the move: the restarted operator holds both sets of devices again
        await operator.kill()
        await operator.start(timeout=60)
        await eventually(lambda: blocked(api), timeout=60)
        again = await status(api, "mover")
        assert devices(again["allocation"]) == old and devices(again["move"]["allocation"]) == reserved
        await eventually(still_held, timeout=30)
        assert (await status(api, "whole"))["phase"] == "Pending"

        # the budget lets the pod go: the move finishes and the waiting partition gets the whole node
        await api.delete(f"{BUDGETS}/keep-mover")
        whole = await eventually(lambda: in_phase(api, "whole", "Allocated"), timeout=120)
        assert {slot["node"] for slot in whole["allocation"]} == {node_of["mover"]}
        moved = await status(api, "mover")
        assert devices(moved["allocation"]) == reserved and not moved.get("move")
        assert [slot["rank"] for slot in moved["allocation"]] == [0]
        done = await condition(api, "mover", "Moving")
        assert (done["status"], done["reason"]) == ("False", "Moved") and "team-a/whole" in done["message"]
        assert await pods_running(api, "stays", 1, "team-a")  # not movable: never disturbed

        # its controller's new pod binds to the new devices, and the device plugin gives it those
        await api.create(pods_path(), pod("mover-0", "mover"))
        await eventually(lambda: pods_running(api, "mover", 1, "team-a"), timeout=60)
        running = await api.get(f"{pods_path()}/mover-0")
        real = running["metadata"]["annotations"]["huawei.com/AscendReal"].split(",")
        assert {(running["spec"]["nodeName"], device) for device in real} == reserved
    assert await events(api, "mover", "Moved")
    assert (await status(api, "mover")).get("rankTable")
    await eventually(lambda: books_balance(api), timeout=30)


async def test_its_owner_calls_a_move_off_by_turning_movable_off_and_keeps_its_devices_and_pods(
    cluster, operator, fleet
):
    api = fleet
    _, old = await fragmented_with_pods(api)
    async with watching(api, reservations_kept, flaky_api=True):
        await api.create(partitions_path(), partition("whole", 16, maxTier="node"))
        await eventually(lambda: blocked(api), timeout=60)
        await api.patch(f"{partitions_path()}/mover", {"spec": {"movable": False}})

        async def abandoned() -> JSON | None:
            found = await condition(api, "mover", "Moving")
            return found if found.get("reason") == "MoveAbandoned" else None

        flag = await eventually(abandoned, timeout=30)
        assert flag["status"] == "False" and "spec.movable was turned off" in flag["message"]
        kept = await status(api, "mover")
        assert devices(kept["allocation"]) == old and not kept.get("move")
        assert await pods_running(api, "mover", 1, "team-a")  # never evicted: the budget held it

        async def released() -> bool:
            return (await counts(api)).get("allocated") == 16

        await eventually(released, timeout=30)  # the reservation is given back
        assert await events(api, "mover", "MoveAbandoned")
        waiting = await eventually(lambda: in_phase(api, "whole", "Pending"), timeout=30)

        async def no_moves() -> JSON | None:
            found = await status(api, "whole")
            return found if "no moves" in (found.get("message") or "") else None

        await eventually(no_moves, timeout=30)
        assert waiting["reason"] == "Fragmented"
    await eventually(lambda: books_balance(api), timeout=30)


async def _create_refused(api: client.KubeClient, obj: JSON) -> str:
    try:
        await api.create(pods_path(), obj)
    except client.ApiError as error:
        return str(error.body.get("message") if isinstance(error.body, dict) else error)
    raise AssertionError(f"pod {obj['metadata']['name']} was admitted during the move")
