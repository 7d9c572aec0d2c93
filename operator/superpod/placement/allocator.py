"""The allocator: a fixed tree, the current allocations, and the decisions on them.

`plan_partition` decides without changing anything; `commit`, `release`, `restore` and `repair` change the
allocations; `set_health` follows the device plugin. See the package docstring for the contract.
"""

from __future__ import annotations

import contextlib
import copy as copying
import dataclasses
import functools
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence

from superpod.api import partition as api_partition
from superpod.placement import bestfit, result
from superpod.placement import capacity as placement_capacity
from superpod.placement import policy as placement_policy
from superpod.placement import request as placement_request
from superpod.placement import span as placement_span
from superpod.placement import state as placement_state
from superpod.topology import noderules
from superpod.topology import tree as topology_tree

PendingReason = api_partition.PendingReason


@dataclasses.dataclass
class _Allocation:
    placement: result.Placement
    held: dict[int, int]  # node index -> device mask held
    slots: list[tuple[int, int, int]]  # (rank, node index, device mask) in rank order
    pod_size: int
    whole_nodes: bool
    span_level: int  # tree level of the tier span (0 for node and module)
    span_domain: int


class Allocator:
    """Allocations on one topology tree."""

    def __init__(
        self, tree: topology_tree.TopologyTree, policy: placement_policy.Policy | None = None
    ) -> None:
        self.tree = tree
        self.state = placement_state.FreeState(tree)
        self.policy: placement_policy.Policy = policy or bestfit.BestFit()
        self._allocations: dict[str, _Allocation] = {}
        self._owners: dict[int, dict[str, int]] = {}  # node index -> partition -> mask
        self._static: dict[placement_state.ShapeKey, list[int]] = {}
        # keep the counts for every pod size the profile allows from the start, so no decision pays for
        # building them (whole-node shapes, rarer, are built on first use)
        rule = tree.profile.rule
        for size in range(1, rule.devices_per_node + 1):
            if rule.allows(size):
                self.state.shape_caps((size, False))

    # ---- reading -------------------------------------------------------------------------------------

    @property
    def partitions(self) -> Mapping[str, result.Placement]:
        return {pid: allocation.placement for pid, allocation in self._allocations.items()}

    def partition_ids(self) -> list[str]:
        """The ids of the partitions held, without building their placements (`partitions` does)."""
        return list(self._allocations)

    def placement_of(self, partition_id: str) -> result.Placement | None:
        allocation = self._allocations.get(partition_id)
        return allocation.placement if allocation else None

    def held_by(self, partition_id: str) -> Mapping[int, int]:
        """Node index -> device mask `partition_id` holds (empty when it is not placed); a read-only view."""
        allocation = self._allocations.get(partition_id)
        return types.MappingProxyType(allocation.held) if allocation else types.MappingProxyType({})

    def holders(self, node_index: int) -> Mapping[str, int]:
        """Partition -> device mask it holds on node `node_index`; a read-only view."""
        return types.MappingProxyType(self._owners.get(node_index, {}))

    def unhealthy_devices(self, node_name: str) -> tuple[str, ...]:
        """The node's devices that are out of service now (held or not), in device order."""
        node = self.tree.by_name[node_name]
        return _names(node, self.state.unhealthy[node.index])

    def failed_devices(self, placement: result.Placement) -> list[str]:
        """`node/device` of every device of `placement`'s slots that is out of service now, in rank order."""
        failed: list[str] = []
        for slot in placement.slots:
            node = self.tree.by_name[slot.node]
            unhealthy = self.state.unhealthy[node.index]
            if unhealthy:
                index = self.tree.device_index[slot.node]
                failed.extend(
                    f"{slot.node}/{device}" for device in slot.devices if unhealthy >> index[device] & 1
                )
        return failed

    def capacity(self) -> placement_capacity.Capacity:
        """Device counts, largest free block per tier and fragmentation, for the SuperPod status."""
        return placement_capacity.summarise(self.state, len(self._allocations))

    def ideal_tiers(self, request: placement_request.PlacementRequest) -> tuple[str, str] | None:
        """(block tier, partition tier): the lowest tiers whose empty domains could hold one block and the
        whole partition; None when the request is unsatisfiable. A block of one pod that fits one module
        (an A3 die pair, a 910A ring) has the module tier."""
        shape = placement_request.resolve(request, self.tree)
        if isinstance(shape, str):
            return None
        levels = self._levels(shape)
        if levels is None:
            return None
        tiers = self.tree.profile.tiers
        node_tier = self.tree.node_tier
        rule = self.tree.profile.rule

        def tier(level: int, slots: int) -> str:
            if level == 0 and node_tier > 0 and slots == 1 and shape.pod_size <= rule.module_size:
                return tiers[node_tier - 1].name
            return tiers[node_tier + level].name

        return tier(levels.block, shape.block_slots), tier(levels.partition, shape.slots)

    def copy(self) -> Allocator:
        """An independent snapshot, to try changes on: nothing done to one reaches the other. The tree and
        the cache of its static facts are shared (both are read-only)."""
        other = Allocator.__new__(Allocator)
        other.tree = self.tree
        other.state = self.state.copy()
        other.policy = copying.deepcopy(self.policy)  # a seeded baseline's generator must not be shared
        other._allocations = dict(self._allocations)  # an _Allocation is replaced, never changed
        other._owners = {node: dict(owners) for node, owners in self._owners.items()}
        other._static = self._static
        return other

    # ---- deciding ------------------------------------------------------------------------------------

    def plan_partition(
        self, request: placement_request.PlacementRequest
    ) -> result.Placement | result.Rejection:
        """Where `request` would go now, or why it cannot; changes nothing."""
        shape = placement_request.resolve(request, self.tree)
        if isinstance(shape, str):
            return result.Rejection(PendingReason.UNSATISFIABLE, f"asked {request.describe()}: {shape}")
        levels = self._levels(shape)
        if levels is None:
            tier = self.tree.tier_name(shape.max_level)
            most = self._static_caps(shape.key)[shape.max_level] * shape.pod_size
            return self._reject(
                PendingReason.UNSATISFIABLE,
                request,
                f"one empty {tier} of this SuperPod holds at most {most} devices in pods of {shape.pod_size}",
            )
        if self.state.total_free < shape.npus:
            return self._reject(PendingReason.INSUFFICIENT_CAPACITY, request, "not enough free devices")
        blocks = self.policy.choose(self.state, shape, levels)
        if not blocks:
            return self._reject(PendingReason.FRAGMENTED, request, "no placement meets the constraints")
        return self._materialise(blocks, shape)

    def relocated(self, partition_id: str, slots: Sequence[tuple[str, Sequence[str]]]) -> result.Placement:
        """The placement `partition_id` would have with its slots, in rank order, on these (node, devices):
        ranks, pod size, blocks and whole-node holding as before. Pure; whether the devices are free is
        `relocate`'s check. ValueError when the partition is not placed, the slot count differs, a node or
        device is unknown, or a slot does not obey the pod size and the node's rule."""
        allocation = self._allocations.get(partition_id)
        if allocation is None:
            raise ValueError(f"partition {partition_id} is not placed")
        if len(slots) != len(allocation.slots):
            raise ValueError(
                f"partition {partition_id} has {len(allocation.slots)} slots, {len(slots)} given"
            )
        tree = self.tree
        rule = tree.profile.rule
        size = allocation.pod_size
        parsed: list[tuple[int, int, int]] = []
        held: dict[int, int] = {}
        for (rank, _, _), (node_name, devices) in zip(allocation.slots, slots, strict=True):
            node = tree.by_name.get(node_name)
            if node is None:
                raise ValueError(f"unknown node {node_name}")
            mask = _mask(tree, node, devices)
            if mask.bit_count() != size or noderules.slot_capacity(rule, node.modules, mask, size) != 1:
                raise ValueError(
                    f"devices {', '.join(devices)} of {node_name} are not one pod of {size} on this profile"
                )
            if mask & held.get(node.index, 0) and not allocation.whole_nodes:
                raise ValueError(f"a device of {node_name} is given to two slots")
            parsed.append((rank, node.index, mask))
            held[node.index] = held.get(node.index, 0) | (node.full_mask if allocation.whole_nodes else mask)
        blocks = len(allocation.placement.block_tiers) or 1
        per_block = len(parsed) // blocks
        ranges = [(start, start + per_block) for start in range(0, len(parsed), per_block)]
        return self._placement(parsed, held, ranges, size, allocation.whole_nodes)

    def _levels(self, shape: placement_request.Shape) -> placement_policy.Levels | None:
        """Lowest levels whose empty domains hold a block and the partition; None if none within maxTier."""
        best = self._static_caps(shape.key)
        block = next((level for level, value in enumerate(best) if value >= shape.block_slots), None)
        whole = next((level for level, value in enumerate(best) if value >= shape.slots), None)
        if whole is None or whole > shape.max_level or block is None:
            return None
        return placement_policy.Levels(block=block, partition=whole)

    def _static_caps(self, key: placement_state.ShapeKey) -> list[int]:
        """Per level, the most slots one empty, healthy domain of non-reserve nodes hosts."""
        cached = self._static.get(key)
        if cached is None:
            tree = self.tree
            rule = tree.profile.rule
            sums = [[0] * len(level) for level in tree.levels]
            for node in tree.nodes:
                if node.reserve:
                    continue
                value = noderules.slot_capacity(rule, node.modules, node.full_mask, key[0])
                for level, domain in enumerate(node.domains):
                    sums[level][domain] += value
            cached = [max(level, default=0) for level in sums]
            self._static[key] = cached
        return cached

    def _reject(
        self, reason: api_partition.PendingReason, request: placement_request.PlacementRequest, why: str
    ) -> result.Rejection:
        summary = self.capacity()
        blocks = ", ".join(f"{tier} {devices}" for tier, devices in summary.largest_free_block)
        return result.Rejection(
            reason,
            f"asked {request.describe()}: {why}; free {summary.free} of {summary.total} "
            f"({summary.reserved} reserved, {summary.unhealthy} unhealthy); largest free block: {blocks}",
        )

    def _materialise(
        self, blocks: Sequence[placement_policy.NodeSlots], shape: placement_request.Shape
    ) -> result.Placement | result.Rejection:
        """Pick the devices of every slot and order the slots along the topology."""
        tree = self.tree
        rule = tree.profile.rule
        free: dict[int, int] = {}
        ordered_blocks = sorted((sorted(block) for block in blocks if block), key=lambda block: block[0][0])
        slots: list[tuple[int, int, int]] = []
        held: dict[int, int] = {}
        block_ranges: list[tuple[int, int]] = []
        for block in ordered_blocks:
            start = len(slots)
            for node_index, count in block:
                node = tree.nodes[node_index]
                mask = free.get(node_index, self.state.free[node_index])
                for _ in range(count):
                    chosen = self.policy.pick(rule, node.modules, mask, shape.pod_size)
                    if not chosen:
                        raise RuntimeError(
                            f"policy {self.policy.name} chose a node without room: {node.name}"
                        )
                    mask &= ~chosen
                    slots.append((len(slots) * shape.pod_size, node_index, chosen))
                    held[node_index] = held.get(node_index, 0) | (
                        node.full_mask if shape.whole_nodes else chosen
                    )
                free[node_index] = mask
            block_ranges.append((start, len(slots)))
        return self._placement(slots, held, block_ranges, shape.pod_size, shape.whole_nodes)

    def _placement(
        self,
        slots: Sequence[tuple[int, int, int]],
        held: Mapping[int, int],
        block_ranges: Sequence[tuple[int, int]],
        pod_size: int,
        whole_nodes: bool,
    ) -> result.Placement:
        tree = self.tree
        placed = tuple(
            result.PlacedSlot(
                rank=rank,
                node=tree.nodes[node_index].name,
                devices=_names(tree.nodes[node_index], mask),
                domains=tree.node_domains(tree.nodes[node_index]),
            )
            for rank, node_index, mask in slots
        )
        span_tier, _, _ = self._span([(node, mask) for _, node, mask in slots])
        return result.Placement(
            slots=placed,
            tier_span=tree.profile.tiers[span_tier].name,
            node_count=len({node for _, node, _ in slots}),
            bandwidth_gbps=tree.profile.tiers[span_tier].bandwidth_gbps,
            block_tiers=tuple(
                tree.profile.tiers[self._span([(n, m) for _, n, m in slots[a:b]])[0]].name
                for a, b in block_ranges
            ),
            held=tuple(
                (tree.nodes[node_index].name, _names(tree.nodes[node_index], mask))
                for node_index, mask in sorted(held.items())
            ),
            pod_size=pod_size,
            whole_nodes=whole_nodes,
        )

    def _span(self, parts: Sequence[tuple[int, int]]) -> tuple[int, int, int]:
        """(profile tier index, tree level, domain) of the lowest domain holding all (node, mask) parts."""
        return placement_span.span(self.tree, parts)

    # ---- changing ------------------------------------------------------------------------------------

    def commit(self, partition_id: str, placement: result.Placement) -> None:
        """Record `placement` (from `plan_partition`) as `partition_id`'s; its devices must still be free."""
        if partition_id in self._allocations:
            raise ValueError(f"partition {partition_id} is already placed; release it first")
        outcome = self._adopt(partition_id, placement, require_free=True)
        if isinstance(outcome, result.Conflict):
            raise ValueError(outcome.message)

    def release(self, partition_id: str) -> result.Placement | None:
        """Free every device `partition_id` holds; returns its placement (None if it held nothing)."""
        allocation = self._allocations.pop(partition_id, None)
        if allocation is None:
            return None
        self.state.count_partition(allocation.held, -1)
        for node_index, mask in allocation.held.items():
            owners = self._owners[node_index]
            del owners[partition_id]
            if not owners:
                del self._owners[node_index]
            self.state.set_node(node_index, held=self.state.held[node_index] & ~mask)
        return allocation.placement

    def relocate(self, partition_id: str, placement: result.Placement) -> result.Placement | result.Conflict:
        """Move `partition_id` to `placement` (from `relocated`): its new devices must be free, healthy and
        off reserve nodes, or its own. On a Conflict nothing changes."""
        allocation = self._allocations.get(partition_id)
        if allocation is None:
            return result.Conflict(partition_id, f"partition {partition_id} is not placed", (), ())
        self.release(partition_id)
        outcome = self._adopt(partition_id, placement, require_free=True)
        if isinstance(outcome, result.Conflict):
            back = self._adopt(partition_id, allocation.placement, require_free=False)
            assert isinstance(back, result.Placement), "its own devices were free a moment ago"
        return outcome

    @contextlib.contextmanager
    def released(self, partition_ids: Iterable[str]) -> Iterator[None]:
        """Within the block the partitions are released, so plans made there see the devices they would
        free; on leaving (normally or by an exception) each is put back exactly as it was. For what-if
        planning (preemption, defragmentation): nothing may be committed on their devices inside the block,
        or putting them back fails with RuntimeError. Unknown or unplaced ids are ignored."""
        taken: list[tuple[str, _Allocation]] = []
        try:
            for partition_id in dict.fromkeys(partition_ids):
                allocation = self._allocations.get(partition_id)
                if allocation is not None:
                    self.release(partition_id)
                    taken.append((partition_id, allocation))
            yield
        finally:
            # every partition that can be put back is, even when another cannot
            lost = [pid for pid, allocation in reversed(taken) if not self._reinstate(pid, allocation)]
            if lost:
                raise RuntimeError(
                    f"partitions {', '.join(lost)} cannot be put back: their devices were taken inside the block"
                )

    def _reinstate(self, partition_id: str, allocation: _Allocation) -> bool:
        """Put back an allocation `released` took away, with its own books (no placement is rebuilt);
        False (nothing changed) when its id or one of its devices was taken meanwhile."""
        if partition_id in self._allocations or any(
            mask & self.state.held[node_index] for node_index, mask in allocation.held.items()
        ):
            return False
        self._allocations[partition_id] = allocation
        self.state.count_partition(allocation.held, +1)
        for node_index, mask in allocation.held.items():
            self._owners.setdefault(node_index, {})[partition_id] = mask
            self.state.set_node(node_index, held=self.state.held[node_index] | mask)
        return True

    def restore(
        self,
        partition_id: str,
        slots: Iterable[api_partition.Slot | result.PlacedSlot],
        *,
        whole_nodes: bool = False,
    ) -> result.Placement | result.Conflict:
        """Rebuild an existing allocation (from a partition's status) after a restart.

        Unknown nodes or devices, and devices another partition holds, give a `Conflict` and change nothing.
        Unhealthy devices and reserve nodes are accepted: the partition held them before.
        """
        if partition_id in self._allocations:
            return result.Conflict(partition_id, f"partition {partition_id} is already placed", (), ())
        tree = self.tree
        parsed: list[tuple[int, int, int]] = []
        held: dict[int, int] = {}
        unknown: list[str] = []
        for slot in sorted(slots, key=lambda s: s.rank):
            node = tree.by_name.get(slot.node)
            if node is None:
                unknown.append(f"{slot.node}/*")
                continue
            index = tree.device_index[node.name]
            mask = 0
            for device in slot.devices:
                if (
                    device not in index
                    or mask >> index[device] & 1
                    or held.get(node.index, 0) >> index[device] & 1
                ):
                    unknown.append(f"{node.name}/{device}")
                else:
                    mask |= 1 << index[device]
            parsed.append((slot.rank, node.index, mask))
            held[node.index] = held.get(node.index, 0) | (node.full_mask if whole_nodes else mask)
        if unknown:
            return result.Conflict(
                partition_id,
                f"partition {partition_id} names unknown or repeated devices: {', '.join(unknown)}",
                tuple(unknown),
                (),
            )
        if not parsed:
            return result.Conflict(partition_id, f"partition {partition_id} has no slots to restore", (), ())
        pod_size = max(mask.bit_count() for _, _, mask in parsed)
        placement = self._placement(parsed, held, [(0, len(parsed))], pod_size, whole_nodes)
        outcome = self._adopt(partition_id, placement, require_free=False)
        return outcome

    def _adopt(
        self, partition_id: str, placement: result.Placement, *, require_free: bool
    ) -> result.Placement | result.Conflict:
        tree = self.tree
        held: dict[int, int] = {}
        slots: list[tuple[int, int, int]] = []
        for node_name, devices in placement.held:
            node = tree.by_name[node_name]
            held[node.index] = _mask(tree, node, devices)
        for slot in placement.slots:
            node = tree.by_name[slot.node]
            slots.append((slot.rank, node.index, _mask(tree, node, slot.devices)))
        taken: list[str] = []
        owners: set[str] = set()
        for node_index, mask in held.items():
            clash = mask & self.state.held[node_index]
            if require_free:
                clash |= mask & self.state.unhealthy[node_index]
                if tree.nodes[node_index].reserve:
                    clash |= mask
            if clash:
                node = tree.nodes[node_index]
                taken.extend(f"{node.name}/{name}" for name in _names(node, clash))
                owners.update(pid for pid, owned in self._owners.get(node_index, {}).items() if owned & clash)
        if taken:
            holders = ", ".join(sorted(owners)) or "nobody (unhealthy or reserve)"
            return result.Conflict(
                partition_id,
                f"partition {partition_id} wants devices that are not free: {', '.join(taken)} (held by {holders})",
                tuple(taken),
                tuple(sorted(owners)),
            )
        _, span_level, span_domain = self._span([(node, mask) for _, node, mask in slots])
        self._allocations[partition_id] = _Allocation(
            placement=placement,
            held=held,
            slots=slots,
            pod_size=placement.pod_size,
            whole_nodes=placement.whole_nodes,
            span_level=span_level,
            span_domain=span_domain,
        )
        self.state.count_partition(held, +1)
        for node_index, mask in held.items():
            node_owners = self._owners.setdefault(node_index, {})
            node_owners[partition_id] = mask
            self.state.set_node(node_index, held=self.state.held[node_index] | mask)
        return placement

    # ---- health and repair ---------------------------------------------------------------------------

    def set_health(self, node_name: str, unhealthy: Iterable[str], *, ready: bool = True) -> tuple[str, ...]:
        """Make `unhealthy` (all devices when not ready) the node's unhealthy set; returns the partitions
        holding a device that just became unhealthy."""
        node = self.tree.by_name[node_name]
        mask = node.full_mask if not ready else _mask(self.tree, node, unhealthy, strict=False)
        newly = mask & ~self.state.unhealthy[node.index]
        self.state.set_node(node.index, unhealthy=mask)
        return tuple(sorted(pid for pid, owned in self._owners.get(node.index, {}).items() if owned & newly))

    def mark_unhealthy(self, node_name: str, devices: Iterable[str]) -> tuple[str, ...]:
        node = self.tree.by_name[node_name]
        current = set(_names(node, self.state.unhealthy[node.index]))
        return self.set_health(node_name, current | set(devices))

    def mark_healthy(self, node_name: str, devices: Iterable[str]) -> None:
        node = self.tree.by_name[node_name]
        current = set(_names(node, self.state.unhealthy[node.index]))
        self.set_health(node_name, current - set(devices))

    def repair(self, partition_id: str, failed_devices: Iterable[str]) -> result.Placement | result.Rejection:
        """Move the slots holding `failed_devices` (`node/device` names) to healthy devices.

        The failed devices are marked unhealthy. Each affected slot moves, in this order of preference, to
        its own node, then to the nearest domain (same rack, ...), non-reserve nodes before reserve nodes at
        each level, best fit; never so far that the partition would span a wider tier than before (a
        single-node partition may move to any node). On success the new placement is committed and returned
        (ranks unchanged); otherwise the partition keeps its devices and a Rejection says why.
        """
        allocation = self._allocations.get(partition_id)
        if allocation is None:
            return result.Rejection(PendingReason.UNSATISFIABLE, f"partition {partition_id} is not placed")
        tree = self.tree
        failed: dict[int, int] = {}
        for name in failed_devices:
            node_name, _, device = name.rpartition("/")
            node = tree.by_name.get(node_name)
            if node is None or device not in tree.device_index[node.name]:
                continue
            failed[node.index] = failed.get(node.index, 0) | 1 << tree.device_index[node.name][device]
        for node_index, mask in failed.items():
            self.state.set_node(node_index, unhealthy=self.state.unhealthy[node_index] | mask)
        affected = [
            i for i, (_, node_index, mask) in enumerate(allocation.slots) if mask & failed.get(node_index, 0)
        ]
        if not affected:
            return allocation.placement
        plan = _RepairPlan(self, allocation)
        for position in affected:
            if not plan.move(position):
                _, node_index, _ = allocation.slots[position]
                return result.Rejection(
                    PendingReason.FRAGMENTED,
                    f"repair of {partition_id}: no healthy room for a slot of {allocation.pod_size} devices "
                    f"(from {tree.nodes[node_index].name}) within its {allocation.placement.tier_span}",
                )
        self.release(partition_id)
        placement = self._placement(
            plan.slots, plan.held, [(0, len(plan.slots))], allocation.pod_size, allocation.whole_nodes
        )
        placement = dataclasses.replace(placement, block_tiers=allocation.placement.block_tiers)
        outcome = self._adopt(partition_id, placement, require_free=False)
        assert isinstance(outcome, result.Placement)
        return outcome


