"""Properties of the preemption search on random small SuperPoDs (hypothesis), and exactness against every
victim set.

Random scenes: a few dozen partitions of random sizes, tenants (two quotas, one that may not borrow, and
unquoted namespaces), priorities and running pods placed by the allocator; then a preemptor. Whatever the
scene: the victims make the preemptor placeable (the allocator, with them released, plans the returned
placement); every victim is allowed (its own tenant's and of lower priority, or a borrowing tenant's in a
reclaim by a preemptor within its share); every victim holds a device the placement uses; and a rejection
means no allowed victim set helps. On scenes small enough to try every subset of the allowed victims, no
subset is cheaper than the answer.
"""

from __future__ import annotations

import itertools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from superpod import placement
from superpod.api import partition as api_partition
from superpod.placement import preemption, quota

from tests.unit.placement.builders import make_allocator

NODES = {"atlas-950": 16, "cloudmatrix-384": 4, "ascend-910a": 4, "nvidia-gb200-nvl72": 36}


def scene(profile: str, seed: int, partitions: int):
    rng = random.Random(seed)
    allocator = make_allocator(profile, nodes=NODES[profile], reserve=0)
    usable = allocator.capacity().free
    quotas = quota.Quotas(
        [quota.Quota("a", usable // 2), quota.Quota("b", usable // 4, quota.Borrowing.NEVER)], usable
    )
    ledger = quota.Ledger(quotas)
    placed: dict[str, quota.Workload] = {}
    for i in range(partitions * 4):
        npus = rng.choice([1, 2, 4, 8, 8, 16, 32])
        workload = quota.Workload(
            f"p{i}",
            npus,
            rng.choice(["a", "b", quota.UNQUOTED]),
            rng.choice([0, 0, 10, 100]),
            created=float(i),
            running_pods=rng.choice([0, 1, 2]),
        )
        if ledger.quota_refusal(workload) and rng.random() < 0.5:
            continue
        request = placement.PlacementRequest(npus, max_tier=rng.choice([None, "node", "rack"]))
        decision = allocator.plan_partition(request)
        if isinstance(decision, placement.Placement):
            allocator.commit(workload.id, decision)
            placed[workload.id] = workload
            ledger.charge(workload)
        if len(placed) >= partitions:
            break
    npus = rng.choice([2, 4, 8, 16, 32])
    request = placement.PlacementRequest(npus, max_tier=rng.choice([None, "node", "rack"]))
    preemptor = quota.Workload("new", npus, rng.choice(["a", "b", quota.UNQUOTED]), rng.choice([5, 50, 1000]))
    return allocator, request, preemptor, placed, ledger


def cost_of(allocator, plan: placement.Placement, victims: list[preemption.Victim]) -> tuple[object, ...]:
    tiers = {tier.name: i for i, tier in enumerate(allocator.tree.profile.tiers)}
    return (
        max((v.workload.priority for v in victims), default=preemption.LOWEST_PRIORITY),
        sum(v.devices for v in victims),
        len(victims),
        sum(v.workload.running_pods for v in victims),
        tiers[plan.tier_span],
        -min((v.workload.created for v in victims), default=0.0),
    )


def allowed_victims(allocator, rules, placed, ledger) -> list[preemption.Victim]:
    return [
        preemption.Victim(
            placed[pid],
            ledger.tenant(placed[pid]),
            allocator.held_by(pid),
            sum(mask.bit_count() for mask in allocator.held_by(pid).values()),
        )
        for pid in allocator.partitions
        if rules.eligible(placed[pid])
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=st.sampled_from(sorted(NODES)),
    seed=st.integers(0, 10**6),
    partitions=st.integers(3, 30),
)
def test_victims_make_the_preemptor_placeable_and_are_allowed_and_used(profile, seed, partitions):
    allocator, request, preemptor, placed, ledger = scene(profile, seed, partitions)
    before = allocator.capacity()
    found = preemption.plan_preemption(allocator, request, preemptor, placed, ledger)
    assert allocator.capacity() == before  # planning changes nothing
    rules = preemption.Rules(ledger, preemptor)
    if isinstance(found, placement.Rejection):
        if found.reason != api_partition.PendingReason.UNSATISFIABLE:
            # no allowed victim set helps: not even all of them, when quotas allow taking them all
            everyone = allowed_victims(allocator, rules, placed, ledger)
            if rules.allows(everyone):
                with allocator.released([v.workload.id for v in everyone]):
                    assert isinstance(allocator.plan_partition(request), placement.Rejection)
        return
    with allocator.released(found.victims):
        assert allocator.plan_partition(request) == found.placement
    used = {(slot.node, device) for slot in found.placement.slots for device in slot.devices}
    victims = [placed[pid] for pid in found.victims]
    tenant = ledger.tenant(preemptor)
    for victim in victims:
        if ledger.tenant(victim) == tenant:
            assert victim.priority < preemptor.priority
        else:
            assert ledger.borrowed(ledger.tenant(victim)) > 0 and rules.reclaim
            assert victim.id in found.reclaimed
        held = allocator.placement_of(victim.id)
        assert held is not None
        assert rules.required_own or used & {(n, d) for n, devices in held.held for d in devices}
    assert rules.allows(
        [v for v in allowed_victims(allocator, rules, placed, ledger) if v.workload.id in found.victims]
    )
    assert list(found.victims) == [w.id for w in preemption.victim_order(victims)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=st.sampled_from(sorted(NODES)),
    seed=st.integers(0, 10**6),
    partitions=st.integers(3, 10),
)
def test_no_victim_set_is_cheaper_than_the_answer_on_small_scenes(profile, seed, partitions):
    allocator, request, preemptor, placed, ledger = scene(profile, seed, partitions)
    rules = preemption.Rules(ledger, preemptor)
    candidates = allowed_victims(allocator, rules, placed, ledger)
    best = None
    for size in range(len(candidates) + 1):
        for subset in itertools.combinations(candidates, size):
            if not rules.allows(subset):
                continue
            with allocator.released([v.workload.id for v in subset]):
                plan = allocator.plan_partition(request)
            if isinstance(plan, placement.Placement):
                cost = cost_of(allocator, plan, list(subset))
                best = cost if best is None or cost < best else best
    found = preemption.plan_preemption(allocator, request, preemptor, placed, ledger)
    if isinstance(found, placement.Rejection):
        assert best is None or preemptor.preemption_policy == quota.PreemptionPolicy.NEVER
        return
    assert found.exact
    cost = found.cost
    assert (cost.priority, cost.devices, cost.partitions, cost.pods, cost.tier, cost.youth) == best
