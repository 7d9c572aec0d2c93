"""Conflicts of recorded placements and overlapping SuperPods: what they are called, who keeps what."""

from __future__ import annotations

from typing import Any

from superpod import placement
from superpod.api import partition as api_partition
from superpod.controller import conflicts, status
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles
from superpod.topology import tree as topology_tree

JSON = dict[str, Any]
NOW = "2026-06-01T12:00:00Z"


def allocator(nodes: int = 2) -> placement.Allocator:
    profile = profiles.CLOUDMATRIX_384
    return placement.Allocator(topology_tree.build(profile, topology_inventory.synthesize(profile, nodes), 0))


def place(books: placement.Allocator, key: str, npus: int) -> placement.Placement:
    decision = books.plan_partition(placement.PlacementRequest(npus, devices_per_pod=npus))
    assert isinstance(decision, placement.Placement)
    books.commit(key, decision)
    return decision


def dicts(decision: placement.Placement) -> list[JSON]:
    return [slot.model_dump(by_alias=True, exclude_none=True) for slot in decision.api_slots()]


def obj(key: str, allocation: list[JSON], *, since: str = "", created: str = "2026-01-01T00:00:00Z") -> JSON:
    namespace, name = key.split("/")
    conditions = [{"type": "Allocated", "status": "True", "lastTransitionTime": since}] if since else []
    return {
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": created},
        "spec": {"superPod": "sp", "npus": 8},
        "status": {"phase": "Allocated", "allocation": allocation, "conditions": conditions},
    }


def test_a_restore_that_names_anothers_devices_is_held_elsewhere_naming_the_holder():
    books = allocator()
    held = place(books, "t/first", 16)
    outcome = books.restore("t/second", held.slots)
    assert isinstance(outcome, placement.Conflict)
    record = conflicts.classify(outcome, "sp", nodes=[slot.node for slot in held.slots])
    assert record.reason == "DeviceHeldElsewhere"
    assert "t/first" in record.message and held.device_ids()[0] in record.message
    assert "(and 8 more)" in record.message  # 16 devices, 8 named


def test_a_restore_on_a_node_that_left_the_superpod_or_a_device_that_is_gone_says_which():
    books = allocator()
    gone = [api_partition.Slot(rank=0, node="elsewhere", devices=["Ascend910-0"])]
    outcome = books.restore("t/a", gone)
    assert isinstance(outcome, placement.Conflict)
    assert conflicts.classify(outcome, "sp", nodes=books.tree.by_name).reason == "NodeOutsideSuperPod"
    node = next(iter(books.tree.by_name))
    missing = [api_partition.Slot(rank=0, node=node, devices=["Ascend910-0", "Ascend910-99"])]
    outcome = books.restore("t/b", missing)
    assert isinstance(outcome, placement.Conflict)
    record = conflicts.classify(outcome, "sp", nodes=books.tree.by_name)
    assert record.reason == "DeviceMissing" and f"{node}/Ascend910-99" in record.message


def test_the_quarantine_holds_only_devices_that_exist_and_nobody_else_holds():
    books = allocator()
    held = place(books, "t/first", 8)
    node = held.slots[0].node
    claim = [
        api_partition.Slot(
            rank=0, node=node, devices=[*held.slots[0].devices[:2], "Ascend910-15", "Ascend910-99"]
        )
    ]
    kept = conflicts.restorable(books, claim)
    assert [(slot.node, slot.devices) for slot in kept] == [(node, ["Ascend910-15"])]


def test_a_status_naming_devices_the_partition_does_not_hold_is_caught_and_its_own_is_not():
    books = allocator()
    first = place(books, "t/first", 8)
    second = place(books, "t/second", 8)
    assert conflicts.verify(books, "t/second", obj("t/second", dicts(second))) is None
    forged = conflicts.verify(books, "t/second", obj("t/second", dicts(first)))
    assert forged is not None and forged.held_by == ("t/first",)


def test_claims_are_restored_in_the_order_they_were_written_then_created_then_named():
    later = obj("t/a", [], since="2026-01-02T00:00:00Z")
    sooner = obj("t/b", [], since="2026-01-01T00:00:00Z")
    same_second = obj("t/c", [], since="2026-01-01T00:00:00Z")
    order = sorted([later, same_second, sooner], key=conflicts.claim_order)
    assert [o["metadata"]["name"] for o in order] == ["b", "c", "a"]


def test_the_older_superpod_keeps_shared_nodes_and_both_are_told():
    found = conflicts.overlaps(
        {
            "newer": ("2026-01-02T00:00:00Z", frozenset({"n1", "n2", "n3"})),
            "older": ("2026-01-01T00:00:00Z", frozenset({"n0", "n1", "n2"})),
            "apart": ("2026-01-01T00:00:00Z", frozenset({"n9"})),
        }
    )
    assert set(found) == {"newer", "older"}
    assert found["older"].ceded == frozenset() and found["older"].others == ("newer",)
    assert found["newer"].ceded == {"n1", "n2"} and found["newer"].shared == ("n1", "n2")
    assert "older" in found["newer"].message("newer") and "n1, n2" in found["newer"].message("newer")


def test_a_conflicted_status_is_degraded_keeps_its_pods_and_a_placement_resolves_it():
    books = allocator()
    held = place(books, "t/a", 8)
    previous = {"allocation": [dict(dicts(held)[0], pod="p-0")], "conditions": []}
    flagged = status.conflicted(
        held, "DeviceHeldElsewhere", "names t/b's devices", previous=previous, generation=1, now=NOW
    )
    assert flagged["phase"] == "Degraded" and flagged["reason"] == "DeviceHeldElsewhere"
    assert flagged["allocation"][0]["pod"] == "p-0"
    condition = next(c for c in flagged["conditions"] if c["type"] == "Conflict")
    assert (condition["status"], condition["reason"]) == ("True", "DeviceHeldElsewhere")

    nothing = status.conflicted(None, "DeviceMissing", "gone", previous=flagged, generation=1, now=NOW)
    assert nothing["phase"] == "Pending" and nothing["allocation"] is None

    again = status.allocated(held, previous=flagged, generation=1, now=NOW)
    condition = next(c for c in again["conditions"] if c["type"] == "Conflict")
    assert (condition["status"], condition["reason"]) == ("False", "Resolved")
    assert "DeviceHeldElsewhere" in condition["message"]
    waiting = status.pending("InsufficientCapacity", "no room", previous=nothing, generation=1, now=NOW)
    assert next(c for c in waiting["conditions"] if c["type"] == "Conflict")["status"] == "False"
