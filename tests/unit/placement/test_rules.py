"""The placement semantics of docs/design.md section 3, one sentence per case, on the profiles they concern."""

from __future__ import annotations

import pytest
from superpod import placement
from superpod.api import partition as api_partition

from tests.unit.placement.builders import make_allocator, place

Reason = api_partition.PendingReason


def nodes_of(decision: placement.Placement) -> list[str]:
    return list(dict.fromkeys(slot.node for slot in decision.slots))


@pytest.mark.parametrize(
    ("profile", "npus", "fields", "tier_span", "node_count"),
    [
        pytest.param("cloudmatrix-384", 2, {}, "module", 1, id="A3 two dies share one HiAM pair"),
        pytest.param("cloudmatrix-384", 16, {}, "node", 1, id="A3 sixteen dies fill one node"),
        pytest.param("cloudmatrix-384", 64, {}, "superpod", 4, id="A3 sixty-four dies take four whole nodes"),
        pytest.param("atlas-950", 64, {}, "rack", 8, id="950 a rack-sized partition fills one rack"),
        pytest.param(
            "atlas-950", 128, {"block_size": 64}, "superpod", 16, id="950 two rack blocks span the superpod"
        ),
        pytest.param("atlas-960", 8, {}, "node", 1, id="960 eight chips are one node"),
        pytest.param("ascend-910a", 4, {}, "module", 1, id="910A four devices take one ring"),
        pytest.param("ascend-910a", 8, {}, "node", 1, id="910A eight devices take the node"),
        pytest.param("ascend-910b", 16, {}, "cluster", 2, id="910B sixteen chips span two nodes over RoCE"),
        pytest.param(
            "nvidia-gb200-nvl72", 72, {}, "rack", 18, id="GB200 seventy-two GPUs fill one NVLink domain"
        ),
        pytest.param(
            "atlas-950-supercluster",
            64,
            {},
            "superpod",
            8,
            id="supercluster a superpod-sized job stays in one superpod",
        ),
    ],
)
def test_partitions_land_in_their_lowest_tier_on_an_empty_superpod(
    profile, npus, fields, tier_span, node_count
):
    allocator = make_allocator(profile)
    decision = allocator.plan_partition(placement.PlacementRequest(npus, **fields))
    assert isinstance(decision, placement.Placement)
    assert (decision.tier_span, decision.node_count) == (tier_span, node_count)
    assert set(decision.block_tiers) <= {tier_span, "rack"}


def test_blocks_each_stay_in_one_rack_when_racks_are_partly_used():
    allocator = make_allocator("atlas-950", nodes=64)
    place(allocator, "small", 8)  # one node of rack 0 is taken: rack 0 cannot hold a 64-block any more
    decision = place(allocator, "big", 256, block_size=64)
    assert decision.block_tiers == ("rack", "rack", "rack", "rack")
    racks = [{slot.domains["rack"] for slot in decision.slots[i * 8 : (i + 1) * 8]} for i in range(4)]
    assert all(len(rack) == 1 for rack in racks)
    assert "rack-0" not in set().union(*racks)


def test_small_partitions_go_to_the_fullest_node_that_fits():
    allocator = make_allocator("cloudmatrix-384")
    place(allocator, "a", 12)  # node 0: 4 dies left
    place(allocator, "b", 8)  # does not fit node 0: node 1, 8 left
    decision = place(allocator, "c", 4)
    assert nodes_of(decision) == ["node-0-00"]


def test_a_small_partition_joins_the_node_shared_by_the_most_partitions():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    place(allocator, "a", 8)  # node 0
    place(allocator, "b", 2)  # node 0 again: 6 dies left, two partitions
    place(allocator, "c", 12)  # does not fit node 0: node 1, 4 dies left, one partition
    decision = place(allocator, "d", 2)
    assert nodes_of(decision) == ["node-0-0"]  # not the tighter node 1: node 0 stays busy longer anyway


def test_small_partitions_go_to_the_fullest_rack_among_equally_tight_nodes():
    allocator = make_allocator("atlas-950", nodes=32)
    place(allocator, "rack0", 8)  # rack 0: one node taken
    place(allocator, "rack1", 16, max_tier="rack")  # fits rack 0 best: 7 free nodes there
    assert allocator.capacity().largest_free_block[1] == ("rack", 64)
    decision = place(allocator, "tiny", 1)
    assert decision.slots[0].domains["rack"] == "rack-0"


def test_a_small_partition_joins_the_rack_shared_by_the_most_partitions():
    allocator = make_allocator("atlas-950", nodes=32)
    half = ("npu-0", "npu-1", "npu-2", "npu-3")
    big = place(allocator, "big", 60, devices_per_pod=4)  # rack 0: one job, 4 devices left on its last node
    assert {slot.domains["rack"] for slot in big.slots} == {"rack-0"}
    for pid, node in (("a", "node-0-08"), ("b", "node-0-09")):  # rack 1: two small jobs, half a node each
        assert isinstance(
            allocator.restore(pid, [api_partition.Slot(rank=0, node=node, devices=half)]), placement.Placement
        )
    decision = place(allocator, "tiny", 2)
    # not the fuller rack 0: it empties at once when its one job ends, rack 1 stays busy longer anyway
    assert decision.slots[0].domains["rack"] == "rack-1"


