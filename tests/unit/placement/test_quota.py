"""Quotas: nominal shares, the unquoted tenant's rule, what each tenant uses and borrows, quota refusals."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from superpod.placement import quota

Q = quota.Quota
W = quota.Workload


def test_with_no_quotas_the_unquoted_tenant_owns_everything_and_never_borrows():
    quotas = quota.Quotas([], usable=768)
    ledger = quota.Ledger(quotas, [W("a", 700, tenant="team-x")])  # an unknown quota name is unquoted
    assert not quotas.enabled
    assert quotas.nominal(quota.UNQUOTED) == 768
    assert ledger.used_by(quota.UNQUOTED) == 700
    assert ledger.quota_refusal(W("b", 68)) is None
    assert ledger.borrowed(quota.UNQUOTED) == 0


@pytest.mark.parametrize(
    ("name", "placed", "asked", "refusal"),
    [
        pytest.param("within its share", [W("a", 100, "a")], W("n", 28, "a"), None, id="within-share"),
        pytest.param(
            "a borrower with idle capacity", [W("a", 128, "a")], W("n", 64, "a"), None, id="borrow-idle"
        ),
        pytest.param(
            "a borrower without enough idle capacity",
            [W("a", 128, "a"), W("b", 256, "b"), W("u", 300)],
            W("n", 128, "a"),
            "quota a: 128 of 128 NPUs in use; borrowing 128 needs that many idle, 84 are",
            id="borrow-no-idle",
        ),
        pytest.param(
            "a tenant that may not borrow",
            [W("b", 250, "b")],
            W("n", 8, "b"),
            "quota b: 250 of 256 NPUs in use, 8 more would exceed the nominal share and borrowing is Never",
            id="never-borrow",
        ),
        pytest.param(
            "a partition of a namespace no quota names, beyond what no quota holds",
            [W("u", 380)],
            W("n", 8),
            "namespaces no quota names: 380 of 384 NPUs in use, 8 more would exceed the nominal share and "
            "borrowing is Never",
            id="unquoted",
        ),
    ],
)
def test_quota_refusal(name, placed, asked, refusal):
    quotas = quota.Quotas([Q("a", 128), Q("b", 256, quota.Borrowing.NEVER)], usable=768)
    assert quota.Ledger(quotas, placed).quota_refusal(asked) == refusal, name


def test_the_unquoted_share_is_what_no_quota_holds_and_usage_adds_up():
    quotas = quota.Quotas([Q("a", 128), Q("b", 256)], usable=768)
    ledger = quota.Ledger(quotas, [W("a1", 100, "a"), W("a2", 60, "a"), W("u", 8)])
    assert [(u.tenant, u.nominal, u.used, u.borrowed) for u in ledger.usage()] == [
        ("a", 128, 160, 32),
        ("b", 256, 0, 0),
        ("", 384, 8, 0),
    ]
    # a1 (older) fills the share first; a2 straddles it: 28 within, 32 beyond
    assert ledger.borrowed_by_partition() == {"a1": 0, "a2": 32, "u": 0}
    assert ledger.is_borrowing("a2") and not ledger.is_borrowing("a1") and not ledger.is_borrowing("u")
    assert ledger.over_share(W("n", 8, "b")) == -248
    ledger.refund("a2")
    assert ledger.used_by("a") == 100 and not ledger.is_borrowing("a1")
    assert ledger.refund("a2") is None


def test_shares_beyond_the_usable_devices_are_a_problem_and_leave_the_unquoted_nothing():
    quotas = quota.Quotas([Q("a", 500), Q("b", 500)], usable=768)
    assert quotas.problem() == (
        "quotas assign 1000 NPUs but the SuperPod has 768 usable: nominal shares cannot all be met"
    )
    assert quotas.nominal(quota.UNQUOTED) == 0
    assert quota.Quotas([Q("a", 768)], usable=768).problem() is None


@pytest.mark.parametrize(
    ("quotas", "message"),
    [
        ([Q("a", 1), Q("a", 2)], "quota a is named twice"),
        ([Q("a", -1)], "quota a: npus must not be negative, got -1"),
        ([Q("", 1)], "a quota needs a name"),
    ],
)
def test_malformed_quotas_are_refused_with_a_message(quotas, message):
    with pytest.raises(ValueError, match=message):
        quota.Quotas(quotas, usable=64)


def test_a_partition_is_charged_once():
    ledger = quota.Ledger(quota.Quotas([], 64), [W("a", 8)])
    with pytest.raises(ValueError, match="partition a is already charged"):
        ledger.charge(W("a", 8))


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", ""]), st.integers(1, 64), st.integers(-2, 2), st.integers(0, 9)),
        max_size=12,
    )
)
def test_per_partition_borrowing_adds_up_to_the_tenants_and_spares_higher_priority_then_older(specs):
    quotas = quota.Quotas([Q("a", 64), Q("b", 32)], usable=128)
    workloads = [
        W(f"w{i}", npus, tenant, priority=priority, created=float(created))
        for i, (tenant, npus, priority, created) in enumerate(specs)
    ]
    ledger = quota.Ledger(quotas, workloads)
    borrowed = ledger.borrowed_by_partition()
    assert set(borrowed) == {w.id for w in workloads}
    for tenant in quotas.tenants():
        mine = [w for w in workloads if ledger.tenant(w) == tenant]
        assert sum(borrowed[w.id] for w in mine) == ledger.borrowed(tenant)
        ordered = sorted(mine, key=lambda w: (-w.priority, w.created))  # admission order, then charge order
        for w in ordered:
            assert 0 <= borrowed[w.id] <= w.npus
        # once one partition borrows, every later one (lower priority, or younger) borrows all it holds
        for earlier, later in itertools.pairwise(ordered):
            assert not borrowed[earlier.id] or borrowed[later.id] == later.npus