class _RepairPlan:
    """New slots for a partition under repair, chosen against the current state without changing it."""

    def __init__(self, allocator: Allocator, allocation: _Allocation) -> None:
        self.allocator = allocator
        self.allocation = allocation
        self.slots = list(allocation.slots)
        self.held = dict(allocation.held)
        state = allocator.state
        # what each node could give this partition: free devices plus the partition's own healthy ones
        self.room: dict[int, int] = {}
        for node_index, mask in allocation.held.items():
            self.room[node_index] = (state.free[node_index] | mask) & ~state.unhealthy[node_index]

    def free_of(self, node_index: int) -> int:
        if node_index in self.room:
            return self.room[node_index]
        return self.allocator.state.free[node_index]

    def move(self, position: int) -> bool:
        rank, old_node, old_mask = self.slots[position]
        tree = self.allocator.tree
        state = self.allocator.state
        pod_size = self.allocation.pod_size
        whole = self.allocation.whole_nodes
        # the slot's own devices are given back first (healthy ones become room again)
        in_use = 0
        for _, node_index, mask in self.slots:
            if node_index == old_node:
                in_use |= mask
        own_room = (self.free_of(old_node) | old_mask) & ~state.unhealthy[old_node]
        own_room &= ~(in_use & ~old_mask)
        for node_index in self._candidates(position, old_node):
            room = (
                own_room if node_index == old_node else self.free_of(node_index) & ~self._in_use(node_index)
            )
            node = tree.nodes[node_index]
            if whole and node_index != old_node and room != node.full_mask:
                continue
            chosen = noderules.pick(tree.profile.rule, node.modules, room, pod_size)
            if chosen:
                self.slots[position] = (rank, node_index, chosen)
                self.room[old_node] = own_room
                self.room[node_index] = room & ~chosen if node_index != old_node else own_room & ~chosen
                self._recompute_held()
                return True
        return False

    def _in_use(self, node_index: int) -> int:
        mask = 0
        for _, index, slot_mask in self.slots:
            if index == node_index:
                mask |= slot_mask
        return mask

    def _recompute_held(self) -> None:
        tree = self.allocator.tree
        held: dict[int, int] = {}
        for _, node_index, mask in self.slots:
            node = tree.nodes[node_index]
            held[node_index] = held.get(node_index, 0) | (
                node.full_mask if self.allocation.whole_nodes else mask
            )
        self.held = held

    def _candidates(self, position: int, old_node: int) -> Iterator[int]:
        """Nodes to try, nearest first: the slot's own node, then each wider domain around it, as far as the
        partition's tier span allows (the domain of that tier holding its other slots; anywhere for a
        partition whose only node is this one). At each level: non-reserve nodes first, best fit."""
        tree = self.allocator.tree
        state = self.allocator.state
        pod_size, whole = self.allocation.pod_size, self.allocation.whole_nodes
        yield old_node
        seen = {old_node}
        others = {node for i, (_, node, _) in enumerate(self.slots) if i != position and node != old_node}
        limit = (
            len(tree.levels) - 1
            if not others and self._alone(position, old_node)
            else self.allocation.span_level
        )
        path = tree.nodes[old_node].domains
        for level in range(1, limit + 1):
            domain = tree.levels[level][path[level]]
            scored = []
            for index in range(domain.first_node, domain.end_node):
                if index in seen:
                    continue
                seen.add(index)
                room = self.free_of(index) & ~self._in_use(index)
                node = tree.nodes[index]
                if whole and room != node.full_mask:
                    continue
                slots = noderules.slot_capacity(tree.profile.rule, node.modules, room, pod_size)
                if slots:
                    scored.append(((node.reserve, slots, state.free_count[0][index], index), index))
            yield from (index for _, index in sorted(scored))

    def _alone(self, position: int, old_node: int) -> bool:
        """Whether this slot is the partition's only one on its node (so it may move as a whole)."""
        return all(node != old_node for i, (_, node, _) in enumerate(self.slots) if i != position)


def _names(node: topology_tree.TreeNode, mask: int) -> tuple[str, ...]:
    return _device_names(node.devices, mask)


@functools.lru_cache(maxsize=1 << 16)
def _device_names(devices: tuple[str, ...], mask: int) -> tuple[str, ...]:
    return tuple(device for bit, device in enumerate(devices) if mask >> bit & 1)


def _mask(
    tree: topology_tree.TopologyTree,
    node: topology_tree.TreeNode,
    devices: Iterable[str],
    *,
    strict: bool = True,
) -> int:
    index = tree.device_index[node.name]
    mask = 0
    for device in devices:
        if device in index:
            mask |= 1 << index[device]
        elif strict:
            raise ValueError(f"node {node.name} has no device {device}")
    return mask
