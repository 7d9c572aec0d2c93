"""Typed views of partitions and SuperPods, and which of two copies of an object is the newest."""

from __future__ import annotations

from typing import Any

import pytest
from superpod.api import views

JSON = dict[str, Any]


def copy_at(version: str, uid: str = "uid-1") -> JSON:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


@pytest.mark.parametrize(
    ("one", "other", "expected"),
    [
        pytest.param(
            copy_at("100"), copy_at("99"), copy_at("100"), id="versions compared as numbers, not text"
        ),
        pytest.param(copy_at("99"), copy_at("100"), copy_at("100"), id="the later copy second"),
        pytest.param(copy_at("7"), copy_at("7"), copy_at("7"), id="the same version"),
        pytest.param(
            copy_at("200"),
            copy_at("100", uid="uid-2"),
            copy_at("100", uid="uid-2"),
            id="another uid: the second",
        ),
        pytest.param(copy_at("a7"), copy_at("100"), copy_at("100"), id="an opaque version: the second"),
        pytest.param(None, copy_at("5"), copy_at("5"), id="no first copy"),
        pytest.param(copy_at("5"), None, copy_at("5"), id="no second copy"),
        pytest.param(None, None, None, id="no copy at all"),
    ],
)
def test_the_newest_copy_is_chosen_by_version_number_and_uid(one, other, expected):
    assert views.newest(one, other) == expected


def test_a_partition_without_status_or_optional_fields_reads_as_the_crd_defaults():
    view = views.Partition({"metadata": {"name": "job", "namespace": "team"}, "spec": {"superPod": "sp"}})
    assert (view.key, view.superpod, view.phase, view.allocation, view.generation) == (
        "team/job",
        "sp",
        "Pending",
        [],
        None,
    )
    assert (view.whole_nodes, view.repair_policy, view.deleting, view.placed) == (False, "Auto", False, False)


def test_a_partitions_bound_pods_and_their_devices_come_from_its_slots():
    allocation = [
        {"rank": 0, "node": "n0", "devices": ["d0", "d1"], "pod": "a"},
        {"rank": 2, "node": "n1", "devices": ["d0", "d1"]},
    ]
    view = views.Partition({"metadata": {}, "status": {"phase": "Allocated", "allocation": allocation}})
    assert view.bound_pods == {"a"}
    assert view.any_bound
    assert view.bound_devices == {"n0/d0", "n0/d1"}
    assert [slot.rank for slot in view.slots()] == [0, 2]


def test_defragmentation_defaults_to_unbound_moves_bounded_per_hour_when_the_spec_leaves_it_out():
    superpod = views.SuperPod({"metadata": {"name": "sp"}, "spec": {"profile": "cloudmatrix-384"}})
    assert (superpod.defragmentation_policy, superpod.max_moves_per_hour) == ("Unbound", 10)
    set_ = views.SuperPod({"spec": {"defragmentation": {"policy": "Never", "maxMovesPerHour": 0}}})
    assert (set_.defragmentation_policy, set_.max_moves_per_hour) == ("Never", 0)


def test_a_partition_is_not_movable_and_not_moving_unless_its_objects_say_so():
    plain = views.Partition({"spec": {"superPod": "sp", "npus": 16}, "status": {"allocation": []}})
    assert (plain.movable, plain.move) == (False, None)
    move = {"allocation": [{"rank": 0, "node": "n1", "devices": ["d0"]}], "forPartition": "a/b"}
    moving = views.Partition({"spec": {"movable": True}, "status": {"move": move}})
    assert (moving.movable, moving.move) == (True, move)