def test_a_multi_node_partition_uses_the_fewest_nodes_and_contiguous_ranks():
    allocator = make_allocator("atlas-950", nodes=16)
    decision = place(allocator, "a", 40)
    assert decision.node_count == 5
    assert [slot.rank for slot in decision.slots] == [0, 8, 16, 24, 32]
    assert nodes_of(decision) == sorted(nodes_of(decision))


def test_max_tier_is_a_hard_limit():
    allocator = make_allocator("atlas-950", nodes=16)
    place(allocator, "a", 60, devices_per_pod=4)  # rack 0 keeps one node with 4 free
    place(allocator, "b", 60, devices_per_pod=4)  # rack 1 too
    refused = allocator.plan_partition(placement.PlacementRequest(8, max_tier="rack", devices_per_pod=4))
    assert isinstance(refused, placement.Rejection)
    assert refused.reason == Reason.FRAGMENTED
    assert "largest free block: node 4, rack 4, superpod 8" in refused.message
    spread = allocator.plan_partition(placement.PlacementRequest(8, devices_per_pod=4))
    assert isinstance(spread, placement.Placement)
    assert spread.tier_span == "superpod"


def test_whole_nodes_hold_the_entire_node_and_need_untouched_nodes():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    place(allocator, "other", 1)
    decision = place(allocator, "exclusive", 8, whole_nodes=True)
    assert nodes_of(decision) == ["node-0-1"]
    assert decision.held == (("node-0-1", tuple(f"Ascend910-{i}" for i in range(16))),)
    assert allocator.capacity().allocated == 1 + 16


def test_reserve_nodes_stay_free_for_plans():
    allocator = make_allocator("cloudmatrix-384")
    place(allocator, "all", 46 * 16)
    assert allocator.capacity().reserved == 32
    refused = allocator.plan_partition(placement.PlacementRequest(1))
    assert isinstance(refused, placement.Rejection) and refused.reason == Reason.INSUFFICIENT_CAPACITY


def test_unhealthy_devices_are_not_placed():
    allocator = make_allocator("cloudmatrix-384", nodes=2, reserve=0)
    allocator.mark_unhealthy("node-0-0", ["Ascend910-0"])
    decision = place(allocator, "a", 16)
    assert nodes_of(decision) == ["node-0-1"]
    single = place(allocator, "b", 1)
    assert single.slots[0].devices == ("Ascend910-1",)  # the pair broken by the failure is used first


def test_a_not_ready_node_is_out_of_service_and_back_when_ready():
    allocator = make_allocator("ascend-910b", nodes=2)
    allocator.set_health("node-0-0", [], ready=False)
    assert allocator.capacity().unhealthy == 8
    decision = place(allocator, "a", 8)
    assert nodes_of(decision) == ["node-0-1"]
    allocator.set_health("node-0-0", [], ready=True)
    assert allocator.capacity().free == 8


def test_set_health_names_the_partitions_that_lost_a_device():
    allocator = make_allocator("cloudmatrix-384", nodes=4, reserve=0)
    decision = place(allocator, "a", 2)
    node, device = decision.device_ids()[0].split("/")
    assert allocator.set_health(node, [device]) == ("a",)
    assert allocator.set_health(node, [device]) == ()  # already known


@pytest.mark.parametrize(
    ("profile", "npus", "fields"),
    [
        pytest.param("ascend-910a", 2, {}, id="910A a pair of devices"),
        pytest.param("cloudmatrix-384", 6, {}, id="A3 six dies"),
        pytest.param("atlas-950", 24, {"block_size": 8}, id="950 three blocks of a node"),
        pytest.param("nvidia-gb200-nvl72", 12, {"devices_per_pod": 2}, id="GB200 six pods of two"),
    ],
)
def test_the_same_request_on_the_same_state_gives_the_same_placement(profile, npus, fields):
    first = make_allocator(profile).plan_partition(placement.PlacementRequest(npus, **fields))
    second = make_allocator(profile).plan_partition(placement.PlacementRequest(npus, **fields))
    assert first == second


def test_a_request_from_a_partition_spec():
    spec = api_partition.PartitionSpec(
        super_pod="x", npus=64, block_size=16, max_tier="superpod", devices_per_pod=8, whole_nodes=True
    )
    request = placement.PlacementRequest.from_spec(spec)
    assert request == placement.PlacementRequest(64, 16, "superpod", 8, True)
    decision = make_allocator("cloudmatrix-384").plan_partition(request)
    assert isinstance(decision, placement.Placement)
    slots = decision.api_slots()
    assert [slot.rank for slot in slots] == [0, 8, 16, 24, 32, 40, 48, 56]
    assert slots[0].domains == {"node": "node-0-00", "superpod": "superpod-0"}
