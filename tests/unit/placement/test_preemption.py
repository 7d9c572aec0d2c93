"""Topology-aware preemption: whom a partition preempts, where it then goes, and when it preempts nothing.

Scenes are laid out device by device on a small atlas-950 (16 nodes of 8 NPUs, two racks of 8 nodes), so
each test states exactly which partitions sit where.
"""

from __future__ import annotations

import pytest
from superpod import placement
from superpod.api import partition as api_partition
from superpod.placement import classic_preemption, preemption, quota

from tests.unit.placement.builders import make_allocator

Reason = api_partition.PendingReason
W = quota.Workload


class Scene:
    """An allocator with partitions put on given nodes, their workload facts, and quotas."""

    def __init__(self, quotas: list[quota.Quota] | None = None, profile: str = "atlas-950", nodes: int = 16):
        self.allocator = make_allocator(profile, nodes=nodes, reserve=0)
        self.quotas = quota.Quotas(quotas or [], usable=self.allocator.capacity().free)
        self.placed: dict[str, quota.Workload] = {}

    def put(self, workload: quota.Workload, *where: tuple[int, int]) -> None:
        """Hold `count` free devices on each (node index, count)."""
        tree = self.allocator.tree
        slots = []
        for rank, (node_index, count) in enumerate(where):
            node = tree.nodes[node_index]
            free = self.allocator.state.free[node_index]
            devices = [d for bit, d in enumerate(node.devices) if free >> bit & 1][:count]
            assert len(devices) == count, f"node {node_index} has fewer than {count} free"
            slots.append(api_partition.Slot(rank=rank, node=node.name, devices=devices))
        outcome = self.allocator.restore(workload.id, slots)
        assert isinstance(outcome, placement.Placement), outcome
        self.placed[workload.id] = workload

    def fill(self, prefix: str, nodes: range, priority: int = 1000, tenant: str = quota.UNQUOTED) -> None:
        """Fill every free device of `nodes`, one partition per node."""
        for index in nodes:
            free = self.allocator.state.free[index].bit_count()
            if free:
                self.put(W(f"{prefix}{index}", free, tenant, priority), (index, free))

    def plan(self, request: placement.PlacementRequest, preemptor: quota.Workload):
        ledger = quota.Ledger(self.quotas, self.placed.values())
        return preemption.plan_preemption(self.allocator, request, preemptor, self.placed, ledger)


def request(npus: int, max_tier: str | None = None) -> placement.PlacementRequest:
    return placement.PlacementRequest(npus, max_tier=max_tier)


def test_a_preemptor_that_fits_as_things_are_preempts_nothing():
    scene = Scene()
    scene.put(W("low", 8, priority=0), (0, 8))
    found = scene.plan(request(8, "node"), W("new", 8, priority=100))
    assert isinstance(found, preemption.Preemption)
    assert found.victims == () and found.cost.devices == 0


def test_it_preempts_one_partition_that_frees_a_whole_node_rather_than_two_halves():
    scene = Scene()
    scene.put(W("half-a", 4, priority=0), (0, 4))
    scene.put(W("half-b", 4, priority=0), (0, 4))
    scene.put(W("whole", 8, priority=0), (1, 8))
    scene.fill("busy", range(2, 16))
    found = scene.plan(request(8, "node"), W("new", 8, priority=100))
    assert isinstance(found, preemption.Preemption)
    assert found.victims == ("whole",)
    assert {slot.node for slot in found.placement.slots} == {scene.allocator.tree.nodes[1].name}
    assert (found.cost.priority, found.cost.devices, found.cost.partitions) == (0, 8, 1)
    assert found.exact


def test_it_preempts_nothing_when_the_devices_it_could_free_would_not_form_a_placement():
    # four lower-priority partitions of 2 NPUs, each on another node: 8 devices, but no node of 8
    scene = Scene()
    for index in range(4):
        scene.put(W(f"low{index}", 2, priority=0), (index, 2))
    scene.fill("busy", range(16))
    found = scene.plan(request(8, "node"), W("new", 8, priority=100))
    assert isinstance(found, placement.Rejection)
    assert found.reason == Reason.INSUFFICIENT_CAPACITY
    assert "preempting what it may preempt would not make room" in found.message


