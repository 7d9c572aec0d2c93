"""Status derivation: phases, reasons and conditions of partitions, on a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from superpod import placement
from superpod.controller import status
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles
from superpod.topology import tree as topology_tree

from tests.unit.admission.builders import slots

JSON = dict[str, Any]
EARLIER = "2026-01-01T00:00:00Z"
NOW = "2026-06-01T12:00:00Z"


def decision(npus: int = 8) -> placement.Placement:
    profile = profiles.CLOUDMATRIX_384
    tree = topology_tree.build(profile, topology_inventory.synthesize(profile, 4), 0)
    planned = placement.Allocator(tree).plan_partition(placement.PlacementRequest(npus, devices_per_pod=4))
    assert isinstance(planned, placement.Placement)
    return planned


def conditions(derived: JSON) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in derived["conditions"]}


def with_pods(placed: JSON, *pods: str) -> JSON:
    """`placed` (an allocated status) with `pods` bound to its first slots."""
    allocation = [dict(slot) for slot in placed["allocation"]]
    for slot, pod in zip(allocation, pods, strict=False):
        slot["pod"] = pod
    return {**placed, "allocation": allocation}


@pytest.mark.parametrize(
    ("pods", "failed", "problem", "phase", "reason", "expected"),
    [
        pytest.param(
            (),
            (),
            None,
            "Allocated",
            "Placed",
            {
                "Allocated": ("True", "Placed"),
                "Bound": ("False", "WaitingForPods"),
                "Degraded": ("False", "Healthy"),
            },
            id="a fresh placement is Allocated and waits for its pods",
        ),
        pytest.param(
            ("a",),
            (),
            None,
            "Allocated",
            "Placed",
            {
                "Allocated": ("True", "Placed"),
                "Bound": ("False", "WaitingForPods"),
                "Degraded": ("False", "Healthy"),
            },
            id="one pod of two is still Allocated",
        ),
        pytest.param(
            ("a", "b"),
            (),
            None,
            "Bound",
            "Placed",
            {
                "Allocated": ("True", "Placed"),
                "Bound": ("True", "AllSlotsBound"),
                "Degraded": ("False", "Healthy"),
            },
            id="every slot with a pod is Bound",
        ),
        pytest.param(
            ("a", "b"),
            ("n0/Ascend910-0",),
            None,
            "Degraded",
            "DeviceFailed",
            {
                "Allocated": ("True", "Placed"),
                "Bound": ("True", "AllSlotsBound"),
                "Degraded": ("True", "DeviceFailed"),
            },
            id="a failed device makes it Degraded, whatever its pods",
        ),
        pytest.param(
            (),
            ("n0/Ascend910-0",),
            "no room",
            "Degraded",
            "RepairImpossible",
            {
                "Allocated": ("True", "Placed"),
                "Bound": ("False", "WaitingForPods"),
                "Degraded": ("True", "RepairImpossible"),
            },
            id="a failed device that cannot move says why",
        ),
    ],
)
def test_a_placed_partitions_phase_reason_and_conditions(pods, failed, problem, phase, reason, expected):
    placed = decision()
    previous = with_pods(status.allocated(placed, previous=None, generation=1, now=EARLIER), *pods)
    derived = status.allocated(
        placed, previous=previous, generation=2, now=NOW, failed=failed, repair_problem=problem
    )
    assert (derived["phase"], derived["reason"]) == (phase, reason)
    assert conditions(derived) == expected
    assert [slot.get("pod") for slot in derived["allocation"]][: len(pods)] == list(pods)


def test_a_degraded_partitions_message_names_the_failed_devices_and_why_they_stay():
    derived = status.allocated(
        decision(), previous=None, generation=1, now=NOW, failed=["n0/Ascend910-0"], repair_problem="no room"
    )
    assert derived["message"] == "devices failed: n0/Ascend910-0; no repair: no room"


def test_a_placement_names_its_devices_nodes_tier_and_bandwidth_and_its_rank_table():
    derived = status.allocated(decision(), previous=None, generation=1, now=NOW, rank_table="rings-config-a")
    assert derived["message"].startswith("8 devices on 1 node(s) within one ")
    assert derived["rankTable"] == "rings-config-a"
    assert derived["observedGeneration"] == 1


def test_a_pod_stays_bound_only_to_a_slot_that_did_not_move():
    placed = decision()
    previous = with_pods(status.allocated(placed, previous=None, generation=1, now=EARLIER), "a", "b")
    previous["allocation"][1] = {**previous["allocation"][1], "node": "elsewhere"}
    derived = status.allocated(placed, previous=previous, generation=1, now=NOW)
    assert [slot.get("pod") for slot in derived["allocation"]] == ["a", None]


@pytest.mark.parametrize(
    ("derive", "phase", "reason"),
    [
        pytest.param(
            lambda previous: status.pending(
                "InsufficientCapacity", "free 0", previous=previous, generation=3, now=NOW
            ),
            "Pending",
            "InsufficientCapacity",
            id="a partition without room is Pending with the allocator's reason",
        ),
        pytest.param(
            lambda previous: status.failed("npus: too large", previous=previous, generation=3, now=NOW),
            "Failed",
            "InvalidSpec",
            id="a partition whose spec cannot be read is Failed, InvalidSpec",
        ),
    ],
)
def test_an_unplaced_partition_clears_its_placement_and_says_why(derive, phase, reason):
    previous = status.allocated(decision(), previous=None, generation=1, now=EARLIER)
    derived = derive(previous)
    assert (derived["phase"], derived["reason"]) == (phase, reason)
    assert derived["allocation"] is None and derived["tierSpan"] is None
    assert conditions(derived) == {"Allocated": ("False", reason)}
    assert derived["conditions"][0]["lastTransitionTime"] == NOW
    assert status.unplaced(derived)


@pytest.mark.parametrize(
    ("before", "flipped", "since"),
    [
        pytest.param("True", True, EARLIER, id="a condition that keeps its status keeps its transition time"),
        pytest.param("False", True, NOW, id="a condition whose status changes moves its transition time"),
    ],
)
def test_a_conditions_transition_time_moves_only_with_its_status(before, flipped, since):
    previous = [{"type": "Ready", "status": before, "lastTransitionTime": EARLIER}]
    derived = status.condition(previous, "Ready", flipped, "Discovered", "m", 4, NOW)
    assert derived == {
        "type": "Ready",
        "status": "True" if flipped else "False",
        "reason": "Discovered",
        "message": "m",
        "lastTransitionTime": since,
        "observedGeneration": 4,
    }


@pytest.mark.parametrize(
    ("bound", "previous_phase", "phase", "condition"),
    [
        pytest.param(
            {0: "a", 1: "b"}, "Allocated", "Bound", ("True", "AllSlotsBound"), id="every slot bound: Bound"
        ),
        pytest.param(
            {0: "a"}, "Bound", "Allocated", ("False", "WaitingForPods"), id="a slot freed: Allocated"
        ),
        pytest.param(
            {0: "a", 1: "b"}, "Degraded", None, ("True", "AllSlotsBound"), id="Degraded stays Degraded"
        ),
    ],
)
def test_a_binding_change_moves_the_phase_and_the_bound_condition(bound, previous_phase, phase, condition):
    previous = {
        "phase": previous_phase,
        "allocation": slots(2),
        "conditions": [{"type": "Allocated", "status": "True"}, {"type": "Degraded"}],
    }
    written = status.binding(previous, slots(2, bound=bound), 3, NOW)
    assert written.get("phase") == phase
    assert [c["type"] for c in written["conditions"]] == ["Allocated", "Degraded", "Bound"]
    bound_condition = written["conditions"][-1]
    assert (bound_condition["status"], bound_condition["reason"], bound_condition["observedGeneration"]) == (
        *condition,
        3,
    )


def test_the_bound_condition_keeps_its_place_among_the_conditions():
    previous = {
        "phase": "Allocated",
        "conditions": [{"type": "Allocated"}, {"type": "Bound"}, {"type": "Degraded"}],
    }
    written = status.binding(previous, slots(1, bound={0: "a"}), None, NOW)
    assert [c["type"] for c in written["conditions"]] == ["Allocated", "Bound", "Degraded"]


def test_a_binding_and_a_placement_write_the_same_bound_condition():
    """The fleet and the webhook both derive it here, so neither rewrites what the other wrote."""
    placed = with_pods(status.allocated(decision(), previous=None, generation=1, now=EARLIER), "a", "b")
    written = status.binding(placed, placed["allocation"], 1, NOW)
    again = status.allocated(decision(), previous={**placed, **written}, generation=1, now=NOW)
    assert not status.changed({**placed, **written}, again)


@pytest.mark.parametrize(
    ("current", "desired", "changes"),
    [
        pytest.param({"phase": "Bound"}, {"phase": "Bound"}, False, id="the same field"),
        pytest.param({"phase": "Allocated"}, {"phase": "Bound"}, True, id="another phase"),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": EARLIER}]},
            {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW}]},
            False,
            id="only a condition's transition time",
        ),
        pytest.param(
            {"conditions": [{"type": "Ready", "status": "True", "reason": "A"}]},
            {"conditions": [{"type": "Ready", "status": "True", "reason": "B"}]},
            True,
            id="a condition's reason",
        ),
        pytest.param(None, {"phase": "Pending"}, True, id="no status yet"),
    ],
)
def test_a_status_is_written_only_when_it_changes(current, desired, changes):
    assert status.changed(current, desired) is changes


def test_a_rewrite_of_a_placed_partition_keeps_its_rank_table_condition():
    """Conditions other writers own (the rank table's) survive every rewrite of a placed partition."""
    placed = decision()
    first = status.allocated(placed, previous=None, generation=1, now=EARLIER)
    rank_table = status.condition(
        None, "RankTableWritten", False, "ConfigMapNotOwned", "left untouched", 1, EARLIER
    )
    previous = {**first, "conditions": [*first["conditions"], rank_table]}

    again = status.allocated(placed, previous=previous, generation=1, now=NOW, failed=["n0/Ascend910-0"])

    assert [c["type"] for c in again["conditions"]] == ["Allocated", "Bound", "Degraded", "RankTableWritten"]
    assert again["conditions"][-1] == rank_table


def test_a_preempted_partition_keeps_its_reason_and_preemptor_until_it_is_placed_again():
    placed = status.allocated(decision(), previous=None, generation=1, now=EARLIER)
    evicting = status.evicting(
        "team-b/urgent", "preempted by team-b/urgent", previous=placed, generation=1, now=NOW
    )
    requeued = status.pending(
        "Preempted",
        "its pods are gone",
        previous=evicting,
        generation=1,
        now=NOW,
        preempted_by="team-b/urgent",
    )
    waiting = status.pending("InsufficientCapacity", "free 0 of 64", previous=requeued, generation=1, now=NOW)
    assert (waiting["phase"], waiting["reason"], waiting["preemptedBy"]) == (
        "Pending",
        "Preempted",
        "team-b/urgent",
    )
    assert (
        waiting["message"]
        == "preempted by team-b/urgent; waits to be placed again: InsufficientCapacity: free 0 of 64"
    )
    assert conditions(waiting) == {"Allocated": ("False", "Preempted")}
    again = status.pending("QuotaExceeded", "quota team-a: 32 of 32", previous=waiting, generation=1, now=NOW)
    assert again["reason"] == "Preempted" and again["message"].endswith(
        "QuotaExceeded: quota team-a: 32 of 32"
    )
    preempting = status.pending("Preempting", "preempting team-a/x", previous=again, generation=1, now=NOW)
    assert (preempting["reason"], preempting["message"]) == ("Preempting", "preempting team-a/x")
    replaced = status.allocated(decision(), previous=again, generation=1, now=NOW)
    assert replaced["reason"] == "Placed" and replaced["preemptedBy"] is None
    fresh = status.pending("InsufficientCapacity", "free 0", previous=replaced, generation=1, now=NOW)
    assert (fresh["reason"], fresh["preemptedBy"]) == ("InsufficientCapacity", None)


def test_a_terminating_partition_names_its_pods_and_keeps_its_allocation_and_other_conditions():
    previous = {
        "phase": "Bound",
        "allocation": [{"rank": 0, "node": "n0", "devices": ["Ascend910-0"], "pod": "w-0"}],
        "rankTable": "rings-config-job",
        "conditions": [
            {
                "type": "Allocated",
                "status": "True",
                "reason": "Placed",
                "message": "m",
                "lastTransitionTime": "t0",
            }
        ],
    }
    out = status.terminating(
        ["w-0"],
        1,
        "PodsRunning",
        "deleted; 1 pod(s) still run: w-0",
        previous=previous,
        generation=3,
        now=NOW,
    )
    assert (out["phase"], out["reason"], out["inUseBy"], out["inUseByCount"]) == (
        "Terminating",
        "PodsRunning",
        ["w-0"],
        1,
    )
    assert "allocation" not in out and "rankTable" not in out  # a merge patch: they stay as they are
    terminating, allocated = out["conditions"]
    assert (terminating["type"], terminating["status"], terminating["lastTransitionTime"]) == (
        "Terminating",
        "True",
        NOW,
    )
    assert allocated == previous["conditions"][0]

    later = status.terminating(
        [], 0, "EvictionBlocked", "blocked", previous=out, generation=3, now="2026-06-01T12:05:00Z"
    )
    assert [c["type"] for c in later["conditions"]] == ["Terminating", "Allocated"]
    assert later["conditions"][0]["lastTransitionTime"] == NOW  # still True: the time stays
