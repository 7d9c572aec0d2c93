"""One SuperPod as the operator holds it in memory: its object, its model, its lock and the work on its partitions.

The fleet keeps one `SuperPodState` per SuperPod; the scheduler, the partition reconciler, restores, moves and
preemptions work on it under its `lock` (decisions in memory, no API call under it) and `poke` its daemon when
there is something to retry. What it holds besides the model (`superpodmodel`: inventory, tree, allocator) is
what no status shows yet: the pending queue, conflicts found on restore, preemptions and moves under way.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from collections.abc import Mapping

from superpod import placement
from superpod.api import common
from superpod.cluster import inventory
from superpod.controller import conflicts as records
from superpod.controller import hcclconfigmap, partitionqueue, queuepass, relocation, superpodmodel
from superpod.metrics import instruments
from superpod.ranktable import versions
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles

JSON = common.JSON


@dataclasses.dataclass
class Preempting:
    """A preemptor holding its victims' devices in memory, waiting for their pods to go."""

    preemptor: str
    placement: placement.Placement
    victims: tuple[str, ...]
    reclaimed: tuple[str, ...] = ()


@dataclasses.dataclass
class SuperPodState:
    """One SuperPod: its object, its model (inventory and allocator) and the work on its partitions."""

    name: str
    body: JSON
    model: superpodmodel.Model = dataclasses.field(default_factory=superpodmodel.Model)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pending: partitionqueue.PendingQueue = dataclasses.field(default_factory=partitionqueue.PendingQueue)
    reported: set[str] = dataclasses.field(default_factory=set)  # nodes whose problem has had its Event
    # partitions whose recorded placement is in conflict (restore.Restorer): quarantined, out of the queue
    conflicts: dict[str, records.Record] = dataclasses.field(default_factory=dict)
    # shared member nodes and who keeps them (Fleet computes it; the model leaves out the ceded ones)
    overlap: records.Overlap | None = None
    # placed partitions need a look: device health changed, a spec was edited or a status write failed
    health_dirty: bool = False
    # preemptor key -> the devices it holds in memory while its victims' pods go (see preemptions)
    preempting: dict[str, Preempting] = dataclasses.field(default_factory=dict)
    waiting_since: dict[str, float] = dataclasses.field(default_factory=dict)  # key -> time.time() queued
    # partitions moved while their pods run, their new devices reserved (podmoves), on the owning replica
    moving: dict[str, relocation.InFlight] = dataclasses.field(default_factory=dict)
    tenancy: queuepass.Pass | None = None  # the last admission pass: quotas, ledger, what waits and why
    # wakes the daemon when a refused preemption eviction is due again (nothing else may happen till then)
    eviction_retry: asyncio.TimerHandle | None = None

    def is_victim(self, key: str) -> bool:
        return any(key in entry.victims for entry in self.preempting.values())

    @property
    def allocator(self) -> placement.Allocator | None:
        return self.model.allocator

    @property
    def profile(self) -> profiles.HardwareProfile | None:
        return self.model.profile

    @property
    def resource(self) -> str:
        return self.model.resource

    @property
    def observed(self) -> Mapping[str, topology_inventory.ObservedNode]:
        return self.model.observed

    @property
    def problems(self) -> Mapping[str, inventory.NodeProblem]:
        return self.model.problems

    @property
    def quota_usage(self) -> list[JSON]:
        """Per quota: nominal share, devices used and borrowed, partitions waiting (SuperPod status.quotas)."""
        if not self.model.spec or not self.model.spec.quotas:
            return []
        return queuepass.quota_status(self.tenancy) or []

    def poke(self) -> None:
        """Ask the SuperPod's daemon to retry pending partitions and refresh the status."""
        self.wake.set()


def restore_report(state: SuperPodState) -> None:
    """`superpod_partition_conflicts` of the SuperPod: its partitions in conflict now, by reason."""
    counts = collections.Counter(record.reason.value for record in state.conflicts.values())
    instruments.set_conflicts(state.name, counts)


def rank_table_name(state: SuperPodState, obj: JSON) -> str | None:
    """The rank table ConfigMap's name, written with the allocation (the bindings loop makes the ConfigMap)."""
    if state.profile is None or versions.version_for_profile(state.profile.name) is None:
        return None
    return hcclconfigmap.configmap_name(obj)
