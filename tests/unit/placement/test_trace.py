"""Churn traces: generation is seeded and well-formed; replay counts what the issue asks for."""

from __future__ import annotations

import itertools

import pytest
from superpod import placement
from superpod.placement import trace

from tests.unit.placement.builders import make_allocator


@pytest.fixture(scope="module")
def events() -> list[trace.Event]:
    return trace.generate(make_allocator("ascend-910b", nodes=8), seed=7, requests=300)


def test_the_same_seed_gives_the_same_trace(events):
    again = trace.generate(make_allocator("ascend-910b", nodes=8), seed=7, requests=300)
    other = trace.generate(make_allocator("ascend-910b", nodes=8), seed=8, requests=300)
    assert again == events
    assert other != events


def test_every_delete_follows_its_create_and_ids_are_unique(events):
    created: set[str] = set()
    for event in events:
        if event.op == "create":
            assert event.id not in created
            created.add(event.id)
        else:
            assert event.op == "delete" and event.id in created
    assert [event.at for event in events] == sorted(event.at for event in events)


def test_the_ideal_occupancy_stays_under_the_load_then_overflows_at_the_end(events):
    usable = 64
    live: dict[str, int] = {}
    peak_before_fill = 0
    for event in events:
        if event.op == "create":
            live[event.id] = event.npus
        else:
            del live[event.id]
        if event is not events[-1]:
            assert sum(live.values()) <= usable
        if any(e.op == "delete" for e in events[events.index(event) :]):
            peak_before_fill = max(peak_before_fill, sum(live.values()))
    assert peak_before_fill <= 0.9 * usable
    assert sum(live.values()) > usable  # the last request cannot fit even ideally


@pytest.mark.parametrize(
    ("profile", "nodes", "is_fill"),
    [
        pytest.param(
            "atlas-950",
            64,
            lambda e: e.npus == 64 and e.max_tier == "rack",
            id="a machine with racks is filled with whole racks, each limited to its rack",
        ),
        pytest.param(
            "cloudmatrix-384",
            None,
            lambda e: e.npus in (16, 32, 64) and e.max_tier is None,
            id="a flat SuperPoD is filled with 1, 2 or 4 whole nodes",
        ),
    ],
)
def test_the_churn_holds_its_load_and_the_fill_sends_the_machines_unit(profile, nodes, is_fill):
    allocator = make_allocator(profile, nodes=nodes)
    usable = allocator.capacity().free
    events = trace.generate(allocator, seed=3, requests=600)
    start = len(events)
    while start and events[start - 1].op == "create" and is_fill(events[start - 1]):
        start -= 1
    assert start < len(events) - 1 and not any(e.op == "delete" for e in events[start:])
    sizes: dict[str, int] = {}
    for event in events[:start]:  # the churn, up to its end: never above the load, not even at the end
        if event.op == "create":
            sizes[event.id] = event.npus
        else:
            del sizes[event.id]
        assert sum(sizes.values()) <= 0.9 * usable
    fill = [event.npus for event in events[start:]]
    assert sum(sizes.values()) + sum(fill[:-1]) <= usable < sum(sizes.values()) + sum(fill)


def test_events_round_trip_through_json(events):
    for event in events[:50]:
        assert trace.Event.from_json(event.to_json()) == event


def test_replay_counts_decisions_with_the_given_clock(events):
    ticks = itertools.count()
    allocator = make_allocator("ascend-910b", nodes=8)
    seen: list[str] = []
    metrics = trace.replay(
        events,
        allocator,
        clock=lambda: next(ticks) / 1000.0,  # every reading is 1 ms later
        on_decision=lambda event, decision: seen.append(event.id),
    )
    summary = metrics.summary()
    creates = sum(1 for event in events if event.op == "create")
    assert summary["requests"] == creates == len(seen)
    assert summary["placed"] + sum(summary["rejected"].values()) == creates
    assert summary["decisionP50Ms"] == summary["decisionP99Ms"] == pytest.approx(1.0)
    assert summary["utilizationAtFirstRejection"] is not None
    assert 0 < summary["meanUtilization"] <= 1
    assert 0 <= summary["idealTierRate"] <= 1


def test_replay_ignores_deletes_of_rejected_creates():
    allocator = make_allocator("ascend-910b", nodes=1)
    events = [
        trace.Event(0, "create", "big", npus=16),
        trace.Event(1, "delete", "big"),
        trace.Event(2, "create", "fits", npus=8),
    ]
    summary = trace.replay(events, allocator, clock=lambda: 0.0).summary()
    assert summary["rejected"] == {"Unsatisfiable": 1}
    assert summary["placed"] == 1
    assert allocator.partitions.keys() == {"fits"}


def test_ideal_tiers_name_the_lowest_tiers_an_empty_superpod_offers():
    allocator = make_allocator("atlas-950", nodes=32)
    assert allocator.ideal_tiers(placement.PlacementRequest(4)) == ("node", "node")
    assert allocator.ideal_tiers(placement.PlacementRequest(128, block_size=64)) == ("rack", "superpod")
    assert make_allocator("cloudmatrix-384").ideal_tiers(placement.PlacementRequest(2)) == (
        "module",
        "module",
    )
    assert allocator.ideal_tiers(placement.PlacementRequest(5000)) is None


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([], 0.99, 0.0), ([1.0], 0.5, 1.0), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4], 0.99, 4)],
)
def test_percentiles_are_nearest_rank(values, share, expected):
    assert trace.percentile(values, share) == expected


def test_tenant_fields_and_quota_events_survive_json_and_replay_skips_quotas():
    quota_event = trace.Event(at=0.0, op="quota", id="team-1", npus=64, borrowing="Never")
    create = trace.Event(
        at=1.5,
        op="create",
        id="p1",
        npus=8,
        tenant="team-1",
        priority=100,
        duration=60.0,
        preemption_policy="Never",
    )
    for event in (quota_event, create):
        assert trace.Event.from_json(event.to_json()) == event
    assert quota_event.to_json() == {
        "at": 0.0,
        "op": "quota",
        "id": "team-1",
        "npus": 64,
        "borrowing": "Never",
    }
    metrics = trace.replay([quota_event, create], make_allocator("ascend-910b", nodes=2), clock=lambda: 0.0)
    assert (metrics.requests, metrics.placed) == (1, 1)
