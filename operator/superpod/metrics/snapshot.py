"""What the metrics read: a frozen snapshot of the fleet, taken at scrape time.

The collector never keeps counts of its own: on every scrape it asks for a `FleetSnapshot` and derives every
gauge from it, so a metric cannot drift from what the operator holds. `capture(fleet)` builds the snapshot from
anything shaped like the controller's `Fleet` (the `FleetView` protocol below, satisfied structurally), so this
package never imports `superpod.controller` (the layers run controller -> metrics). Tests build snapshots from a
real topology tree and allocator through the same function.

Per SuperPod: its profile, the allocator's `Capacity`, and per node the device counts by state
(free/allocated/unhealthy/reserved: the same partition of devices as `placement.capacity`), the unhealthy
devices whoever holds them, UB switch faults, and the node's domain at every tier. Per partition: its phase and
pending reason from its status, and its placement from the allocator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from superpod import placement
from superpod.api import partition as api_partition
from superpod.api import reasons, views
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles

UB_SWITCH_FAULT_REASONS = reasons.UB_SWITCH_REASONS
"""NodeProblem reasons (`cluster.inventory`) for a UB (HCCS-L2) switch fault in the node's SwitchInfoCfg: one that
takes the node out of service, or a lesser one that is only reported."""


@dataclasses.dataclass(frozen=True)
class NodeSnapshot:
    """One member node's devices by state."""

    name: str
    rack: str  # the device plugin's RackID, "" when unknown
    ready: bool
    free: int  # healthy, unheld devices on a non-reserve node
    allocated: int  # devices some partition holds (healthy or not)
    unhealthy: int  # unhealthy devices no partition holds
    reserved: int  # healthy, unheld devices on a reserve node
    unhealthy_total: int  # every unhealthy device, held or not
    switch_faults: int  # UB switch faults the node reports
    domains: tuple[tuple[str, str], ...]  # (tier, domain id) from the node tier up

    @property
    def devices(self) -> int:
        return self.free + self.allocated + self.unhealthy + self.reserved


@dataclasses.dataclass(frozen=True)
class QuotaSnapshot:
    """One quota of a SuperPod: its nominal share and what its partitions use and borrow, in devices."""

    name: str
    nominal: int
    used: int
    borrowed: int


@dataclasses.dataclass(frozen=True)
class SuperPodSnapshot:
    """One SuperPod as the operator sees it; `capacity` is None until it has usable nodes."""

    name: str
    profile: str  # profile name, "" when the spec is unusable
    tiers: tuple[str, ...]  # tier names, tightest first
    capacity: placement.Capacity | None
    nodes: tuple[NodeSnapshot, ...]
    left_out: int  # member nodes the inventory could not use (malformed device info, no devices)
    quotas: tuple[QuotaSnapshot, ...] = ()


@dataclasses.dataclass(frozen=True)
class PartitionSnapshot:
    """One partition: where it asked to go, its phase and reason, and its placement when it has one."""

    superpod: str
    namespace: str
    name: str
    phase: str  # status.phase; Pending before the operator has written a status
    reason: str  # status.reason
    placement: placement.Placement | None
    quota: str = ""  # status.quota: the quota it is charged to ("" when none covers its namespace)


@dataclasses.dataclass(frozen=True)
class FleetSnapshot:
    superpods: tuple[SuperPodSnapshot, ...]
    partitions: tuple[PartitionSnapshot, ...]


# ---- what `capture` reads (the controller's Fleet and SuperPodState satisfy these structurally) ------------


class ProblemView(Protocol):
    @property
    def reason(self) -> str: ...


class SuperPodView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def profile(self) -> profiles.HardwareProfile | None: ...
    @property
    def allocator(self) -> placement.Allocator | None: ...
    @property
    def observed(self) -> Mapping[str, topology_inventory.ObservedNode]: ...
    @property
    def problems(self) -> Mapping[str, ProblemView]: ...
    @property
    def quota_usage(self) -> Sequence[Mapping[str, Any]]: ...


