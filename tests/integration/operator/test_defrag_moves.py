"""A partition the SuperPod is too fragmented for is placed after the operator moves an unbound partition, within
the SuperPod's defragmentation policy and hourly budget; policy Never and a spent budget move nothing."""

from __future__ import annotations

from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    add_a3_nodes,
    books_balance,
    devices_of,
    eventually,
    manifest,
    partition,
    phase_is,
    status_of,
)


async def test_a_fragmented_partition_is_placed_after_an_unbound_one_moves_and_never_before_it_is_allowed(
    cluster, running
):
    _, api = cluster
    await add_a3_nodes(api, 4)  # cloudmatrix-384 keeps two in reserve: a3-0-00 and a3-0-01 remain
    superpod = manifest("superpod-cloudmatrix-384.yaml")
    superpod["spec"]["defragmentation"] = {"policy": "Never"}
    await api.create(SPOD, superpod)
    names = ["p0", "p1", "p2", "p3"]
    for name in names:
        await api.create(SPP, partition(name, 8, maxTier="node"))
    statuses = {name: await eventually(lambda n=name: phase_is(api, n, "Allocated")) for name in names}
    by_node: dict[str, list[str]] = {}
    for name, status in statuses.items():
        by_node.setdefault(status["allocation"][0]["node"], []).append(name)
    assert sorted(len(held) for held in by_node.values()) == [2, 2], by_node
    # one partition leaves each node: 16 dies are free, 8 on each node, and no node is whole
    for held in by_node.values():
        await api.delete(f"{SPP}/{held[0]}")
    for held in by_node.values():  # gone (released and finalized): the books balance before that too
        await eventually(lambda name=held[0]: _gone(api, name))
    stay = sorted(held[1] for held in by_node.values())
    await eventually(lambda: books_balance(api))
    before = {name: devices_of(await status_of(api, name)) for name in stay}

    await api.create(SPP, partition("whole", 16, maxTier="node"))
    pending = await eventually(lambda: phase_is(api, "whole", "Pending"))
    assert pending["reason"] == "Fragmented"
    await eventually(lambda: _message_has(api, "whole", "policy is Never"))

    # policy Unbound, but no moves left this hour: still nothing moves
    patch = {"spec": {"defragmentation": {"policy": "Unbound", "maxMovesPerHour": 0}}}
    await api.patch(f"{SPOD}/cm384-a", patch)
    await eventually(lambda: _message_has(api, "whole", "no moves left this hour"))
    assert {name: devices_of(await status_of(api, name)) for name in stay} == before

    # one move an hour: one of the two moves onto the other's node and the whole node goes to `whole`
    await api.patch(f"{SPOD}/cm384-a", {"spec": {"defragmentation": {"maxMovesPerHour": 1}}})
    placed = await eventually(lambda: phase_is(api, "whole", "Allocated"))
    assert len({slot["node"] for slot in placed["allocation"]}) == 1
    after = {name: await status_of(api, name) for name in stay}
    moved = [name for name in stay if devices_of(after[name]) != before[name]]
    assert len(moved) == 1, after
    status = after[moved[0]]
    assert status["phase"] == "Allocated" and status["rankTable"]
    condition = next(c for c in status["conditions"] if c["type"] == "Moving")
    assert (condition["status"], condition["reason"]) == ("False", "Moved")
    assert "team-a/whole" in condition["message"]
    nodes = {slot["node"] for name in stay for slot in after[name]["allocation"]}
    assert len(nodes) == 1 and nodes.isdisjoint(slot["node"] for slot in placed["allocation"])
    await eventually(lambda: books_balance(api))
    events = await eventually(lambda: _events(api, moved[0], "Moved"))
    assert "make room for team-a/whole" in events[0]["message"]


async def _gone(api, name: str) -> bool:
    return await api.get_or_none(f"{SPP}/{name}") is None


async def _message_has(api, name: str, text: str) -> bool:
    return text in ((await status_of(api, name)).get("message") or "")


async def _events(api, name: str, reason: str) -> list:
    items = (await api.get("/api/v1/namespaces/team-a/events"))["items"]
    return [e for e in items if e["involvedObject"].get("name") == name and e["reason"] == reason]


async def test_background_compaction_reopens_a_whole_node_once_it_is_asked_for(cluster, running):
    _, api = cluster
    await add_a3_nodes(api, 4)  # a3-0-00 and a3-0-01 are the reserve; two nodes serve partitions
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    names = ["p0", "p1", "p2", "p3"]
    for name in names:
        await api.create(SPP, partition(name, 8, maxTier="node"))
    statuses = {name: await eventually(lambda n=name: phase_is(api, n, "Allocated")) for name in names}
    by_node: dict[str, list[str]] = {}
    for name, status in statuses.items():
        by_node.setdefault(status["allocation"][0]["node"], []).append(name)
    for held in by_node.values():
        await api.delete(f"{SPP}/{held[0]}")
    for held in by_node.values():  # gone (released and finalized): the books balance before that too
        await eventually(lambda name=held[0]: _gone(api, name))
    stay = sorted(held[1] for held in by_node.values())
    await eventually(lambda: books_balance(api))
    before = {name: devices_of(await status_of(api, name)) for name in stay}

    # the 16 free devices (the reserve nodes left out) are all on nodes a partition already uses
    assert await eventually(lambda: _fragmentation_is(api, 1.0))
    patch = {"spec": {"defragmentation": {"compactAbove": 0.5}}}
    await api.patch(f"{SPOD}/cm384-a", patch)
    await eventually(lambda: _fragmentation_is(api, 0.0), timeout=20)
    after = {name: await status_of(api, name) for name in stay}
    moved = [name for name in stay if devices_of(after[name]) != before[name]]
    assert len(moved) == 1, after
    assert len({slot["node"] for name in stay for slot in after[name]["allocation"]}) == 1
    condition = next(c for c in after[moved[0]]["conditions"] if c["type"] == "Moving")
    assert (condition["status"], condition["reason"]) == ("False", "Moved")
    assert "compaction" in condition["message"]
    events = await eventually(lambda: _events(api, moved[0], "Moved"))
    assert "reopen whole nodes" in events[0]["message"]
    await eventually(lambda: books_balance(api))


async def _fragmentation_is(api, value: float) -> bool:
    status = (await api.get(f"{SPOD}/cm384-a")).get("status") or {}
    return status.get("fragmentation") == value
