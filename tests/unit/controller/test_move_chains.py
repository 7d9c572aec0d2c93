"""A plan whose move needs devices another running partition frees only once its pods are gone is carried out
in stages: never a device held twice, every reservation of free devices, the Fragmented partition placed last."""

from __future__ import annotations

import types
from typing import Any

from superpod import placement
from superpod.controller import moves, relocation

from tests.unit.placement.defrag_builders import hold, tiny_allocator

JSON = dict[str, Any]
SUPERPOD: JSON = {
    "metadata": {"name": "sp"},
    "spec": {"defragmentation": {"policy": "Movable", "maxMovesPerHour": 10}},
}


def running(name: str, placed: placement.Placement, *, movable: bool) -> JSON:
    """A partition object whose every slot has a pod bound."""
    allocation = [
        {"rank": slot.rank, "node": slot.node, "devices": list(slot.devices), "pod": f"{name}-{slot.rank}"}
        for slot in placed.slots
    ]
    return {
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"superPod": "sp", "npus": len(placed.device_ids()), "movable": movable},
        "status": {"phase": "Allocated", "allocation": allocation},
    }


def chained() -> tuple[placement.Allocator, dict[str, JSON]]:
    """Tiny profile (nodes of two pairs). Node 0: x holds pair 0, pair 1 free. Node 1: y holds die 0, die 1
    free, pair 1 held. Node 2: die 0 free, the rest held; node 3 full. A whole node needs node 0 emptied: x
    needs a whole pair, which only node 1 has once y has gone to node 2. x and y run and are movable; the
    others run and are not."""
    allocator = tiny_allocator()
    objects = {
        "team/x": running("x", hold(allocator, "team/x", (0, (0, 1))), movable=True),
        "team/y": running("y", hold(allocator, "team/y", (1, (0,))), movable=True),
        "team/f": running(
            "f",
            hold(allocator, "team/f", (1, (2,)), (1, (3,)), (2, (1,)), (2, (2,)), (2, (3,))),
            movable=False,
        ),
        "team/g": running("g", hold(allocator, "team/g", (3, (0, 1, 2, 3))), movable=False),
    }
    return allocator, objects


def mover() -> moves.Mover:
    return moves.Mover(types.SimpleNamespace(writer=None))  # type: ignore[arg-type]  # plan writes nothing


def holders(allocator: placement.Allocator) -> dict[str, str]:
    """device -> its holder; fails when a device is held twice."""
    found: dict[str, str] = {}
    for pid, placed in allocator.partitions.items():
        for node, devices in placed.held:
            for device in devices:
                assert f"{node}/{device}" not in found, (
                    f"{node}/{device} held by {found.get(f'{node}/{device}')} and {pid}"
                )
                found[f"{node}/{device}"] = pid
    return found


def test_a_chain_of_running_moves_is_carried_out_in_stages_each_on_free_devices():
    allocator, objects = chained()
    request = placement.PlacementRequest(4)
    planner = mover()

    # stage 1: y's new devices (node 2 die 0) are free: reserved; x's (node 1 pair 0) are y's, whose pod runs
    planned, why = planner.plan(SUPERPOD, allocator, objects, "team/big", request)
    assert planned is not None, why
    assert [entry.key for entry in planned.reserved] == ["team/y"]
    assert [move.partition_id for move in planned.deferred] == ["team/x"]
    assert planned.at_once == ()
    assert allocator.placement_of("team/big") is None  # placed last, not before the chain is done
    held = holders(allocator)
    assert held["node-0-2/Ascend910-0"] == relocation.reservation_key("team/y")
    assert held["node-0-1/Ascend910-0"] == "team/y" and held["node-0-0/Ascend910-0"] == "team/x"
    assert planner.left_this_hour("sp", 10) == 9  # only the move begun counts

    # y's pods are gone: it switches; its old die is free, nobody else's
    (entry,) = planned.reserved
    assert relocation.switch(allocator, "team/y", entry.after) is None
    objects["team/y"]["status"]["allocation"] = [
        {"rank": 0, "node": slot.node, "devices": list(slot.devices)} for slot in entry.after.slots
    ]
    assert "node-0-1/Ascend910-0" not in holders(allocator)

    # stage 2, the next admission pass: x's new devices are free now and are reserved for it
    planned, why = planner.plan(SUPERPOD, allocator, objects, "team/big", request)
    assert planned is not None, why
    assert [entry.key for entry in planned.reserved] == ["team/x"]
    assert planned.deferred == ()
    held = holders(allocator)
    assert {held["node-0-1/Ascend910-0"], held["node-0-1/Ascend910-1"]} == {
        relocation.reservation_key("team/x")
    }

    # x's pods are gone: it switches, and node 0 is whole and free for the Fragmented partition
    (entry,) = planned.reserved
    assert relocation.switch(allocator, "team/x", entry.after) is None
    decision = allocator.plan_partition(request)
    assert isinstance(decision, placement.Placement) and decision.node_count == 1
    allocator.commit("team/big", decision)
    holders(allocator)