class FleetView(Protocol):
    @property
    def superpods(self) -> Mapping[str, SuperPodView]: ...
    @property
    def partitions(self) -> Mapping[str, Mapping[str, Any]]: ...


def capture(fleet: FleetView) -> FleetSnapshot:
    """The snapshot of `fleet` now (pure reading; call it from the thread that mutates the fleet)."""
    superpods = tuple(_superpod(state) for _, state in sorted(fleet.superpods.items()))
    allocators = {state.name: state.allocator for state in fleet.superpods.values()}
    partitions = tuple(_partition(key, obj, allocators) for key, obj in sorted(fleet.partitions.items()))
    return FleetSnapshot(superpods=superpods, partitions=partitions)


def of_allocator(
    name: str,
    allocator: placement.Allocator,
    *,
    not_ready: frozenset[str] = frozenset(),
    switch_faults: Mapping[str, int] | None = None,
    left_out: int = 0,
) -> SuperPodSnapshot:
    """A SuperPod's snapshot straight from its allocator (what `capture` does per SuperPod)."""
    tree = allocator.tree
    state = allocator.state
    faults = switch_faults or {}
    nodes = []
    for node in tree.nodes:
        held = state.held[node.index]
        unhealthy = state.unhealthy[node.index]
        free = state.free[node.index].bit_count()
        nodes.append(
            NodeSnapshot(
                name=node.name,
                rack=str(node.rack) if node.rack >= 0 else "",
                ready=node.name not in not_ready,
                free=0 if node.reserve else free,
                allocated=held.bit_count(),
                unhealthy=(unhealthy & ~held).bit_count(),
                reserved=free if node.reserve else 0,
                unhealthy_total=unhealthy.bit_count(),
                switch_faults=faults.get(node.name, 0),
                domains=tuple(tree.node_domains(node).items()),
            )
        )
    profile = tree.profile
    return SuperPodSnapshot(
        name=name,
        profile=profile.name,
        tiers=tuple(tier.name for tier in profile.tiers),
        capacity=allocator.capacity(),
        nodes=tuple(nodes),
        left_out=left_out,
    )


def _superpod(state: SuperPodView) -> SuperPodSnapshot:
    faults = {
        node: 1 for node, problem in state.problems.items() if problem.reason in UB_SWITCH_FAULT_REASONS
    }
    left_out = sum(1 for node in state.problems if node not in state.observed)
    if state.allocator is not None:
        not_ready = frozenset(name for name, node in state.observed.items() if not node.ready)
        quotas = tuple(
            QuotaSnapshot(str(q["name"]), int(q["nominal"]), int(q["used"]), int(q["borrowed"]))
            for q in state.quota_usage
        )
        return dataclasses.replace(
            of_allocator(
                state.name, state.allocator, not_ready=not_ready, switch_faults=faults, left_out=left_out
            ),
            quotas=quotas,
        )
    profile = state.profile
    return SuperPodSnapshot(
        name=state.name,
        profile=profile.name if profile else "",
        tiers=tuple(tier.name for tier in profile.tiers) if profile else (),
        capacity=None,
        nodes=(),
        left_out=left_out,
    )


def _partition(
    key: str, obj: Mapping[str, Any], allocators: Mapping[str, placement.Allocator | None]
) -> PartitionSnapshot:
    namespace, _, name = key.partition("/")
    view = views.Partition(dict(obj))
    superpod = view.superpod
    status = view.status
    allocator = allocators.get(superpod)
    return PartitionSnapshot(
        superpod=superpod,
        namespace=namespace,
        name=name,
        phase=str(status.get("phase") or api_partition.Phase.PENDING.value),
        reason=str(status.get("reason") or ""),
        placement=allocator.placement_of(key) if allocator is not None else None,
        quota=str(status.get("quota") or ""),
    )