@pytest.mark.parametrize(
    ("name", "victims_on_node_0", "victims_on_node_1", "expected"),
    [
        (
            "the lowest priority first, even when it holds more devices",
            [W("p5-small", 8, priority=5)],
            [W("p1-a", 4, priority=1), W("p1-b", 4, priority=1)],
            {"p1-a", "p1-b"},
        ),
        (
            "at equal priority, fewer devices",
            [W("big", 8, priority=0)],
            [W("small", 4, priority=0), W("keep", 4, priority=1000)],
            None,  # node 1 cannot be freed (its other half is of higher priority): node 0
        ),
        (
            "at equal priority and devices, a partition with no running pod",
            [W("running", 8, priority=0, running_pods=2)],
            [W("idle", 8, priority=0, running_pods=0)],
            {"idle"},
        ),
        (
            "at equal cost otherwise, the youngest",
            [W("old", 8, priority=0, created=1.0)],
            [W("young", 8, priority=0, created=9.0)],
            {"young"},
        ),
    ],
)
def test_the_victim_set_is_the_cheapest(name, victims_on_node_0, victims_on_node_1, expected):
    scene = Scene()
    for node, victims in ((0, victims_on_node_0), (1, victims_on_node_1)):
        for victim in victims:
            scene.put(victim, (node, victim.npus))
    scene.fill("busy", range(16))
    found = scene.plan(request(8, "node"), W("new", 8, priority=100))
    assert isinstance(found, preemption.Preemption), name
    assert set(found.victims) == (expected or {"big"}), name


def test_partitions_of_equal_or_higher_priority_are_never_preempted():
    scene = Scene()
    scene.fill("same", range(8), priority=100)
    scene.fill("higher", range(8, 16), priority=101)
    found = scene.plan(request(8), W("new", 8, priority=100))
    assert isinstance(found, placement.Rejection)
    assert found.message.endswith("no placed partition may be preempted for it")


def test_a_preemptor_whose_policy_is_never_preempts_nothing():
    scene = Scene()
    scene.fill("low", range(16), priority=0)
    never = W("new", 8, priority=100, preemption_policy=quota.PreemptionPolicy.NEVER)
    found = scene.plan(request(8), never)
    assert isinstance(found, placement.Rejection)
    assert found.reason == Reason.INSUFFICIENT_CAPACITY
    assert found.message.endswith("its preemptionPolicy is Never")


def test_unsatisfiable_requests_are_rejected_without_a_search():
    scene = Scene()
    scene.fill("low", range(16), priority=0)
    found = scene.plan(request(16, "node"), W("new", 16, priority=100))
    assert isinstance(found, placement.Rejection) and found.reason == Reason.UNSATISFIABLE


def test_it_prefers_fewer_devices_to_a_lower_tier_and_the_lower_tier_at_equal_cost():
    # 16 NPUs. Rack 0 has two whole lower-priority nodes (16 devices) and a 4-device one beside 4 free
    # devices; rack 1 a 4-device one beside 4 free devices too: 8 devices across racks are cheaper than
    # 16 in one rack
    scene = Scene()
    scene.put(W("r0-a", 8, priority=0), (0, 8))
    scene.put(W("r0-b", 8, priority=0), (1, 8))
    scene.put(W("r0-half", 4, priority=0), (2, 4))
    scene.put(W("r1-half", 4, priority=0), (8, 4))
    scene.fill("busy", [i for i in range(16) if i not in (2, 8)])
    found = scene.plan(request(16), W("new", 16, priority=100))
    assert isinstance(found, preemption.Preemption)
    assert set(found.victims) == {"r0-half", "r1-half"} and found.placement.tier_span == "superpod"
    # two equally cheap pairs of whole nodes: the pair in one rack
    scene = Scene()
    scene.put(W("r0-a", 8, priority=0), (0, 8))
    scene.put(W("r0-b", 8, priority=0), (1, 8))
    scene.put(W("r1-a", 8, priority=0), (8, 8))
    scene.fill("busy", range(16))
    found = scene.plan(request(16), W("new", 16, priority=100))
    assert isinstance(found, preemption.Preemption)
    assert set(found.victims) == {"r0-a", "r0-b"} and found.placement.tier_span == "rack"


def test_an_owner_within_its_share_reclaims_from_a_borrower_whatever_its_priority():
    scene = Scene([quota.Quota("a", 64), quota.Quota("b", 64)])
    scene.fill("b-", range(0, 16), priority=1000, tenant="b")  # b uses 128: 64 borrowed
    found = scene.plan(request(8, "node"), W("new", 8, "a", priority=0))
    assert isinstance(found, preemption.Preemption)
    assert len(found.victims) == 1 and found.reclaimed == found.victims
    assert found.cost.priority == 1000


