"""Why a pass decided as it did: one line per partition, naming quota, capacity or priority."""

from __future__ import annotations

from superpod import placement
from superpod.placement import explain, queue, quota

from tests.unit.placement.builders import make_allocator

W = quota.Workload
PC = quota.PreemptionPolicy


class Scene:
    """Nodes of 8 devices (ascend-910b, no racks): each workload asks for one node's worth or less."""

    def __init__(self, quotas: list[quota.Quota] | None = None, nodes: int = 2) -> None:
        self.allocator = make_allocator("ascend-910b", nodes=nodes)
        self.ledger = quota.Ledger(quota.Quotas(quotas or [], self.allocator.capacity().free))
        self.placed: dict[str, quota.Workload] = {}

    def decide(self, workload: quota.Workload) -> str:
        """One pass for `workload`, explained against the state before it."""
        before = dict(self.placed)
        ledger = quota.Ledger(self.ledger.quotas, before.values())
        request = {workload.id: placement.PlacementRequest(workload.npus, max_tier="node")}
        (decision,) = queue.admit(self.allocator, self.ledger, [workload], request, self.placed, 0.0)
        return explain.explain(decision, ledger, before)


def test_a_partition_that_fits_says_how_its_quota_stands():
    scene = Scene([quota.Quota("a", 8), quota.Quota("b", 8)])
    assert (
        scene.decide(W("a1", 8, "a"))
        == "placed: it fits as things are; quota a: 8 of 8 NPUs, within its share"
    )
    assert scene.decide(W("a2", 4, "a")) == (
        "placed: it fits as things are; quota a: 12 of 8 NPUs, borrows 4 idle NPUs of other quotas"
    )


def test_a_reclaim_names_its_victim_and_the_quota_that_borrowed():
    scene = Scene([quota.Quota("a", 8), quota.Quota("b", 8)])
    scene.decide(W("a1", 8, "a", created=1, running_pods=1))  # the one with a running pod is spared
    scene.decide(W("a2", 8, "a", created=2))
    line = scene.decide(W("b1", 8, "b", created=3))
    assert line == (
        "preempts a2 (reclaim: quota a borrows 8 NPUs beyond its share, which quota b needs within its own; "
        "8 NPUs, no running pod); then placed on the devices they free; quota b: 8 of 8 NPUs, within its share"
    )


def test_a_priority_preemption_names_both_priorities():
    scene = Scene(nodes=1)
    scene.decide(W("batch", 8, priority=10))
    assert scene.decide(W("urgent", 8, priority=1000)) == (
        "preempts batch (priority 10 below 1000; 8 NPUs, no running pod); then placed on the devices they free"
    )


def test_a_quota_refusal_is_explained_by_the_quota_alone():
    scene = Scene([quota.Quota("a", 8, quota.Borrowing.NEVER), quota.Quota("b", 8)])
    scene.decide(W("a1", 8, "a"))
    assert scene.decide(W("a2", 4, "a")) == (
        "waits for quota: quota a: 8 of 8 NPUs in use, 4 more would exceed the nominal share and borrowing is Never"
    )


def test_a_partition_that_may_preempt_nothing_says_why():
    scene = Scene(nodes=1)
    scene.decide(W("first", 8, priority=100))
    line = scene.decide(W("second", 8, priority=100))
    assert line.startswith("waits for capacity: asked 8 NPUs")
    assert line.endswith(
        "priority: it may preempt nothing: the 1 placed partition(s) have priority 100 or higher"
    )


def test_a_borrower_above_its_share_may_not_reclaim_and_never_policy_preempts_nothing():
    scene = Scene([quota.Quota("a", 4), quota.Quota("b", 12)])
    scene.decide(W("b1", 8, "b"))
    scene.decide(W("b2", 4, "b"))
    scene.decide(W("a1", 4, "a", priority=5))
    # a may borrow, so it waits for capacity; its own partitions are not below it and, above its share, it
    # may not reclaim
    assert scene.decide(W("a2", 4, "a", priority=5)) == (
        "waits for capacity: asked 4 NPUs, within one node: not enough free devices; priority: it may preempt "
        "nothing: the 1 placed partition(s) of quota a have priority 5 or higher, and it would be above its own "
        "share, so it may not reclaim from other quotas"
    )
    polite = Scene(nodes=1)
    polite.decide(W("low", 8, priority=0))
    line = polite.decide(W("high", 8, priority=50, preemption_policy=PC.NEVER))
    assert line.startswith("waits for capacity: ")
    assert line.endswith("; it preempts nothing: its PriorityClass's preemptionPolicy is Never")


def test_every_explanation_is_one_line():
    scene = Scene([quota.Quota("a", 8), quota.Quota("b", 8)])
    lines = [
        scene.decide(W("a1", 8, "a", created=1)),
        scene.decide(W("a2", 8, "a", created=2)),
        scene.decide(W("b1", 8, "b", created=3)),
        scene.decide(W("b2", 8, "b", created=4)),
    ]
    assert all(line and "\n" not in line for line in lines)
