"""A chain of moves through running partitions (policy Movable), carried out in stages by the real operator.

Two simulated CloudMatrix 384 nodes of 16 dies, no reserve. One node holds `s1` (8 dies), `s2` (4), `s3` (1)
and `y` (1), with two dies free in two different HIAM pairs; the other holds `x` (one pod of a pair) and 14
free dies. Every partition runs a pod; only `x` and `y` are movable. A `maxTier: node` partition of 16 needs
the second node emptied: `x` needs a whole pair, which only the first node has once `y` has moved into the
other free die. So `y` moves first (reserved, its pod evicted, switched) and only then `x`, into the devices
`y` left; then the partition is placed. The guarantee (no device held or reserved twice, no pod using a
device another partition holds) is checked over the whole chain.
"""

from __future__ import annotations

from typing import Any

from tests.integration.admission.conftest import (
    eventually,
    partition,
    partitions_path,
    pod,
    pods_path,
    watching,
)
from tests.integration.admission.test_moves_with_pods import (
    BUDGETS,
    SPOD,
    condition,
    counts,
    devices,
    events,
    fleet,
    keep,
    reservations_kept,
    superpod,
)
from tests.integration.admission.test_sharing import in_phase, pods_running, status
from tests.integration.operator.conftest import books_balance

JSON = dict[str, Any]
__all__ = ["fleet"]  # the fixture, shared with test_moves_with_pods


async def test_a_chain_of_running_moves_is_carried_out_one_stage_after_the_other(cluster, operator, fleet):
    api = fleet
    await api.create(SPOD, superpod())

    async def ready() -> bool:
        return (await counts(api)).get("total") == 32

    await eventually(ready, timeout=20)
    order = [("s1", 8), ("s2", 4), ("y", 1), ("t", 1), ("s3", 1), ("t2", 1), ("x", 2)]
    for name, npus in order:
        movable = name in ("x", "y")
        await api.create(partitions_path(), partition(name, npus, maxTier="node", movable=movable))
        await eventually(lambda n=name: in_phase(api, n, "Allocated"), timeout=30)
    placed = {name: await status(api, name) for name, _ in order}
    node_of = {name: found["allocation"][0]["node"] for name, found in placed.items()}
    assert len({node_of[name] for name in ("s1", "s2", "y", "t", "s3", "t2")}) == 1, node_of
    assert node_of["x"] != node_of["y"], node_of
    for name in ("t", "t2"):  # one die free beside y and one beside s3
        await api.delete(f"{partitions_path()}/{name}")
    await eventually(lambda: books_balance(api), timeout=30)
    for name in ("s1", "s2", "s3", "y", "x"):
        await api.create(pods_path(), pod(f"{name}-0", name))
        await eventually(lambda n=name: pods_running(api, n, 1, "team-a"), timeout=30)
    await api.create(BUDGETS, keep("y"))
    old_y, old_x = devices(placed["y"]["allocation"]), devices(placed["x"]["allocation"])

    async with watching(api, reservations_kept, flaky_api=True):
        await api.create(partitions_path(), partition("whole", 16, maxTier="node"))

        # stage 1: y's new die is reserved and its pod evicted (held back by the budget meanwhile); x waits,
        # since the pair it needs holds y's die
        async def y_blocked() -> JSON | None:
            found = await condition(api, "y", "Moving")
            return found if found.get("reason") == "EvictionBlocked" else None

        await eventually(y_blocked, timeout=60)
        moving = await status(api, "y")
        reserved_y = devices(moving["move"]["allocation"])
        assert moving["move"]["forPartition"] == "team-a/whole"
        assert {node for node, _ in reserved_y} == {node_of["y"]} and not reserved_y & old_y
        assert not (await status(api, "x")).get("move")
        waiting = await status(api, "whole")
        assert waiting["phase"] == "Pending", waiting
        assert "making room: moving team-a/y" in waiting["message"] and "team-a/x" in waiting["message"]
        assert await pods_running(api, "x", 1, "team-a")

        # the budget lets y's pod go: y switches, then x moves into the pair y left, then `whole` is placed
        await api.delete(f"{BUDGETS}/keep-y")
        whole = await eventually(lambda: in_phase(api, "whole", "Allocated"), timeout=180)
        assert {slot["node"] for slot in whole["allocation"]} == {node_of["x"]}
        moved_y, moved_x = await status(api, "y"), await status(api, "x")
        assert devices(moved_y["allocation"]) == reserved_y and not moved_y.get("move")
        new_x = devices(moved_x["allocation"])
        assert old_y < new_x and {node for node, _ in new_x} == {node_of["y"]} and not moved_x.get("move")
        for name in ("x", "y"):
            done = await condition(api, name, "Moving")
            assert (done["status"], done["reason"]) == ("False", "Moved"), (name, done)
            assert await events(api, name, "Moved")
        for name in ("s1", "s2", "s3"):  # not movable: never disturbed
            assert await pods_running(api, name, 1, "team-a")
    assert not old_x & new_x
    await eventually(lambda: books_balance(api), timeout=30)
