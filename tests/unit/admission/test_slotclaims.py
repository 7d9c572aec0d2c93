"""Slot decisions: which slot a pod gets, every denial's words, releases."""

from __future__ import annotations

import copy

import pytest
from superpod.controller import slotclaims

from tests.unit.admission import builders
from tests.unit.admission.builders import request, slots, status

PARTITION = "team-a/train"
RESOURCE = "huawei.com/Ascend910"


def decide(current, *requests):
    return slotclaims.decide(PARTITION, current, list(requests), resource=RESOURCE)


def test_pods_without_an_index_take_the_free_slots_in_rank_order():
    current = status(slots(4, bound={0: "a"}))
    decisions, allocation = decide(current, request("b"), request("c"))
    assert [d.index for d in decisions] == [1, 2]
    assert [slot.get("pod") for slot in allocation] == ["a", "b", "c", None]


def test_an_indexed_pod_gets_its_slot_even_when_a_pod_without_index_came_first_in_the_batch():
    decisions, allocation = decide(status(slots(4)), request("free"), request("third", index=0))
    assert [d.index for d in decisions] == [1, 0]
    assert [slot.get("pod") for slot in allocation] == ["third", "free", None, None]


def test_a_pod_admitted_again_under_its_name_keeps_its_slot():
    decisions, allocation = decide(status(slots(2, bound={1: "again"})), request("again"))
    assert decisions == [slotclaims.Granted(1, slots(2, bound={1: "again"})[1])]
    assert [slot.get("pod") for slot in allocation] == [None, "again"]


def test_a_dry_run_is_answered_but_claims_nothing():
    decisions, allocation = decide(status(slots(2)), request("try", dry_run=True))
    assert isinstance(decisions[0], slotclaims.Granted)
    assert [slot.get("pod") for slot in allocation] == [None, None]


@pytest.mark.parametrize(
    ("current", "pod_request", "message"),
    [
        pytest.param(
            status(None, phase="Pending", reason="InsufficientCapacity", message="free 0 of 64"),
            request("p"),
            "partition team-a/train is Pending (InsufficientCapacity: free 0 of 64); pods can bind once it is "
            "Allocated",
            id="a Pending partition, with its reason and message",
        ),
        pytest.param(
            status(None, phase="Failed", reason="InvalidSpec", message="npus: too large"),
            request("p"),
            "partition team-a/train is Failed (InvalidSpec: npus: too large); pods can bind once it is Allocated",
            id="a Failed partition",
        ),
        pytest.param(
            {},
            request("p"),
            "partition team-a/train is Pending (NotPlaced: the operator has not placed it yet); pods can bind "
            "once it is Allocated",
            id="a partition the operator has not looked at yet",
        ),
        pytest.param(
            status(slots(5, bound={i: f"w{i}" for i in range(5)}), phase="Bound"),
            request("p"),
            "partition team-a/train is full: all 5 slots are bound (to pods w0, w1, w2 and 2 more)",
            id="a full partition names some of its pods",
        ),
        pytest.param(
            status(slots(2)),
            request("p", devices=4),
            "pod p requests 4 huawei.com/Ascend910 but the slots of partition team-a/train hold 2 devices each; "
            "request 2 or leave the request out (the webhook adds it)",
            id="a device count unlike the slot size",
        ),
        pytest.param(
            status(slots(2)),
            request("p", index=2),
            "pod p has index 2 (apps.kubernetes.io/pod-index=2) but partition team-a/train has 2 slots "
            "(indexes 0..1)",
            id="an index beyond the slots",
        ),
        pytest.param(
            status(slots(2, bound={1: "other"})),
            request("p", index=1),
            "slot 1 (rank 2) of partition team-a/train, asked for by pod p (apps.kubernetes.io/pod-index=1), is "
            "already bound to pod other",
            id="an index whose slot another pod holds",
        ),
    ],
)
def test_denials_say_what_is_wrong(current, pod_request, message):
    decisions, _ = decide(current, pod_request)
    assert decisions == [slotclaims.Denied(message)]


def test_a_partition_being_deleted_takes_no_more_pods():
    decisions, _ = slotclaims.decide(
        PARTITION, status(slots(2)), [request("p")], resource=RESOURCE, deleting=True
    )
    assert decisions == [
        slotclaims.Denied(
            "partition team-a/train is being deleted: it takes no new pods (its devices go back to the "
            "SuperPod once its running pods are gone); label the pod for another partition"
        )
    ]


def test_pods_of_a_degraded_partition_still_bind():
    decisions, _ = decide(status(slots(1), phase="Degraded"), request("p"))
    assert isinstance(decisions[0], slotclaims.Granted)


def test_releasing_a_pod_frees_only_its_slot():
    allocation = slotclaims.release(status(slots(3, bound={0: "a", 1: "b", 2: "c"})), {"b"})
    assert [slot.get("pod") for slot in allocation] == ["a", None, "c"]


def test_slots_are_read_in_rank_order_whatever_the_stored_order():
    stored = list(reversed(slots(3)))
    assert [slot["rank"] for slot in slotclaims.ordered_allocation(builders.status(stored))] == [0, 2, 4]


def test_deciding_and_releasing_leave_the_status_they_read_as_it_was():
    current = status(slots(3, bound={0: "a"}))
    before = copy.deepcopy(current)
    decisions, _ = decide(current, request("b"), request("c", index=2))
    slotclaims.release(current, {"a"})
    assert current == before
    assert [d.slot.get("pod") for d in decisions if isinstance(d, slotclaims.Granted)] == [None, None]
