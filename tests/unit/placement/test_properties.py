"""Invariants of the allocator on every profile, under random sequences of operations (hypothesis).

After every step: no device is in two partitions; every placement has exactly the devices asked, in slots
of the pod size on one node that obey the profile's per-node rule, within maxTier and off reserve nodes; the
incrementally kept counts equal a recount from scratch. Releasing everything restores the initial state;
the same operations give the same placements; repair keeps the partition inside its tier span.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from superpod import placement
from superpod.placement import baselines
from superpod.placement import state as placement_state
from superpod.topology import profiles

from tests.unit.placement.builders import SMALL_NODES, make_allocator

PROFILES = [*SMALL_NODES, "atlas-950-supercluster", "custom"]
SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
TIERS = (None, "module", "pair", "node", "rack", "superpod", "pod", "cluster")


@dataclasses.dataclass(frozen=True)
class Create:
    npus: int
    blocks: int
    max_tier: str | None
    pod: int | None
    whole_nodes: bool

    def request(self) -> placement.PlacementRequest:
        block = self.npus // self.blocks if self.npus % self.blocks == 0 else None
        return placement.PlacementRequest(
            npus=self.npus,
            block_size=block,
            max_tier=self.max_tier,
            devices_per_pod=self.pod,
            whole_nodes=self.whole_nodes,
        )


@dataclasses.dataclass(frozen=True)
class Delete:
    which: int


@dataclasses.dataclass(frozen=True)
class Fail:
    node: int  # with held: which live partition
    device: int  # with held: which of its devices
    repair: bool
    held: bool  # fail a device some partition holds (else any device of any node)


@dataclasses.dataclass(frozen=True)
class Heal:
    node: int


operations = st.lists(
    st.one_of(
        st.builds(
            Create,
            npus=st.sampled_from(SIZES),
            blocks=st.sampled_from((1, 1, 2, 4)),
            max_tier=st.sampled_from(TIERS),
            pod=st.sampled_from((None, None, 1, 2, 4, 8)),
            whole_nodes=st.booleans(),
        ),
        st.builds(Delete, which=st.integers(0, 50)),
        st.builds(
            Fail,
            node=st.integers(0, 1000),
            device=st.integers(0, 127),
            repair=st.booleans(),
            held=st.booleans(),
        ),
        st.builds(Heal, node=st.integers(0, 1000)),
    ),
    max_size=25,
)


def apply(allocator: placement.Allocator, steps: list[object]) -> list[tuple[str, object]]:
    """Run the steps; returns what each create and repair answered, for determinism checks."""
    tree = allocator.tree
    log: list[tuple[str, object]] = []
    live: list[str] = []
    for number, step in enumerate(steps):
        if isinstance(step, Create):
            pid = f"p{number}"
            decision = allocator.plan_partition(step.request())
            log.append((pid, decision))
            if isinstance(decision, placement.Placement):
                check_placement(allocator, step, decision)
                allocator.commit(pid, decision)
                live.append(pid)
        elif isinstance(step, Delete) and live:
            allocator.release(live.pop(step.which % len(live)))
        elif isinstance(step, Fail):
            if step.held and live:
                victim = allocator.placement_of(live[step.node % len(live)])
                assert victim is not None
                node_name, device = victim.device_ids()[step.device % len(victim.device_ids())].split("/")
                node = tree.by_name[node_name]
            else:
                node = tree.nodes[step.node % len(tree.nodes)]
                device = node.devices[step.device % len(node.devices)]
            affected = allocator.mark_unhealthy(node.name, [device])
            for pid in affected:
                before = allocator.placement_of(pid)
                assert before is not None
                if step.repair:
                    repaired = allocator.repair(pid, [f"{node.name}/{device}"])
                    log.append((f"repair {pid}", repaired))
                    if isinstance(repaired, placement.Placement):
                        check_repair(allocator, before, repaired, f"{node.name}/{device}")
        elif isinstance(step, Heal):
            node = tree.nodes[step.node % len(tree.nodes)]
            allocator.set_health(node.name, [])
        check_books(allocator)
    return log


def check_placement(allocator: placement.Allocator, step: Create, decision: placement.Placement) -> None:
    tree = allocator.tree
    profile = tree.profile
    rule = profile.rule
    assert sum(len(slot.devices) for slot in decision.slots) == step.npus
    pod = decision.pod_size
    if step.pod is not None:
        assert pod == step.pod
    ranks = [slot.rank for slot in decision.slots]
    assert ranks == [i * pod for i in range(len(decision.slots))]
    for slot in decision.slots:
        node = tree.by_name[slot.node]
        assert not node.reserve, "plan never uses reserve nodes"
        assert len(slot.devices) == pod == len(set(slot.devices))
        index = tree.device_index[node.name]
        mask = sum(1 << index[device] for device in slot.devices)
        assert mask & allocator.state.free[node.index] == mask, "slot devices are free and healthy"
        if pod < rule.module_size:
            assert any(mask & ~module == 0 for module in node.modules), "a small pod stays in one module"
        else:
            assert all(mask & module in (0, module) for module in node.modules), "whole modules only"
        if step.whole_nodes:
            assert allocator.state.held[node.index] == 0, "whole nodes are untouched before"
    if step.max_tier is not None:
        limit = profile.tier_index(step.max_tier)
        assert limit is not None
        assert [tier.name for tier in profile.tiers].index(decision.tier_span) <= limit


def check_repair(
    allocator: placement.Allocator, before: placement.Placement, after: placement.Placement, failed: str
) -> None:
    tree = allocator.tree
    assert failed not in after.device_ids()
    assert sorted(len(slot.devices) for slot in after.slots) == sorted(
        len(slot.devices) for slot in before.slots
    )
    names = [tier.name for tier in tree.profile.tiers]
    assert names.index(after.tier_span) <= max(names.index(before.tier_span), tree.node_tier), "tier kept"


def check_books(allocator: placement.Allocator) -> None:
    tree = allocator.tree
    state = allocator.state
    owned: dict[int, int] = {}
    sharing = [0] * len(tree.nodes)
    for placed in allocator.partitions.values():
        for node_name, devices in placed.held:
            sharing[tree.by_name[node_name].index] += 1
            node = tree.by_name[node_name]
            index = tree.device_index[node_name]
            mask = sum(1 << index[device] for device in devices)
            assert owned.get(node.index, 0) & mask == 0, "no device in two partitions"
            owned[node.index] = owned.get(node.index, 0) | mask
    assert [owned.get(i, 0) for i in range(len(tree.nodes))] == state.held
    assert sharing == state.partitions_in[0]
    for level in range(1, len(tree.levels)):  # every domain counts each partition touching it once
        per_domain = [0] * len(tree.levels[level])
        for placed in allocator.partitions.values():
            for domain in {tree.by_name[node_name].domains[level] for node_name, _ in placed.held}:
                per_domain[domain] += 1
        assert per_domain == state.partitions_in[level]
    fresh = placement_state.FreeState(tree)
    for node in tree.nodes:
        fresh.set_node(node.index, held=state.held[node.index], unhealthy=state.unhealthy[node.index])
    for key in state.caps:
        assert fresh.shape_caps(key) == state.caps[key]
        assert fresh.node_hist[key] == state.node_hist[key]
    assert fresh.free_count == state.free_count
    assert fresh.held_count == state.held_count
    assert fresh.untouched_free == state.untouched_free
    summary = allocator.capacity()
    assert summary.free + summary.allocated + summary.unhealthy + summary.reserved == summary.total


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("profile", PROFILES)
@SETTINGS
@given(steps=operations)
def test_the_books_stay_exact_under_any_operations(profile, steps):
    apply(make_allocator(profile, SMALL_NODES.get(profile), reserve=1), steps)


@pytest.mark.parametrize("profile", PROFILES)
@SETTINGS
@given(steps=operations)
def test_the_same_operations_give_the_same_placements(profile, steps):
    first = apply(make_allocator(profile, SMALL_NODES.get(profile), reserve=1), steps)
    second = apply(make_allocator(profile, SMALL_NODES.get(profile), reserve=1), steps)
    assert first == second


@pytest.mark.parametrize("profile", PROFILES)
@SETTINGS
@given(steps=operations)
def test_releasing_everything_restores_the_initial_state(profile, steps):
    allocator = make_allocator(profile, SMALL_NODES.get(profile), reserve=1)
    steps = [step for step in steps if not isinstance(step, Fail | Heal)]
    initial = allocator.capacity()
    apply(allocator, steps)
    for pid in list(allocator.partitions):
        allocator.release(pid)
    assert allocator.capacity() == initial
    assert allocator.state.held == [0] * len(allocator.tree.nodes)


@pytest.mark.parametrize(
    "policy", [baselines.FirstFit(), baselines.RandomSpread(3), baselines.GreedyBestFit()]
)
@pytest.mark.parametrize("profile", ["cloudmatrix-384", "atlas-950", "ascend-910a"])
@settings(max_examples=10, deadline=None)
@given(steps=operations)
def test_baselines_obey_the_same_hard_rules(policy, profile, steps):
    steps = [step for step in steps if not (isinstance(step, Fail) and step.repair)]
    apply(make_allocator(profile, SMALL_NODES.get(profile), reserve=1, policy=policy), steps)


def test_every_profile_is_covered():
    assert set(PROFILES) == {*profiles.BUILTIN, "custom"}