def test_a_reclaim_takes_no_more_from_a_lender_than_it_borrowed():
    scene = Scene([quota.Quota("a", 64), quota.Quota("b", 64)])
    scene.fill("b-", range(0, 9), priority=0, tenant="b")  # b uses 72: borrows 8
    scene.fill("a-", range(9, 16), priority=9000, tenant="a")  # a uses 56
    # a wants 16 NPUs (up to 72, above its 64) : a borrower may not reclaim
    assert isinstance(scene.plan(request(16), W("new", 16, "a", priority=5000)), placement.Rejection)
    # 8 (up to 64) is within its share: one 8-NPU partition of b, never two
    found = scene.plan(request(8), W("new", 8, "a", priority=0))
    assert isinstance(found, preemption.Preemption) and len(found.victims) == 1
    ledger = quota.Ledger(scene.quotas, scene.placed.values())
    rules = preemption.Rules(ledger, W("new", 16, "a", priority=0))
    victims = [scene.placed["b-0"], scene.placed["b-1"]]
    as_victims = [preemption.Victim(w, "b", scene.allocator.held_by(w.id), 8) for w in victims]
    assert not rules.allows(as_victims)


def test_a_tenant_within_its_share_does_not_preempt_others_that_are_not_borrowing():
    scene = Scene([quota.Quota("a", 64), quota.Quota("b", 64)])
    scene.fill("b-", range(0, 8), priority=0, tenant="b")
    scene.fill("a-", range(8, 16), priority=9000, tenant="a")
    found = scene.plan(request(8), W("new", 8, "a", priority=5000))
    assert isinstance(found, placement.Rejection)


def test_a_tenant_that_may_not_borrow_frees_its_own_partitions_down_to_its_share():
    scene = Scene([quota.Quota("a", 64, quota.Borrowing.NEVER)])
    scene.put(W("a-old", 8, "a", priority=0, created=1.0), (0, 8))
    scene.put(W("a-young", 8, "a", priority=0, created=2.0), (1, 8))
    scene.fill("a-", range(2, 8), priority=1000, tenant="a")  # a at its share, 64; half the pod is free
    found = scene.plan(request(8), W("new", 8, "a", priority=100))
    assert isinstance(found, preemption.Preemption)
    assert found.victims == ("a-young",)
    # nothing below its priority to free: quota exceeded
    refused = scene.plan(request(8), W("new", 8, "a", priority=0))
    assert isinstance(refused, placement.Rejection) and refused.reason == Reason.QUOTA_EXCEEDED


def test_partitions_of_namespaces_no_quota_names_use_only_what_no_quota_holds():
    scene = Scene([quota.Quota("a", 96)])  # 32 NPUs unquoted
    scene.fill("u-", range(0, 4), priority=0)  # the unquoted use their 32
    found = scene.plan(request(8), W("new", 8, priority=0))
    assert isinstance(found, placement.Rejection) and found.reason == Reason.QUOTA_EXCEEDED
    # a higher-priority unquoted partition preempts an unquoted one, to stay within the 32
    found = scene.plan(request(8), W("new", 8, priority=10))
    assert isinstance(found, preemption.Preemption) and found.victims[0].startswith("u-")


def test_every_victim_holds_a_device_the_placement_uses():
    scene = Scene()
    scene.put(W("a", 4, priority=0), (0, 4))
    scene.put(W("b", 4, priority=0), (0, 4))
    scene.fill("busy", range(1, 16))
    found = scene.plan(request(4, "node"), W("new", 4, priority=100))
    assert isinstance(found, preemption.Preemption)
    assert len(found.victims) == 1
    used = {(slot.node, device) for slot in found.placement.slots for device in slot.devices}
    held = scene.allocator.placement_of(found.victims[0])
    assert held is not None
    assert used == {(slot.node, device) for slot in held.slots for device in slot.devices}


def test_victim_order_is_lowest_priority_then_youngest():
    workloads = [
        W("a", 1, priority=5, created=1),
        W("b", 1, priority=0, created=1),
        W("c", 1, priority=0, created=3),
    ]
    assert [w.id for w in preemption.victim_order(workloads)] == ["c", "b", "a"]


def test_the_classic_picker_takes_the_lowest_priority_youngest_first_and_can_preempt_for_nothing():
    # node 0: two young low-priority halves on different nodes; the classic order frees 8 devices that
    # do not make a whole node, the topology-aware search frees the one whole node it needs
    scene = Scene()
    scene.put(W("young-a", 4, priority=0, created=9.0), (0, 4))
    scene.put(W("young-b", 4, priority=0, created=8.0), (1, 4))
    scene.put(W("old-whole", 8, priority=0, created=1.0), (2, 8))
    scene.fill("busy", range(16))
    ledger = quota.Ledger(scene.quotas, scene.placed.values())
    urgent = W("new", 8, priority=100)
    classic = classic_preemption.plan_classic(
        scene.allocator, request(8, "node"), urgent, scene.placed, ledger
    )
    assert isinstance(classic, classic_preemption.ClassicPreemption)
    assert classic.victims == ("young-a", "young-b") and classic.placement is None
    found = scene.plan(request(8, "node"), urgent)
    assert isinstance(found, preemption.Preemption) and found.victims == ("old-whole",)
