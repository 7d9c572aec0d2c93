"""Properties of plan_defragmentation on random states (hypothesis).

After any plan: no device is held twice at any step of its order, the request is placeable once the moves
are done, no moved partition spans a wider tier or breaks a block, ranks keep their order, only what the
policy allows moves (`check_moves`). The exact search is compared with a brute force that tries every way to
re-place every movable slot: no cheaper plan exists, and none exists when the planner finds none.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from superpod import placement
from superpod.api import partition as api_partition
from superpod.placement import mobility
from superpod.topology import noderules

from tests.unit.placement.builders import make_allocator
from tests.unit.placement.defrag_builders import check_moves, held, hold, tier_index, tiny_allocator

Policy = mobility.Policy
POLICIES = [Policy.UNBOUND, Policy.UNBOUND, Policy.MOVABLE, Policy.MOVABLE, Policy.NEVER]


@st.composite
def tiny_states(draw, most_movable_slots: int = 3):
    """A tiny SuperPod (4 nodes of two pairs, racks of two nodes) with partitions of one die, one pair, two
    dies on any nodes, and immovable blockers; a workload for each."""
    allocator = tiny_allocator()
    free = {node: [0, 1, 2, 3] for node in range(4)}
    workloads: dict[str, mobility.Workload] = {}
    movable_slots = 0
    for serial in range(draw(st.integers(3, 9))):
        pid = f"p{serial}"
        kind = draw(st.sampled_from(["die", "pair", "two dies", "blocker"]))
        open_nodes = [node for node, devices in free.items() if devices]
        if not open_nodes:
            break
        if kind == "pair":
            pairs = [(n, p) for n in open_nodes for p in (0, 2) if p in free[n] and p + 1 in free[n]]
            if not pairs:
                continue
            node, first = draw(st.sampled_from(pairs))
            slots = [(node, (first, first + 1))]
        elif kind == "two dies" and sum(len(devices) for devices in free.values()) >= 2:
            slots = []
            for _ in range(2):
                node = draw(st.sampled_from([n for n, devices in free.items() if devices]))
                die = draw(st.sampled_from(free[node]))
                free[node].remove(die)
                slots.append((node, (die,)))
            for node, (die,) in slots:
                free[node].append(die)
        else:
            node = draw(st.sampled_from(open_nodes))
            slots = [(node, (draw(st.sampled_from(free[node])),))]
        for node, devices in slots:
            for device in devices:
                free[node].remove(device)
        hold(allocator, pid, *slots)
        if kind == "blocker":
            workloads[pid] = mobility.Workload(running_pods=len(slots))
            continue
        workload = draw(
            st.sampled_from(
                [
                    mobility.Workload(),
                    mobility.Workload(),
                    mobility.Workload(running_pods=len(slots)),
                    mobility.Workload(running_pods=len(slots), movable=True),
                ]
            )
        )
        if movable_slots + len(slots) > most_movable_slots:
            workload = mobility.Workload(running_pods=len(slots))
        elif workload.running_pods == 0 or workload.movable:
            movable_slots += len(slots)
        workloads[pid] = workload
    return allocator, workloads


TINY_REQUESTS = [
    placement.PlacementRequest(2),
    placement.PlacementRequest(4),
    placement.PlacementRequest(2, devices_per_pod=1, max_tier="node"),
    placement.PlacementRequest(4, devices_per_pod=2),
    placement.PlacementRequest(8, max_tier="rack"),
    placement.PlacementRequest(6, devices_per_pod=2),
]


def level(allocator, decision):
    """The tier a placement spans, the module tier counted as the node's: several pods that happen to share
    one module are no better placed than on one node (a single small pod always sits in one module)."""
    return max(tier_index(allocator, decision.tier_span), allocator.tree.node_tier)


def brute_force(allocator, request, policy, workloads):
    """(level of the request's placement, devices moved, pods disturbed, partitions moved) of the best plan
    among every way to re-place every slot that may move; None when no way places the request."""
    tree = allocator.tree
    rule = tree.profile.rule
    partitions = allocator.partitions
    state = allocator.state

    def mask_of(node, devices):
        index = tree.device_index[node]
        return sum(1 << index[device] for device in devices)

    movable = []
    for pid in sorted(partitions):
        found = partitions[pid]
        workload = workloads.get(pid, mobility.Workload(running_pods=len(found.slots)))
        unhealthy = any(
            state.unhealthy[tree.by_name[slot.node].index] & mask_of(slot.node, slot.devices)
            for slot in found.slots
        )
        if mobility.may_move(policy, workload) and not found.whole_nodes and not unhealthy:
            movable.append(pid)
    slots = [(pid, i) for pid in movable for i in range(len(partitions[pid].slots))]
    occupied = {node.index: 0 for node in tree.nodes}
    for pid, found in partitions.items():
        if pid not in movable:
            for node, devices in found.held:
                occupied[tree.by_name[node].index] |= mask_of(node, devices)

    def options(pid, i):
        slot = partitions[pid].slots[i]
        current = (tree.by_name[slot.node].index, mask_of(slot.node, slot.devices))
        yield current
        size = partitions[pid].pod_size
        for node in tree.nodes:
            if node.reserve:
                continue
            for bits in itertools.combinations(range(len(node.devices)), size):
                mask = sum(1 << bit for bit in bits)
                if mask & state.unhealthy[node.index] or (node.index, mask) == current:
                    continue
                if noderules.slot_capacity(rule, node.modules, mask, size) == 1:
                    yield node.index, mask

    best = None
    chosen: dict[tuple[str, int], tuple[int, int]] = {}

    def leaf():
        nonlocal best
        moved: dict[str, placement.Placement] = {}
        for pid in movable:
            found = partitions[pid]
            new = [chosen[(pid, i)] for i in range(len(found.slots))]
            names = [
                (tree.nodes[n].name, tuple(d for b, d in enumerate(tree.nodes[n].devices) if m >> b & 1))
                for n, m in new
            ]
            if [(slot.node, slot.devices) for slot in found.slots] == names:
                continue
            after = allocator.relocated(pid, names)
            if tier_index(allocator, after.tier_span) > tier_index(allocator, found.tier_span):
                return
            moved[pid] = after
        # a safe order exists: no cycle of partitions taking each other's old devices
        waits = {p: {q for q in moved if q != p and held(moved[p]) & held(partitions[q])} for p in moved}
        done: set[str] = set()
        while len(done) < len(moved):
            ready = [p for p in moved if p not in done and waits[p] <= done]
            if not ready:
                return
            done.update(ready)
        trial = allocator.copy()
        for pid in moved:
            trial.release(pid)
        for pid, after in moved.items():
            assert isinstance(trial.restore(pid, after.slots), placement.Placement)
        decision = trial.plan_partition(request)
        if not isinstance(decision, placement.Placement):
            return
        devices = sum(
            partitions[pid].pod_size
            for pid, after in moved.items()
            for a, b in zip(partitions[pid].slots, after.slots, strict=True)
            if (a.node, a.devices) != (b.node, b.devices)
        )
        pods = sum(workloads[pid].running_pods for pid in moved)
        cost = (level(allocator, decision), devices, pods, len(moved))
        if best is None or cost < best:
            best = cost

    def walk(depth):
        if depth == len(slots):
            leaf()
            return
        pid, i = slots[depth]
        for node, mask in options(pid, i):
            if occupied[node] & mask:
                continue
            occupied[node] |= mask
            chosen[(pid, i)] = (node, mask)
            walk(depth + 1)
            occupied[node] &= ~mask
            del chosen[(pid, i)]

    walk(0)
    return best


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=tiny_states(), request=st.sampled_from(TINY_REQUESTS), policy=st.sampled_from(POLICIES))
def test_no_cheaper_plan_exists_than_the_exact_search_finds(state, request, policy):
    allocator, workloads = state
    outcome = placement.plan_defragmentation(allocator, request, policy=policy, workloads=workloads)
    first = allocator.plan_partition(request)
    assume(isinstance(first, placement.Rejection))  # what fits moves nothing (test_defrag)
    if first.reason != api_partition.PendingReason.FRAGMENTED:
        assert outcome == first
        return
    best = brute_force(allocator, request, policy, workloads)
    if isinstance(outcome, placement.Rejection):
        assert best is None, f"the brute force found {best}"
        return
    check_moves(allocator, request, outcome, policy, workloads)
    assert outcome.exact
    found = (level(allocator, outcome.placement), *outcome.cost())
    assert found == best


@st.composite
def scattered_states(draw):
    """A small Atlas 950 (two racks of eight nodes) or CloudMatrix 384 (four nodes) with partitions of one to
    three pods of 1, 2 or 4 devices on random devices (as churn leaves them), each with a random workload."""
    profile, nodes = draw(st.sampled_from([("atlas-950", 16), ("cloudmatrix-384", 4)]))
    allocator = make_allocator(profile, nodes=nodes, reserve=0)
    topology = allocator.tree
    rule = topology.profile.rule
    free = {node.index: set(range(len(node.devices))) for node in topology.nodes}
    workloads: dict[str, mobility.Workload] = {}
    for serial in range(draw(st.integers(4, 40))):
        size = draw(st.sampled_from((1, 1, 2, 4)))
        slots = []
        for _ in range(draw(st.sampled_from((1, 1, 1, 2, 3)))):
            choices = []
            for node, devices in free.items():
                if size < rule.module_size:
                    groups = [
                        sorted(set(range(m, m + rule.module_size)) & devices)
                        for m in range(0, len(topology.nodes[node].devices), rule.module_size)
                    ]
                    choices += [(node, tuple(group[:size])) for group in groups if len(group) >= size]
                else:
                    whole = [
                        m
                        for m in range(0, len(topology.nodes[node].devices), rule.module_size)
                        if set(range(m, m + rule.module_size)) <= devices
                    ]
                    per = size // rule.module_size
                    if len(whole) >= per:
                        chosen = draw(st.permutations(whole))[:per]
                        choices.append(
                            (node, tuple(d for m in sorted(chosen) for d in range(m, m + rule.module_size)))
                        )
            if not choices:
                break
            node, devices = draw(st.sampled_from(choices))
            free[node] -= set(devices)
            slots.append((node, devices))
        if not slots:
            break
        hold(allocator, f"p{serial:02d}", *slots)
        workloads[f"p{serial:02d}"] = draw(
            st.sampled_from(
                [
                    mobility.Workload(),
                    mobility.Workload(),
                    mobility.Workload(running_pods=len(slots)),
                    mobility.Workload(running_pods=len(slots), movable=True),
                ]
            )
        )
    return allocator, workloads


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    state=scattered_states(),
    npus=st.sampled_from((2, 4, 8, 16, 32)),
    max_tier=st.sampled_from([None, "node", "rack"]),
    policy=st.sampled_from(POLICIES),
)
def test_every_plan_keeps_its_promises_in_both_searches(state, npus, max_tier, policy):
    allocator, workloads = state
    request = placement.PlacementRequest(npus, max_tier=max_tier)
    before = allocator.capacity()
    answers = []
    for exact_slots in (10, 0):  # the exact search where the instance is small enough, and the heuristic
        outcome = placement.plan_defragmentation(
            allocator, request, policy=policy, workloads=workloads, exact_slots=exact_slots
        )
        assert allocator.capacity() == before
        if isinstance(outcome, placement.Moves):
            check_moves(allocator, request, outcome, policy, workloads)
        answers.append(outcome)
    exact, fast = answers
    if isinstance(exact, placement.Moves) and exact.exact and isinstance(fast, placement.Moves):
        tiers = (
            tier_index(allocator, exact.placement.tier_span),
            tier_index(allocator, fast.placement.tier_span),
        )
        assert tiers[0] < tiers[1] or (tiers[0] == tiers[1] and exact.cost() <= fast.cost())
