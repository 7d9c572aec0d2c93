"""Tenant traces: generation is seeded and well-formed; replay through the queue counts what the issue asks."""

from __future__ import annotations

import itertools

import pytest
from superpod.placement import tenancy, trace

from tests.unit.placement.builders import make_allocator


@pytest.fixture(scope="module")
def events() -> list[trace.Event]:
    return tenancy.generate(make_allocator("atlas-950", nodes=16), seed=3, tenants=3, requests=250)


def test_quotas_come_first_and_share_the_usable_devices_in_whole_nodes(events):
    quotas = [e for e in events if e.op == "quota"]
    assert [e.id for e in quotas] == ["team-1", "team-2", "team-3"]
    assert sum(e.npus for e in quotas) == 128 and all(e.npus % 8 == 0 for e in quotas)
    assert [e.borrowing for e in quotas] == ["Allowed", "Allowed", "Never"]
    assert events[: len(quotas)] == quotas


def test_creates_carry_tenant_priority_and_run_time_within_the_share(events):
    shares = {e.id: e.npus for e in events if e.op == "quota"}
    creates = [e for e in events if e.op == "create"]
    assert len(creates) == 250 and not [e for e in events if e.op == "delete"]
    assert [e.at for e in creates] == sorted(e.at for e in creates)
    for event in creates:
        assert event.tenant in shares and event.npus <= shares[event.tenant]
        assert event.priority in (0, 100, 1000) and event.duration is not None and event.duration >= 30
        assert event.preemption_policy in (None, "Never")
    assert {e.priority for e in creates} == {0, 100, 1000}
    again = tenancy.generate(make_allocator("atlas-950", nodes=16), seed=3, tenants=3, requests=250)
    assert again == events


@pytest.mark.parametrize("algorithm", sorted(tenancy.PICKERS))
def test_replay_accounts_for_every_partition_and_never_double_books(events, algorithm):
    allocator = make_allocator("atlas-950", nodes=16)
    ticks = itertools.count()
    metrics = tenancy.replay(
        events, allocator, algorithm=algorithm, clock=lambda: next(ticks) * 0.001, cpu_clock=lambda: 0.0
    )
    summary = metrics.summary()
    assert summary["requests"] == 250
    assert summary["completed"] == 250  # everything runs to its end in the end
    assert summary["admissions"] == 250 + summary["victims"]  # each victim is placed again later
    assert not allocator.partitions  # all gone at the end: nothing leaked
    assert summary["pickerP99Ms"] >= 1.0  # the clock passed in is the one used
    assert set(summary["tenants"]) == {"team-1", "team-2", "team-3"}
    for tenant in summary["tenants"].values():
        assert tenant["shareUsed"] is None or 0.0 <= tenant["shareUsed"] <= 1.0
    if algorithm == "superpod":
        assert summary["uselessPreemptions"] == 0


def test_the_latency_bench_fills_and_times_both_pickers():
    row = tenancy.latency(
        make_allocator("atlas-950", nodes=16),
        decisions=20,
        fill=0.85,
        seed=1,
        tenants=2,
        clock=lambda: 0.0,
        cpu_clock=lambda: 0.0,
    )
    assert row["decisions"] == 20 and row["searched"] >= 10
    assert 0.7 <= row["utilization"] <= 0.86
    assert row["useless"] == 0
    assert {"superpodSearchedP99Ms", "kueue-classicSearchedP99Ms"} <= set(row)
