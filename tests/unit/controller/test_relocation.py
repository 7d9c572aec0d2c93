"""Moves of running partitions in memory and in status: a reservation keeps the new devices from everybody
else, the switch is one step that keeps the old devices when it cannot be made, the status records the move so
that it can be read back, and no pod is admitted meanwhile."""

from __future__ import annotations

from superpod import placement
from superpod.controller import relocation, slotclaims

from tests.unit.placement.defrag_builders import hold, tiny_allocator

NOW = "2026-01-01T00:00:00Z"


def _moved(
    allocator: placement.Allocator, key: str, *slots: tuple[str, tuple[str, ...]]
) -> placement.Placement:
    return allocator.relocated(key, list(slots))


def test_a_reservation_holds_the_new_devices_but_not_the_partitions_own():
    allocator = tiny_allocator()
    hold(allocator, "a", (0, (0, 1)), (0, (2, 3)))
    after = _moved(
        allocator,
        "a",
        ("node-0-0", ("Ascend910-2", "Ascend910-3")),
        ("node-0-1", ("Ascend910-0", "Ascend910-1")),
    )
    assert relocation.reserve(allocator, "a", after) is None
    reserved = allocator.placement_of(relocation.reservation_key("a"))
    assert reserved is not None and reserved.device_ids() == ["node-0-1/Ascend910-0", "node-0-1/Ascend910-1"]
    # nobody else gets them, and the partition still holds its old devices
    assert isinstance(
        allocator.restore("b", [placement.PlacedSlot(0, "node-0-1", ("Ascend910-0",), {})]),
        placement.Conflict,
    )
    assert set(allocator.placement_of("a").device_ids()) == {f"node-0-0/Ascend910-{i}" for i in range(4)}  # type: ignore[union-attr]


def test_a_reservation_of_devices_another_partition_holds_is_refused_and_holds_nothing():
    allocator = tiny_allocator()
    hold(allocator, "a", (0, (0, 1)))
    hold(allocator, "b", (1, (0, 1)))
    after = _moved(allocator, "a", ("node-0-1", ("Ascend910-0", "Ascend910-1")))
    conflict = relocation.reserve(allocator, "a", after)
    assert conflict is not None and conflict.held_by == ("b",)
    assert allocator.placement_of(relocation.reservation_key("a")) is None


def test_the_switch_frees_the_old_devices_and_leaves_no_reservation():
    allocator = tiny_allocator()
    hold(allocator, "a", (0, (0, 1)))
    after = _moved(allocator, "a", ("node-0-1", ("Ascend910-2", "Ascend910-3")))
    relocation.reserve(allocator, "a", after)
    assert relocation.switch(allocator, "a", after) is None
    assert allocator.placement_of("a") == after
    assert set(allocator.partitions) == {"a"}
    assert allocator.capacity().free == 14


def test_a_switch_onto_a_device_that_failed_keeps_the_old_devices():
    allocator = tiny_allocator()
    before = hold(allocator, "a", (0, (0, 1)))
    after = _moved(allocator, "a", ("node-0-1", ("Ascend910-2", "Ascend910-3")))
    relocation.reserve(allocator, "a", after)
    allocator.mark_unhealthy("node-0-1", ["Ascend910-3"])
    assert relocation.switch(allocator, "a", after) is not None
    assert allocator.placement_of("a") == before
    assert set(allocator.partitions) == {"a"}


def test_the_move_in_status_is_read_back_as_the_same_placement():
    allocator = tiny_allocator()
    before = hold(allocator, "a", (0, (0, 1)), (0, (2, 3)))
    after = _moved(
        allocator,
        "a",
        ("node-0-2", ("Ascend910-0", "Ascend910-1")),
        ("node-0-2", ("Ascend910-2", "Ascend910-3")),
    )
    entry = relocation.InFlight("ns/a", before, after, "ns/t", relocation.moved_devices(before, after))
    written = relocation.moving(entry, "moving", previous={"conditions": []}, generation=1, now=NOW)
    assert written["move"]["forPartition"] == "ns/t" and written["move"]["started"] == NOW
    assert relocation.after_from_status(allocator, "a", written["move"]) == after
    (flag,) = written["conditions"]
    assert (flag["type"], flag["status"], flag["reason"]) == ("Moving", "True", "MakingRoom")
    assert entry.devices_moved == 4


def test_the_moving_condition_reports_a_refused_eviction_and_keeps_its_start():
    previous = relocation.moving(
        relocation.InFlight("ns/a", _one(), _one(), "ns/t", 2), "m", previous={}, generation=1, now=NOW
    )
    later = "2026-01-01T00:05:00Z"
    status = relocation.blocked("budget", previous=previous, generation=1, now=later, refused=True)
    (flag,) = status["conditions"]
    assert (flag["reason"], flag["message"], flag["lastTransitionTime"]) == ("EvictionBlocked", "budget", NOW)


def test_the_moved_status_holds_the_new_devices_without_pods_and_clears_the_move():
    allocator = tiny_allocator()
    hold(allocator, "a", (0, (0, 1)))
    after = _moved(allocator, "a", ("node-0-1", ("Ascend910-0", "Ascend910-1")))
    previous = {
        "allocation": [
            {"rank": 0, "node": "node-0-0", "devices": ["Ascend910-0", "Ascend910-1"], "pod": "w-0"}
        ],
        "move": {"allocation": []},
        "conditions": [{"type": "Moving", "status": "True", "reason": "MakingRoom", "message": "m"}],
    }
    status = relocation.moved(after, "moved 2", previous=previous, generation=2, now=NOW, rank_table="rt")
    assert status["move"] is None and status["phase"] == "Allocated" and status["rankTable"] == "rt"
    assert status["allocation"] == [
        {
            "rank": 0,
            "node": "node-0-1",
            "devices": ["Ascend910-0", "Ascend910-1"],
            "domains": after.slots[0].domains,
        }
    ]
    moving = next(c for c in status["conditions"] if c["type"] == "Moving")
    assert (moving["status"], moving["reason"], moving["message"]) == ("False", "Moved", "moved 2")


def test_no_pod_is_admitted_while_its_partition_moves():
    status = {
        "phase": "Bound",
        "allocation": [{"rank": 0, "node": "n", "devices": ["Ascend910-0"]}],
        "move": {
            "allocation": [{"rank": 0, "node": "m", "devices": ["Ascend910-0"]}],
            "forPartition": "ns/t",
        },
    }
    refusal = slotclaims.phase_refusal("ns/a", status)
    assert refusal is not None and "being moved to make room for ns/t" in refusal
    assert slotclaims.phase_refusal("ns/a", status | {"move": None}) is None


def _one() -> placement.Placement:
    allocator = tiny_allocator()
    return hold(allocator, "x", (0, (0, 1)))
