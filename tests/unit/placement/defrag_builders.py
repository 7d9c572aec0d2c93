"""Builders and the plan checker shared by the defragmentation tests.

`hold` puts a partition on named devices (through `restore`), so a test can draw any state; `check_moves`
asserts everything a plan promises, by replaying its moves on a plain device -> partition map (not the
planner's own bookkeeping) and then on a copy of the allocator.
"""

from __future__ import annotations

from collections.abc import Mapping

from superpod import placement
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.placement import mobility, moves
from superpod.topology import inventory, profiles, tree

# four devices per node in two pairs, racks of two nodes, one pod of 16: every tier in a handful of devices
TINY_TIERS = [
    api_superpod.TierSpec(name="pair", domain_size=2, bandwidth_g_bps=400.0),
    api_superpod.TierSpec(name="node", domain_size=4, bandwidth_g_bps=200.0),
    api_superpod.TierSpec(name="rack", domain_size=8, bandwidth_g_bps=100.0),
    api_superpod.TierSpec(name="pod", domain_size=16, bandwidth_g_bps=50.0),
]


def tiny_allocator(nodes: int = 4) -> placement.Allocator:
    profile = profiles.custom(TINY_TIERS)
    return placement.Allocator(tree.build(profile, inventory.synthesize(profile, nodes), reserve_nodes=0))


def hold(
    allocator: placement.Allocator,
    pid: str,
    *slots: tuple[str | int, tuple[int, ...]],
    block_size: int | None = None,
) -> placement.Placement:
    """Give `pid` these slots, in rank order: (node name or index, device indices on it); in blocks of
    `block_size` devices when given (else one block, as `restore` rebuilds a partition)."""
    topology = allocator.tree
    named = []
    for node, devices in slots:
        found = topology.nodes[node] if isinstance(node, int) else topology.by_name[node]
        named.append((found.name, tuple(found.devices[d] for d in devices)))
    if block_size is None:
        api_slots = []
        rank = 0
        for name, devices in named:
            api_slots.append(api_partition.Slot(rank=rank, node=name, devices=list(devices)))
            rank += len(devices)
        outcome = allocator.restore(pid, api_slots)
        assert isinstance(outcome, placement.Placement), outcome
        return outcome
    # a partition with blocks: planned on an empty copy of the tree, then moved to these devices
    blank = placement.Allocator(topology)
    pod = len(named[0][1])
    npus = pod * len(named)
    planned = blank.plan_partition(
        placement.PlacementRequest(npus, block_size=block_size, devices_per_pod=pod)
    )
    assert isinstance(planned, placement.Placement), planned
    blank.commit(pid, planned)
    found = blank.relocated(pid, named)
    allocator.commit(pid, found)
    return found


def held(found: placement.Placement) -> set[tuple[str, str]]:
    return {(node, device) for node, devices in found.held for device in devices}


def tier_index(allocator: placement.Allocator, name: str) -> int:
    index = allocator.tree.profile.tier_index(name)
    assert index is not None
    return index


def check_moves(
    allocator: placement.Allocator,
    request: placement.PlacementRequest,
    outcome: placement.Moves,
    policy: mobility.Policy,
    workloads: Mapping[str, mobility.Workload],
) -> None:
    """Every promise of a plan, checked from the outside."""
    before = dict(allocator.partitions)
    topology = allocator.tree
    moved = [move.partition_id for move in outcome.moves]
    assert len(set(moved)) == len(moved), "a partition moves once"
    owner = {device: pid for pid, found in before.items() for device in held(found)}

    def usable(device: tuple[str, str]) -> bool:
        node = topology.by_name[device[0]]
        bit = topology.device_index[node.name][device[1]]
        return not node.reserve and not allocator.state.unhealthy[node.index] >> bit & 1

    for move in outcome.moves:
        pid = move.partition_id
        workload = workloads.get(pid)
        assert workload is not None and mobility.may_move(policy, workload), f"{pid} may not move"
        assert move.before == before[pid]
        old, new = move.before, move.after
        assert [slot.rank for slot in new.slots] == [slot.rank for slot in old.slots], (
            "ranks keep their order"
        )
        assert new.pod_size == old.pod_size and len(new.block_tiers) == len(old.block_tiers)
        assert all(len(slot.devices) == old.pod_size for slot in new.slots)
        assert tier_index(allocator, new.tier_span) <= tier_index(allocator, old.tier_span), "span widened"
        for new_tier, old_tier in zip(new.block_tiers, old.block_tiers, strict=True):
            assert tier_index(allocator, new_tier) <= tier_index(allocator, old_tier), "block broken"
        changed = sum(
            old.pod_size
            for a, b in zip(old.slots, new.slots, strict=True)
            if (a.node, a.devices) != (b.node, b.devices)
        )
        assert changed == move.devices_moved > 0
        assert move.pods_disturbed == workload.running_pods
        # the step is safe: its old devices are its own, its new ones free now (or its own)
        for device in held(old):
            assert owner.pop(device) == pid
        for device in held(new):
            assert device not in owner, f"{device} is held by {owner.get(device)} at this step"
            assert usable(device), f"{device} is unhealthy or on a reserve node"
            owner[device] = pid
    for device in held(outcome.placement):
        assert device not in owner and usable(device), f"the request gets {device}, which is not free"
    assert outcome.placement.device_ids() and len(outcome.placement.device_ids()) == request.npus
    trial = allocator.copy()
    moves.carry_out(trial, outcome.moves)
    trial.commit("request", outcome.placement)
    assert trial.capacity().allocated == allocator.capacity().allocated + request.npus
