"""Quotas: each tenant's nominal share of a SuperPod, who is borrowing, and what a partition is charged.

A *tenant* is a quota (`SuperPod.spec.quotas[]`: a name, a nominal share `npus`, `borrowing: Allowed |
Never`); the controller maps a partition's namespace to it. Partitions in namespaces no quota names belong to
the implicit tenant `UNQUOTED`, whose nominal share is the capacity no quota holds (usable devices minus
the sum of the shares) and which never borrows: they may use only capacity no quota holds. With no quotas
at all that tenant's share is the whole SuperPod, so nothing is ever over its share or borrowing and
admission behaves as before quotas existed.

A partition is charged its `npus` (what it asked, as Kubernetes quotas charge requests). A tenant *uses*
the sum over its placed partitions, is *within its share* while that is at most its nominal share, and
*borrows* what is above it. A tenant may borrow (go above its share) only with `borrowing: Allowed`; the
devices it borrows are idle shares of others, which they take back by preemption (reclaim) when they need
them (`superpod.placement.preemption`).

Pure: no Kubernetes, no I/O, no clock; times are numbers the caller passes in.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

UNQUOTED = ""  # the tenant of partitions in namespaces that no quota names


class Borrowing(enum.StrEnum):
    ALLOWED = "Allowed"
    NEVER = "Never"


class PreemptionPolicy(enum.StrEnum):
    """A PriorityClass's preemptionPolicy, as Kubernetes spells it."""

    PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
    NEVER = "Never"


@dataclasses.dataclass(frozen=True)
class Quota:
    """One tenant's nominal share of a SuperPod."""

    name: str
    npus: int
    borrowing: Borrowing = Borrowing.ALLOWED


@dataclasses.dataclass(frozen=True)
class Workload:
    """A partition as quotas, admission and preemption see it."""

    id: str
    npus: int  # what it is charged
    tenant: str = UNQUOTED  # a quota name, or UNQUOTED
    priority: int = 0  # its PriorityClass's value (the globalDefault class's, else 0, when it names none)
    preemption_policy: PreemptionPolicy = PreemptionPolicy.PREEMPT_LOWER_PRIORITY
    created: float = 0.0  # creation time, in the caller's seconds: older partitions go first
    queued: float | None = (
        None  # since when it waits to be placed (None: placed); see `superpod.placement.queue`
    )
    running_pods: int = 0  # pods a preemption would evict


class Quotas:
    """The quotas of one SuperPod over `usable` devices (its non-reserve devices)."""

    def __init__(self, quotas: Sequence[Quota] = (), usable: int = 0) -> None:
        names = [quota.name for quota in quotas]
        for quota in quotas:
            if not quota.name:
                raise ValueError("a quota needs a name")
            if quota.npus < 0:
                raise ValueError(f"quota {quota.name}: npus must not be negative, got {quota.npus}")
            if names.count(quota.name) > 1:
                raise ValueError(f"quota {quota.name} is named twice")
        self.usable = usable
        self.by_name: dict[str, Quota] = {quota.name: quota for quota in quotas}
        self.assigned = sum(quota.npus for quota in quotas)

    @property
    def enabled(self) -> bool:
        return bool(self.by_name)

    def problem(self) -> str | None:
        """Why the quotas cannot all be honoured (their shares add up to more than the usable devices), or
        None. The shares still apply as given; the unquoted tenant's share is then 0."""
        if self.assigned > self.usable:
            return (
                f"quotas assign {self.assigned} NPUs but the SuperPod has {self.usable} usable: "
                "nominal shares cannot all be met"
            )
        return None

    def tenant_of(self, name: str | None) -> str:
        """The tenant a quota name stands for: itself when it names a quota, else UNQUOTED."""
        return name if name and name in self.by_name else UNQUOTED

    def nominal(self, tenant: str) -> int:
        quota = self.by_name.get(tenant)
        if quota is not None:
            return quota.npus
        return max(0, self.usable - self.assigned)

    def may_borrow(self, tenant: str) -> bool:
        quota = self.by_name.get(tenant)
        return quota is not None and quota.borrowing == Borrowing.ALLOWED

    def tenants(self) -> tuple[str, ...]:
        """Every quota name, then UNQUOTED."""
        return (*self.by_name, UNQUOTED)


@dataclasses.dataclass(frozen=True)
class TenantUsage:
    tenant: str
    nominal: int
    used: int

    @property
    def borrowed(self) -> int:
        return max(0, self.used - self.nominal)


