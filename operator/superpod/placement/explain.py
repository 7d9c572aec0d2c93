"""Why an admission pass decided as it did, one readable line per partition (`superpod plan --explain`). Pure.

A decision of `placement.queue.admit` is explained against the state the pass started from (the ledger and
the placed partitions before it), in the words of what stood in the way:

- *quota*: placing it would take its quota above the nominal share and borrowing is Never or impossible;
- *capacity*: not enough free devices, or none in a shape and tier that place it;
- *priority*: what it may preempt (lower priority in its own quota; borrowing partitions of other quotas
  while it stays within its own share), and why that is nothing, or not enough;

and for a partition that preempts, which victims and why each may be taken (priority or reclaim), with the
devices and running pods it disturbs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from superpod.api import partition as api_partition
from superpod.placement import preemption, queue
from superpod.placement import quota as placement_quota

PendingReason = api_partition.PendingReason
CAPACITY = frozenset(
    {PendingReason.INSUFFICIENT_CAPACITY, PendingReason.FRAGMENTED, PendingReason.UNSATISFIABLE}
)


def explain(
    decision: queue.Admit | queue.Wait,
    ledger: placement_quota.Ledger,
    placed: Mapping[str, placement_quota.Workload],
) -> str:
    """One line for `decision`; `ledger` and `placed` as they were before the pass."""
    if isinstance(decision, queue.Admit):
        return admitted(decision, ledger, placed)
    return waiting(decision, ledger, placed)


def admitted(
    decision: queue.Admit, ledger: placement_quota.Ledger, placed: Mapping[str, placement_quota.Workload]
) -> str:
    workload = decision.workload
    after = placement_quota.Ledger(
        ledger.quotas, [w for w in placed.values() if w.id not in decision.victims]
    )
    share = _share(after, workload)
    if not decision.victims:
        return f"placed: it fits as things are{share}"
    victims = "; ".join(
        _victim(placed[v], workload, v in decision.reclaimed, ledger) for v in decision.victims
    )
    return f"preempts {victims}; then placed on the devices they free{share}"


def preempted(victim: placement_quota.Workload, decision: queue.Admit, ledger: placement_quota.Ledger) -> str:
    """The line of a partition that `decision` preempts."""
    why = _why_victim(victim, decision.workload, victim.id in decision.reclaimed, ledger)
    return f"preempted by {decision.workload.id} ({why}); it waits to be placed again"


def waiting(
    decision: queue.Wait, ledger: placement_quota.Ledger, placed: Mapping[str, placement_quota.Workload]
) -> str:
    workload = decision.workload
    first = decision.message.split("; ")[0]
    if decision.reason == PendingReason.QUOTA_EXCEEDED:
        refusal = ledger.quota_refusal(workload)
        return f"waits for quota: {refusal or first}"
    if decision.reason == PendingReason.UNSATISFIABLE:
        return f"waits for capacity that can never exist: {first}"
    line = f"waits for capacity: {first}"
    if decision.victims:
        return f"{line}; its victims ({', '.join(decision.victims)}) freed devices that do not place it"
    return f"{line}; {_no_preemption(workload, ledger, placed)}"


def _no_preemption(
    workload: placement_quota.Workload,
    ledger: placement_quota.Ledger,
    placed: Mapping[str, placement_quota.Workload],
) -> str:
    """Why the preemption search found nothing: nothing it may preempt (and why), or not enough."""
    rules = preemption.Rules(ledger, workload)
    if rules.never:
        return "it preempts nothing: its PriorityClass's preemptionPolicy is Never"
    eligible = sorted(w.id for w in placed.values() if rules.eligible(w))
    if eligible:
        return (
            f"priority: preempting all it may ({_names(eligible)}) would not free a placement for it in any "
            "tier, so it preempts nothing"
        )
    tenant = rules.tenant
    own = [w for w in placed.values() if ledger.tenant(w) == tenant and w.id != workload.id]
    whose = f" of {_quota(tenant)}" if ledger.quotas.enabled else ""
    if own:
        parts = [f"the {len(own)} placed partition(s){whose} have priority {workload.priority} or higher"]
    else:
        parts = [f"no partition{whose} is placed"]
    if not ledger.quotas.enabled:
        pass
    elif not rules.reclaim:
        parts.append("it would be above its own share, so it may not reclaim from other quotas")
    elif not rules.budgets:
        parts.append("no other quota borrows")
    return "priority: it may preempt nothing: " + ", and ".join(parts)


def _victim(
    victim: placement_quota.Workload,
    preemptor: placement_quota.Workload,
    reclaimed: bool,
    ledger: placement_quota.Ledger,
) -> str:
    pods = f", {victim.running_pods} running pod(s)" if victim.running_pods else ", no running pod"
    why = _why_victim(victim, preemptor, reclaimed, ledger)
    return f"{victim.id} ({why}; {victim.npus} NPUs{pods})"


def _why_victim(
    victim: placement_quota.Workload,
    preemptor: placement_quota.Workload,
    reclaimed: bool,
    ledger: placement_quota.Ledger,
) -> str:
    if reclaimed:
        tenant = ledger.tenant(victim)
        return (
            f"reclaim: {_quota(tenant)} borrows {ledger.borrowed(tenant)} NPUs beyond its share, which "
            f"{_quota(ledger.tenant(preemptor))} needs within its own"
        )
    return f"priority {victim.priority} below {preemptor.priority}"


def _share(ledger: placement_quota.Ledger, workload: placement_quota.Workload) -> str:
    """How its quota stands once it is placed (nothing to say without quotas)."""
    if not ledger.quotas.enabled:
        return ""
    tenant = ledger.tenant(workload)
    used = ledger.used_by(tenant) + workload.npus
    nominal = ledger.quotas.nominal(tenant)
    line = f"; {_quota(tenant)}: {used} of {nominal} NPUs"
    if used > nominal:
        return f"{line}, borrows {used - max(nominal, ledger.used_by(tenant))} idle NPUs of other quotas"
    return f"{line}, within its share"


def _quota(tenant: str) -> str:
    return f"quota {tenant}" if tenant else "namespaces no quota names"


def _names(ids: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
