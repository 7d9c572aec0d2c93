"""One admission pass over a SuperPod's pending partitions: quotas, priorities, backfill, preemption. Pure.

The order and the pass are `placement.queue`'s (within share first, then priority, then age; a partition
that cannot be placed does not block the ones behind it; the head of the queue gets a reservation after
`placement.queue.RESERVE_AFTER` seconds); victims come from `placement.preemption.plan_preemption`. This
module builds their inputs from the API's objects: the quotas of the SuperPod over its usable devices, the
ledger of what placed partitions are charged, each partition's tenant and PriorityClass. It changes the
allocator as the pass decides (admitted partitions committed, victims released), under the SuperPod's lock;
the caller writes the statuses and carries out the preemptions.

Partitions that are not part of the pass: ones whose spec cannot be read or whose PriorityClass does not
exist (`Pass.refused`), and placed ones that are being evicted (`views.Partition.evicting`) or moved
(`status.move`, or `moving`: a move decided and not written yet), which hold their devices until their pods
are gone but are neither charged nor preemptable.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Collection, Mapping, Sequence

import pydantic

from superpod import placement
from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.controller import relocation, superpodmodel, tenants
from superpod.placement import queue
from superpod.placement import quota as placement_quota
from superpod.topology import tree as topology_tree

JSON = common.JSON
UNQUOTED_TENANT = placement_quota.UNQUOTED
PendingReason = api_partition.PendingReason


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the pass needs from the API besides the partitions: PriorityClasses and namespace labels."""

    classes: Mapping[str, tenants.PriorityClass] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, Mapping[str, str] | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Refused:
    """Not part of the pass: Failed (unreadable spec) or Pending (its PriorityClass is missing)."""

    key: str
    reason: str
    message: str
    failed: bool = False


@dataclasses.dataclass
class Pass:
    decisions: list[queue.Admit | queue.Wait]
    refused: list[Refused]
    ledger: placement_quota.Ledger
    tenancy: dict[str, JSON]  # partition key -> status fields: quota, priority, borrowing
    before: dict[str, placement_quota.Workload]  # the placed partitions before the pass
    pending: list[placement_quota.Workload]  # the partitions the pass decided on
    waiting: dict[str, int] = dataclasses.field(default_factory=dict)  # tenant -> partitions queued after it
    moves: dict[str, relocation.Planned] = dataclasses.field(
        default_factory=dict
    )  # key -> moves that place it


class Tenancy:
    """The quotas of one SuperPod and how its partitions map onto them."""

    def __init__(self, spec: api_superpod.SuperPodSpec | None, usable: int, facts: Facts) -> None:
        self.spec = spec
        self.facts = facts
        self.quotas = tenants.quotas(spec, usable)

    def tenant(self, view: views.Partition) -> str:
        return tenants.tenant_of(view.namespace, self.spec, self.facts.labels.get(view.namespace))

    def priority(self, view: views.Partition) -> tenants.PriorityClass | None:
        """Its PriorityClass; None when it names one that does not exist or that is reserved for
        Kubernetes' own components (`tenants.reserved`)."""
        found = tenants.priority_of(view.priority_class_name, self.facts.classes)
        return None if found is not None and tenants.reserved(found) else found

    def refusal(self, view: views.Partition) -> Refused | None:
        """Why its PriorityClass keeps it out of the pass, or None."""
        name = view.priority_class_name
        found = tenants.priority_of(name, self.facts.classes)
        if found is None:
            message = f"PriorityClass {name} does not exist; the partition waits for it"
            return Refused(view.key, PendingReason.PRIORITY_CLASS_NOT_FOUND, message)
        if tenants.reserved(found):
            message = (
                f"PriorityClass {found.name} (value {found.value}) is reserved for Kubernetes' own components; "
                "name a class of your cluster's workloads"
            )
            return Refused(view.key, PendingReason.PRIORITY_CLASS_FORBIDDEN, message)
        return None

    def workload(self, view: views.Partition, queued: float | None = None) -> placement_quota.Workload | None:
        priority = self.priority(view)
        if priority is None:
            return None
        return tenants.workload(view, tenant=self.tenant(view), priority=priority, queued=queued)

    def fields(self, view: views.Partition, borrowed: Mapping[str, int] | None) -> JSON:
        """The status fields of tenancy: quota, priority, and while placed (`borrowed` holds it, from
        `Ledger.borrowed_by_partition`) whether and how many of its devices are borrowed."""
        priority = self.priority(view)
        tenant = self.tenant(view)
        devices = borrowed.get(view.key) if borrowed is not None else None
        return {
            "quota": tenant or None,
            "priority": priority.value if priority is not None else None,
            "borrowing": devices > 0 if devices is not None else None,
            "borrowedNpus": devices if devices else None,
        }


