"""The pending queue's order: oldest first, and within one second of creationTimestamp first come, first served."""

from __future__ import annotations

from superpod.controller import partitionqueue

SECOND = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:00:01Z"


def test_partitions_created_in_the_same_second_wait_in_the_order_they_were_seen_not_by_name() -> None:
    queue = partitionqueue.PendingQueue()
    queue.add("ns/zebra", SECOND)
    queue.add("ns/apple", SECOND)
    queue.add("ns/early", "2025-12-31T23:59:59Z")
    assert queue.keys() == ["ns/early", "ns/zebra", "ns/apple"]


def test_a_partition_queued_again_keeps_the_arrival_it_was_first_seen_with() -> None:
    queue = partitionqueue.PendingQueue()
    queue.seen("ns/refused")  # seen while placed, before the other arrived
    queue.add("ns/behind", SECOND)
    queue.add("ns/refused", SECOND)  # its write was refused: it waits again
    assert queue.keys() == ["ns/refused", "ns/behind"]
    queue.remove("ns/refused")
    queue.add("ns/refused", SECOND)
    assert queue.keys() == ["ns/refused", "ns/behind"]


def test_a_forgotten_partition_that_comes_back_is_a_new_arrival() -> None:
    queue = partitionqueue.PendingQueue()
    queue.add("ns/a", SECOND)
    queue.add("ns/b", SECOND)
    queue.forget("ns/a")
    queue.add("ns/a", SECOND)
    assert queue.keys() == ["ns/b", "ns/a"]
    assert queue.due(0.0) == ["ns/b", "ns/a"]
    queue.add("ns/c", LATER)
    assert queue.keys()[-1] == "ns/c"