class Ledger:
    """What each tenant uses: the charges of its placed partitions, kept as they come and go."""

    def __init__(self, quotas: Quotas, placed: Iterable[Workload] = ()) -> None:
        self.quotas = quotas
        self.used: dict[str, int] = {}
        self.charged: dict[str, Workload] = {}
        for workload in placed:
            self.charge(workload)

    def tenant(self, workload: Workload) -> str:
        return self.quotas.tenant_of(workload.tenant)

    def charge(self, workload: Workload) -> None:
        """Count `workload` as placed (charging it twice is an error)."""
        if workload.id in self.charged:
            raise ValueError(f"partition {workload.id} is already charged")
        tenant = self.tenant(workload)
        self.charged[workload.id] = workload
        self.used[tenant] = self.used.get(tenant, 0) + workload.npus

    def refund(self, partition_id: str) -> Workload | None:
        """Count the partition as no longer placed; returns it (None if it was not charged)."""
        workload = self.charged.pop(partition_id, None)
        if workload is not None:
            tenant = self.tenant(workload)
            self.used[tenant] -= workload.npus
        return workload

    def used_by(self, tenant: str) -> int:
        return self.used.get(tenant, 0)

    def total_used(self) -> int:
        return sum(self.used.values())

    def usage(self) -> tuple[TenantUsage, ...]:
        """Per tenant (every quota, then UNQUOTED): nominal share and devices used."""
        return tuple(
            TenantUsage(tenant, self.quotas.nominal(tenant), self.used_by(tenant))
            for tenant in self.quotas.tenants()
        )

    def borrowed(self, tenant: str) -> int:
        return max(0, self.used_by(tenant) - self.quotas.nominal(tenant))

    def over_share(self, workload: Workload) -> int:
        """How far above its tenant's nominal share placing `workload` would take it (<= 0: within)."""
        tenant = self.tenant(workload)
        return self.used_by(tenant) + workload.npus - self.quotas.nominal(tenant)

    def within_share(self, workload: Workload) -> bool:
        return self.over_share(workload) <= 0

    def borrowed_by_partition(self) -> dict[str, int]:
        """Per placed partition, how many of its devices lie beyond its tenant's nominal share (0: none).

        A tenant's partitions fill its share in admission order (highest priority first, then the oldest),
        so the devices beyond it are those of its lowest-priority, youngest partitions: the ones a reclaim
        by priority and age would take back first. Creation times have one-second steps: at equal priority
        and time, the one charged first comes first. The counts of a tenant add up to what it borrows."""
        by_tenant: dict[str, list[Workload]] = {}
        for workload in self.charged.values():
            by_tenant.setdefault(self.tenant(workload), []).append(workload)
        borrowed: dict[str, int] = {}
        for tenant, workloads in by_tenant.items():
            room = self.quotas.nominal(tenant)
            for workload in sorted(workloads, key=lambda w: (-w.priority, w.created)):  # stable
                within = min(workload.npus, max(room, 0))
                room -= workload.npus
                borrowed[workload.id] = workload.npus - within
        return borrowed

    def is_borrowing(self, partition_id: str) -> bool:
        """Whether some of this placed partition's devices lie beyond its tenant's nominal share
        (`borrowed_by_partition`)."""
        return self.borrowed_by_partition().get(partition_id, 0) > 0

    def quota_refusal(self, workload: Workload) -> str | None:
        """Why quotas alone forbid placing `workload` now (None: they allow it): it would take its tenant
        above its nominal share and the tenant may not borrow, or there is not that much idle capacity to
        borrow (the shares of all tenants minus what all use)."""
        over = self.over_share(workload)
        if over <= 0:
            return None
        tenant = self.tenant(workload)
        name = f"quota {tenant}" if tenant else "namespaces no quota names"
        share = self.quotas.nominal(tenant)
        used = self.used_by(tenant)
        if not self.quotas.may_borrow(tenant):
            return (
                f"{name}: {used} of {share} NPUs in use, {workload.npus} more would exceed the nominal share "
                "and borrowing is Never"
            )
        idle = self.quotas.usable - self.total_used()
        if idle < workload.npus:
            return (
                f"{name}: {used} of {share} NPUs in use; borrowing {workload.npus} needs that many idle, "
                f"{max(idle, 0)} are"
            )
        return None