def usable_devices(allocator: placement.Allocator) -> int:
    """Devices quotas share: every device of a node that is not a reserve node (healthy or not, so that a
    failing device does not shrink every tenant's share). Counted once per tree (a tree does not change; a
    pass runs for every new partition, and a SuperPod has thousands of nodes)."""
    tree = allocator.tree
    usable = _usable.get(tree)
    if usable is None:
        usable = _usable[tree] = sum(len(node.devices) for node in tree.nodes if not node.reserve)
    return usable


_usable: weakref.WeakKeyDictionary[topology_tree.TopologyTree, int] = weakref.WeakKeyDictionary()


def placed_workloads(
    allocator: placement.Allocator,
    partitions: Mapping[str, JSON],
    tenancy: Tenancy,
    moving: Collection[str] = (),
) -> dict[str, placement_quota.Workload]:
    """The workloads of the placed partitions the allocator holds (evicting, moving and unknown ones left
    out: a reservation of a move is no partition)."""
    placed: dict[str, placement_quota.Workload] = {}
    for key in allocator.partitions:
        obj = partitions.get(key)
        if obj is None or key in moving:
            continue
        view = views.Partition(obj)
        if view.evicting or view.deleting or view.move is not None:
            continue
        workload = tenancy.workload(view)
        if workload is None:  # its PriorityClass went away (or is reserved): priority 0 while placed
            workload = tenants.workload(view, tenant=tenancy.tenant(view), priority=tenants.DEFAULT_PRIORITY)
        placed[key] = workload
    return placed


def run(
    allocator: placement.Allocator,
    tenancy: Tenancy,
    partitions: Mapping[str, JSON],
    keys: Sequence[str],
    *,
    now: float,
    since: Mapping[str, float],
    reserve_after: float = queue.RESERVE_AFTER,
    moving: Collection[str] = (),
) -> Pass:
    """Decide on the pending partitions `keys` (see the module docstring); `since` says since when each
    waits (seconds, the clock of `now`)."""
    placed = placed_workloads(allocator, partitions, tenancy, moving)
    ledger = placement_quota.Ledger(tenancy.quotas, placed.values())
    refused: list[Refused] = []
    pending: list[placement_quota.Workload] = []
    requests: dict[str, placement.PlacementRequest] = {}
    for key in keys:
        obj = partitions.get(key)
        if obj is None or allocator.placement_of(key) is not None:
            continue
        view = views.Partition(obj)
        try:
            spec = view.parse_spec()
        except pydantic.ValidationError as error:
            refused.append(Refused(key, "", superpodmodel.one_line(error), failed=True))
            continue
        workload = tenancy.workload(view, queued=since.get(key, now))
        if workload is None:
            refusal = tenancy.refusal(view)
            assert refusal is not None
            refused.append(refusal)
            continue
        pending.append(workload)
        requests[key] = placement.PlacementRequest.from_spec(spec)
    before = dict(placed)
    decisions = [
        _quota_first(decision, ledger)
        for decision in queue.admit(
            allocator, ledger, pending, requests, placed, now, reserve_after=reserve_after
        )
    ]
    fields: dict[str, JSON] = {}
    borrowed = ledger.borrowed_by_partition()
    for key in [*before, *requests]:
        fields[key] = tenancy.fields(views.Partition(partitions[key]), borrowed)
    return Pass(decisions, refused, ledger, fields, before, pending)


