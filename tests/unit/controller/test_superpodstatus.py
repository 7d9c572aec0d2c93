"""A SuperPod's status: counts, Ready, Degraded, Overlap and QuotasFit, on a fixed clock."""

from __future__ import annotations

from typing import Any

import pytest
from superpod import placement
from superpod.cluster import inventory
from superpod.controller import superpodstatus
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles
from superpod.topology import tree as topology_tree

JSON = dict[str, Any]
EARLIER = "2026-01-01T00:00:00Z"
NOW = "2026-06-01T12:00:00Z"


def conditions(derived: JSON) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in derived["conditions"]}


def problem(node: str, reason: str) -> inventory.NodeProblem:
    return inventory.NodeProblem(node, reason, f"{node}: {reason}")


def derive(**given: Any) -> JSON:
    fields: dict[str, Any] = {
        "capacity": None,
        "resource_name": "huawei.com/Ascend910",
        "nodes": 4,
        "ready_nodes": 4,
        "problems": [],
        "previous": None,
        "generation": 2,
        "now": NOW,
    }
    return superpodstatus.derive(**(fields | given))


@pytest.mark.parametrize(
    ("nodes", "ready_nodes", "problems", "error", "ready", "degraded"),
    [
        pytest.param(
            0, 0, [], "bad profile", ("False", "InvalidSpec"), ("False", "Healthy"), id="an unusable spec"
        ),
        pytest.param(0, 0, [], None, ("False", "NoNodes"), ("False", "Healthy"), id="no member node"),
        pytest.param(4, 4, [], None, ("True", "Discovered"), ("False", "Healthy"), id="every node ready"),
        pytest.param(4, 0, [], None, ("False", "Discovered"), ("False", "Healthy"), id="no node ready"),
        pytest.param(
            4,
            3,
            [problem("n2", "NodeNotReady"), problem("n1", "DeviceInfoInvalid")],
            None,
            ("True", "Discovered"),
            ("True", "DeviceInfoInvalid"),
            id="node problems: the first by reason, then node, is named",
        ),
    ],
)
def test_a_superpods_ready_and_degraded_conditions(nodes, ready_nodes, problems, error, ready, degraded):
    derived = derive(nodes=nodes, ready_nodes=ready_nodes, problems=problems, error=error)
    assert conditions(derived) == {"Ready": ready, "Degraded": degraded}
    if len(problems) > 1:
        assert derived["conditions"][1]["message"] == "n1: DeviceInfoInvalid (and 1 more)"


OVERLAPPED = [{"type": "Overlap", "status": "True", "reason": "NodesShared", "lastTransitionTime": EARLIER}]


@pytest.mark.parametrize(
    ("previous", "overlap", "expected"),
    [
        pytest.param(None, None, None, id="never overlapped: no Overlap condition"),
        pytest.param(None, "n1 is also selected by b", ("True", "NodesShared"), id="overlapping"),
        pytest.param(OVERLAPPED, None, ("False", "NoOverlap"), id="an overlap that is over stays, False"),
    ],
)
def test_a_superpods_overlap_condition(previous, overlap, expected):
    derived = derive(previous={"conditions": previous} if previous else None, overlap=overlap)
    assert conditions(derived).get("Overlap") == expected


@pytest.mark.parametrize(
    ("quotas", "problem_", "expected"),
    [
        pytest.param(None, None, None, id="no quotas: no QuotasFit condition, quotas cleared"),
        pytest.param([{"name": "team-a"}], None, ("True", "QuotasFit"), id="the shares fit"),
        pytest.param(
            [{"name": "team-a"}], "shares 64 > 32 usable", ("False", "QuotasExceedCapacity"), id="too large"
        ),
    ],
)
def test_a_superpods_quotas_and_their_condition(quotas, problem_, expected):
    derived = derive(quotas=quotas, quota_problem=problem_)
    assert derived["quotas"] == quotas
    assert conditions(derived).get("QuotasFit") == expected
    if problem_:
        assert next(c for c in derived["conditions"] if c["type"] == "QuotasFit")["message"] == problem_


def test_a_superpods_counts_come_from_its_capacity():
    profile = profiles.CLOUDMATRIX_384
    tree = topology_tree.build(profile, topology_inventory.synthesize(profile, 4), 0)
    allocator = placement.Allocator(tree)
    planned = allocator.plan_partition(placement.PlacementRequest(8, devices_per_pod=4))
    assert isinstance(planned, placement.Placement)
    allocator.commit("team-a/x", planned)
    derived = derive(capacity=allocator.capacity())
    assert derived["partitions"] == 1
    assert derived["devices"]["allocated"] == 8
    assert derived["devices"]["free"] == derived["devices"]["total"] - 8
    assert derived["largestFreeBlock"]


def test_a_ready_condition_keeps_its_transition_time_while_its_status_stays():
    first = derive(now=EARLIER)
    again = derive(previous=first, ready_nodes=3)
    ready = next(c for c in again["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastTransitionTime"], ready["message"]) == (
        "True",
        EARLIER,
        "3 of 4 nodes ready",
    )
    down = derive(previous=again, ready_nodes=0)
    ready = next(c for c in down["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", NOW)
