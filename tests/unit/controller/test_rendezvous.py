"""Which replica owns which SuperPod: every SuperPod one owner, even counts, few moves on a join or a leave."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st
from superpod.controller import rendezvous

names = st.sets(st.text("abcdefghij0123456789-", min_size=1, max_size=12), min_size=0, max_size=80)
replicas = st.sets(st.text("abcdefgh", min_size=1, max_size=6), min_size=1, max_size=8)


@given(names, replicas)
def test_every_superpod_has_one_live_owner_and_counts_differ_by_one_at_most(superpods, members):
    owner = rendezvous.assign(superpods, members)
    assert set(owner) == superpods
    assert set(owner.values()) <= members
    held = Counter(owner.values())
    counts = [held[member] for member in members]
    assert max(counts) - min(counts) <= 1


@given(names, replicas)
def test_the_answer_depends_only_on_the_sets(superpods, members):
    assert rendezvous.assign(sorted(superpods), sorted(members)) == rendezvous.assign(
        sorted(superpods, reverse=True), sorted(members, reverse=True)
    )


def test_a_join_moves_about_its_share_and_a_leave_only_what_it_must():
    superpods = [f"sp{i}" for i in range(64)]
    two = rendezvous.assign(superpods, ["a", "b"])
    three = rendezvous.assign(superpods, ["a", "b", "c"])
    moved = [name for name in superpods if two[name] != three[name]]
    assert sum(1 for name in moved if three[name] == "c") == 22  # what c must take
    assert len(moved) <= 22 + 8  # and few besides
    assert rendezvous.assign(superpods, []) == {}