def _quota_first(
    decision: queue.Admit | queue.Wait, ledger: placement_quota.Ledger
) -> queue.Admit | queue.Wait:
    """A partition its quota refuses waits for its quota, whatever else stands in its way: capacity that
    frees up would not place it."""
    if (
        not ledger.quotas.enabled
        or not isinstance(decision, queue.Wait)
        or decision.reason
        in (
            PendingReason.QUOTA_EXCEEDED,
            PendingReason.UNSATISFIABLE,
        )
    ):
        return decision
    refusal = ledger.quota_refusal(decision.workload)
    if refusal is None or ledger.quotas.may_borrow(ledger.tenant(decision.workload)):
        return decision
    return dataclasses.replace(decision, reason=PendingReason.QUOTA_EXCEEDED, message=refusal)


def quota_status(outcome: Pass | None) -> list[JSON] | None:
    """SuperPod status.quotas: per quota, nominal share, devices used and borrowed, partitions waiting."""
    if outcome is None or not outcome.ledger.quotas.enabled:
        return None
    waiting = outcome.waiting
    return [
        {
            "name": usage.tenant,
            "nominal": usage.nominal,
            "used": usage.used,
            "borrowed": usage.borrowed,
            "pending": waiting.get(usage.tenant, 0),
        }
        for usage in outcome.ledger.usage()
        if usage.tenant != UNQUOTED_TENANT
    ]


def run_fitting(
    allocator: placement.Allocator,
    tenancy: Tenancy,
    partitions: Mapping[str, JSON],
    keys: Sequence[str],
    *,
    now: float,
    since: Mapping[str, float],
) -> Pass | None:
    """The pass `run` makes when the SuperPod has no quotas and every one of `keys` fits as things are (or is
    placed already: another pass placed it), without reading the other placed partitions (None: not so, and
    nothing is changed; `run` decides).

    Without quotas a partition that fits is admitted at once, in the queue's order (priority, then age),
    with no victim: `run` would decide the same. Its cost does not grow with the partitions already
    placed, which `run` reads every one of (their workloads, the ledger, their status fields): with a
    thousand placed that was most of the operator's CPU for each new partition. Borrowing needs quotas, so
    none is borrowed as long as what all partitions hold stays within the usable devices (checked).
    """
    if tenancy.quotas.enabled or not keys:
        return None
    ledger = placement_quota.Ledger(tenancy.quotas)
    pending: list[placement_quota.Workload] = []
    requests: dict[str, placement.PlacementRequest] = {}
    held: list[str] = []  # placed by another pass meanwhile: only their status fields are wanted
    for key in keys:
        obj = partitions.get(key)
        if obj is None:
            return None
        if allocator.placement_of(key) is not None:
            held.append(key)
            continue
        view = views.Partition(obj)
        try:
            spec = view.parse_spec()
        except pydantic.ValidationError:
            return None
        workload = tenancy.workload(view, queued=since.get(key, now))
        if workload is None:
            return None
        pending.append(workload)
        requests[key] = placement.PlacementRequest.from_spec(spec)
    admitted: list[queue.Admit | queue.Wait] = []
    for workload in queue.order(pending, ledger):
        direct = allocator.plan_partition(requests[workload.id])
        after = allocator.state.total_held + workload.npus
        if not isinstance(direct, placement.Placement) or after > tenancy.quotas.usable:
            for decision in admitted:  # put back what this attempt committed: `run` decides afresh
                allocator.release(decision.workload.id)
            return None
        allocator.commit(workload.id, direct)
        placed = dataclasses.replace(workload, queued=None)
        ledger.charge(placed)
        admitted.append(queue.Admit(placed, direct))
    if allocator.state.total_held > tenancy.quotas.usable:
        for decision in admitted:
            allocator.release(decision.workload.id)
        return None
    no_borrowing = {key: 0 for key in [*held, *requests]}
    fields = {key: tenancy.fields(views.Partition(partitions[key]), no_borrowing) for key in no_borrowing}
    return Pass(admitted, [], ledger, fields, {}, pending)
