"""The pending queue: admission order, backfill, preemption in a pass, the head's reservation."""

from __future__ import annotations

from superpod import placement
from superpod.api import partition as api_partition
from superpod.placement import queue, quota

from tests.unit.placement.builders import make_allocator

Reason = api_partition.PendingReason
W = quota.Workload


def test_the_order_is_within_share_first_then_priority_then_age():
    quotas = quota.Quotas([quota.Quota("a", 16), quota.Quota("b", 64)], usable=128)
    ledger = quota.Ledger(quotas, [W("a-running", 16, "a")])
    pending = [
        W("a-urgent-over-share", 8, "a", priority=1000, created=1),
        W("b-old", 8, "b", priority=0, created=1),
        W("b-new", 8, "b", priority=0, created=2),
        W("b-high", 8, "b", priority=100, created=3),
    ]
    assert [w.id for w in queue.order(pending, ledger)] == ["b-high", "b-old", "b-new", "a-urgent-over-share"]


class Pass:
    def __init__(self, quotas: list[quota.Quota] | None = None, nodes: int = 2) -> None:
        self.allocator = make_allocator("ascend-910b", nodes=nodes)  # nodes of 8, no racks
        self.ledger = quota.Ledger(quota.Quotas(quotas or [], self.allocator.capacity().free))
        self.placed: dict[str, quota.Workload] = {}
        self.requests: dict[str, placement.PlacementRequest] = {}

    def run(self, pending: list[quota.Workload], now: float = 0.0, **kwargs: object):
        for workload in pending:
            self.requests.setdefault(workload.id, placement.PlacementRequest(workload.npus, max_tier="node"))
        return queue.admit(self.allocator, self.ledger, pending, self.requests, self.placed, now, **kwargs)  # type: ignore[arg-type]


def test_a_partition_that_cannot_be_placed_does_not_block_smaller_ones_behind_it():
    scene = Pass()
    decisions = scene.run([W("half", 4, created=0), W("big", 16, created=1), W("small", 4, created=2)])
    outcome = {d.workload.id: d for d in decisions}
    assert isinstance(outcome["half"], queue.Admit) and isinstance(outcome["small"], queue.Admit)
    assert isinstance(outcome["big"], queue.Wait) and outcome["big"].reason == Reason.UNSATISFIABLE
    assert set(scene.placed) == {"half", "small"} and scene.ledger.used_by(quota.UNQUOTED) == 8


def test_an_urgent_partition_preempts_in_the_pass_and_its_victim_leaves_the_books():
    scene = Pass(nodes=1)
    scene.run([W("batch", 8, priority=0)])
    decisions = scene.run([W("urgent", 8, priority=1000, queued=5.0)], now=5.0)
    (admitted,) = decisions
    assert isinstance(admitted, queue.Admit) and admitted.victims == ("batch",)
    assert set(scene.placed) == {"urgent"} and scene.placed["urgent"].queued is None
    assert scene.allocator.placement_of("batch") is None and scene.ledger.used_by(quota.UNQUOTED) == 8


def test_a_quota_refusal_is_quota_exceeded():
    scene = Pass([quota.Quota("a", 8, quota.Borrowing.NEVER)])
    scene.run([W("a1", 8, "a")])
    (waiting,) = scene.run([W("a2", 4, "a")])
    assert isinstance(waiting, queue.Wait) and waiting.reason == Reason.QUOTA_EXCEEDED
    assert "borrowing is Never" in waiting.message


def test_after_waiting_long_enough_the_head_reserves_the_devices_it_waits_for():
    scene = Pass(nodes=2)
    scene.run([W("left-half", 4, created=0), W("right-half", 4, created=0)])
    left = scene.allocator.placement_of("left-half")
    right = scene.allocator.placement_of("right-half")
    assert left and right and left.slots[0].node == right.slots[0].node  # node 0 full, node 1 empty
    scene.run([W("filler", 4, created=1)])  # node 1 half used
    big = W("whole-node", 8, created=2, queued=2.0)
    small = W("small", 4, created=3, queued=3.0)
    # before the threshold, the small one backfills the free half of node 1
    early = {d.workload.id: d for d in scene.run([big, small], now=100.0, reserve_after=600.0)}
    assert isinstance(early["small"], queue.Admit) and not early["whole-node"].reserved  # type: ignore[union-attr]
    scene.allocator.release("small")
    scene.ledger.refund("small")
    scene.placed.pop("small")
    # after it, the head holds the free half it waits for, and the small one waits
    late = {d.workload.id: d for d in scene.run([big, small], now=700.0, reserve_after=600.0)}
    assert isinstance(late["whole-node"], queue.Wait) and late["whole-node"].reserved
    assert isinstance(late["small"], queue.Wait)
    assert all(not pid.startswith(queue.RESERVATION) for pid in scene.allocator.partitions)  # released after
    # once the partition it waits for leaves, it is placed
    scene.allocator.release("filler")
    scene.ledger.refund("filler")
    scene.placed.pop("filler")
    done = {d.workload.id: d for d in scene.run([big, small], now=800.0)}
    assert isinstance(done["whole-node"], queue.Admit)


def test_with_no_quotas_and_no_priorities_a_pass_places_in_age_order_as_before():
    scene = Pass(nodes=1)
    decisions = scene.run([W("second", 8, created=2), W("first", 8, created=1)])
    assert [type(d).__name__ for d in decisions] == ["Admit", "Wait"]
    assert decisions[0].workload.id == "first" and decisions[1].reason == Reason.INSUFFICIENT_CAPACITY  # type: ignore[union-attr]
