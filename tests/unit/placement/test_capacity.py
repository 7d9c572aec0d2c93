"""The capacity summary: counts that add up, the largest free block per tier, fragmentation as defined."""

from __future__ import annotations

import pytest

from tests.unit.placement.builders import make_allocator, place


def test_an_empty_superpod_has_no_fragmentation():
    summary = make_allocator("cloudmatrix-384").capacity()
    assert (summary.total, summary.free, summary.reserved, summary.allocated) == (768, 736, 32, 0)
    assert summary.fragmentation == 0.0
    assert summary.largest_free_block == (("module", 2), ("node", 16), ("superpod", 736))


def test_fragmentation_is_the_share_of_free_devices_on_touched_nodes():
    allocator = make_allocator("ascend-910b", nodes=4)
    place(allocator, "a", 2)  # node 0: 6 free on a touched node
    summary = allocator.capacity()
    assert summary.free == 30
    assert summary.fragmentation == pytest.approx(6 / 30, abs=1e-6)
    assert dict(summary.fragmentation_by_tier)["node"] == summary.fragmentation


def test_every_node_touched_means_full_fragmentation():
    allocator = make_allocator("ascend-910b", nodes=2)
    place(allocator, "a", 1, max_tier="node")
    place(allocator, "b", 8)
    place(allocator, "c", 1)  # best fit: node 0 again
    assert allocator.capacity().fragmentation == 1.0


def test_unhealthy_devices_do_not_count_as_fragmentation():
    allocator = make_allocator("ascend-910b", nodes=2)
    allocator.mark_unhealthy("node-0-0", ["Ascend910-3"])
    summary = allocator.capacity()
    assert summary.fragmentation == 0.0
    assert (summary.free, summary.unhealthy) == (15, 1)


def test_an_allocated_device_that_fails_stays_allocated():
    allocator = make_allocator("ascend-910b", nodes=2)
    decision = place(allocator, "a", 4)
    node, device = decision.device_ids()[0].split("/")
    allocator.mark_unhealthy(node, [device])
    summary = allocator.capacity()
    assert (summary.allocated, summary.unhealthy, summary.free) == (4, 0, 12)
    allocator.release("a")
    summary = allocator.capacity()
    assert (summary.allocated, summary.unhealthy, summary.free) == (0, 1, 15)
    allocator.mark_healthy(node, [device])
    assert allocator.capacity().free == 16


def test_the_summary_converts_to_the_superpod_status_models():
    allocator = make_allocator("atlas-950", nodes=16)
    place(allocator, "a", 20)
    summary = allocator.capacity()
    assert summary.api_devices().model_dump() == {
        "total": 128,
        "free": 108,
        "allocated": 20,
        "unhealthy": 0,
        "reserved": 0,
    }
    assert [block.model_dump() for block in summary.api_blocks()] == [
        {"tier": "node", "devices": 8},
        {"tier": "rack", "devices": 64},
        {"tier": "superpod", "devices": 108},
    ]
    assert summary.partitions == 1
