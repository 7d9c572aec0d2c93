"""Topology-aware preemption: which placed partitions give up their devices so a partition can be placed.

`plan_preemption(allocator, request, preemptor, placed, ledger)` answers `Preemption(victims, placement)`,
or a `Rejection` when no allowed victim set makes room. It changes nothing: the caller evicts the victims,
and places the preemptor once their devices are free.

Who may be a victim (`Rules`):

- *Priority preemption*: a partition of the preemptor's own tenant with a strictly lower priority.
- *Reclaim*: a partition of another tenant that is borrowing (above its nominal share), of any priority,
  only while the preemptor is within its own share once placed. A tenant's victims are taken while it is
  still borrowing: all but the last of them leave it above its share (Kueue's rule), so a reclaim takes
  back borrowed devices, not the lender's own share. Priorities do not protect borrowed devices: else an
  owner could never get its nominal share back from a busier tenant's higher-priority work.
- A preemptor with `preemptionPolicy: Never` preempts nothing; nothing preempts a partition without
  `Workload` facts (the caller passes one for every placed partition it wants considered).
- Quotas: a tenant that may not borrow and would be above its share must also free enough of its own
  devices to be within it; a borrower may not take more than the idle capacity.

What is chosen, in this order: the victim set minimising the highest victim priority, then the devices
the victims hold, the number of victims, the running pods they disturb; at equal cost, the set that lets
the preemptor span the lowest tier, then the younger victims (`Cost`). The preemptor's hard limits
(maxTier, node rules) always hold, and the allocator places it as well as the freed devices allow. Tier is
a tie-break, not the first criterion: preempting more work just to narrow the span buys nothing on a UB
SuperPoD whose tiers have the same bandwidth per device, and a job that needs a tier says so with its hard
maxTier. Every victim
holds a device the preemptor's placement uses, so no preemption is useless: the placement returned is the
allocator's own plan with the victims released (`Allocator.released`).

The search (`_Search`): per domain of every level from the preemptor's maxTier down to its lowest
feasible tier, the slot capacity for the preemptor's pod shape is computed with every allowed victim of
priority up to t released, for each victim priority t, which gives each domain a lower bound (lowest t that
could suffice, devices still missing). The widest level goes first (it holds every narrower domain's
candidates, so it finds the cheapest cost); narrower levels then only look for a tie, which wins on the
tier. Domains are solved best bound first, until the next bound cannot reach the best set found:
exhaustively (branch and bound over the domain's candidates) when it has at most `exact_limit`, else
greedily (candidates that free the most slots per device first, then every victim that is not needed
dropped). The best sets are checked with the allocator. With every domain solved exhaustively the answer
is exact (`Preemption.exact`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from superpod.api import partition as api_partition
from superpod.placement import allocator as placement_allocator
from superpod.placement import quota as placement_quota
from superpod.placement import request as placement_request
from superpod.placement import result

PendingReason = api_partition.PendingReason
LOWEST_PRIORITY = -(2**31) - 1  # below every PriorityClass value: the priority of an empty victim set
EXACT_LIMIT = 12  # candidates of one domain up to which the search is exhaustive
DOMAIN_LIMIT = 48  # domains solved per tier before the search settles for the best found
VERIFY_LIMIT = 4  # best sets checked with the allocator per tier


@dataclasses.dataclass(frozen=True, order=True)
class Cost:
    """What a preemption costs, compared in field order (lower is better)."""

    priority: int  # the highest priority among the victims (LOWEST_PRIORITY: none)
    devices: int  # devices the victims hold
    partitions: int
    pods: int  # running pods of the victims
    tier: int  # index in the profile's tiers of the preemptor's tier span: lower is better, at equal cost
    youth: float  # minus the creation time of the oldest victim: younger victims cost less


@dataclasses.dataclass(frozen=True)
class Preemption:
    """Evict `victims` (none when the preemptor fits as things are), then place the preemptor there."""

    victims: tuple[str, ...]  # lowest priority, youngest first
    placement: result.Placement
    cost: Cost
    reclaimed: tuple[
        str, ...
    ] = ()  # the victims of other tenants (reclaim); the rest are priority preemption
    exact: bool = True  # the search proved that no cheaper victim set exists


@dataclasses.dataclass(frozen=True)
class Victim:
    workload: placement_quota.Workload
    tenant: str
    held: Mapping[int, int]  # node index -> device mask
    devices: int


class Rules:
    """Which partitions a preemptor may preempt, and what quotas require of the victim set."""

    def __init__(self, ledger: placement_quota.Ledger, preemptor: placement_quota.Workload) -> None:
        quotas = ledger.quotas
        self.ledger = ledger
        self.preemptor = preemptor
        self.tenant = ledger.tenant(preemptor)
        over = ledger.over_share(preemptor)
        borrows = quotas.may_borrow(self.tenant)
        # within its share once placed (alone, or after freeing enough of its own): it may reclaim
        self.reclaim = over <= 0 or not borrows
        # a tenant that may not borrow must free its own devices down to its share
        self.required_own = max(0, over) if not borrows else 0
        # a borrower may take only idle capacity
        self.required_total = max(0, ledger.total_used() + preemptor.npus - quotas.usable) if over > 0 else 0
        self.budgets = {
            tenant: ledger.borrowed(tenant)
            for tenant in quotas.tenants()
            if tenant != self.tenant and ledger.borrowed(tenant) > 0
        }
        self.never = preemptor.preemption_policy == placement_quota.PreemptionPolicy.NEVER

    @property
    def needs_nothing(self) -> bool:
        """Quotas allow the preemptor without freeing anything."""
        return self.required_own == 0 and self.required_total == 0

    def eligible(self, workload: placement_quota.Workload) -> bool:
        if self.never or workload.id == self.preemptor.id:
            return False
        tenant = self.ledger.tenant(workload)
        if tenant == self.tenant:
            return workload.priority < self.preemptor.priority
        return self.reclaim and tenant in self.budgets

    def allows(self, victims: Iterable[Victim]) -> bool:
        """The quota conditions on a whole victim set: requirements met, lenders left their share."""
        victims = list(victims)
        own = sum(v.workload.npus for v in victims if v.tenant == self.tenant)
        total = sum(v.workload.npus for v in victims)
        if own < self.required_own or total < self.required_total:
            return False
        return self.allows_partial(victims)

    def within_budget(self, charges: Mapping[str, tuple[int, int]], victim: Victim) -> bool:
        """Whether, with `victim` taken too, its tenant's last victim is still taken while it borrows
        (`charges`: per tenant, the sum and the largest charge of the victims taken so far)."""
        if victim.tenant == self.tenant:
            return True
        total, largest = charges.get(victim.tenant, (0, 0))
        npus = victim.workload.npus
        return total + npus - max(largest, npus) < self.budgets[victim.tenant]

    def allows_partial(self, victims: Iterable[Victim]) -> bool:
        """The lenders' condition alone, which more victims can only break: each lender's last victim is
        taken while it still borrows."""
        return all(
            total - largest < self.budgets[tenant]
            for tenant, (total, largest) in _charges(v for v in victims if v.tenant != self.tenant).items()
        )


def plan_preemption(
    allocator: placement_allocator.Allocator,
    request: placement_request.PlacementRequest,
    preemptor: placement_quota.Workload,
    placed: Mapping[str, placement_quota.Workload],
    ledger: placement_quota.Ledger,
    *,
    exact_limit: int = EXACT_LIMIT,
) -> Preemption | result.Rejection:
    """Where `preemptor` goes and whom it preempts (see the module docstring); changes nothing.

    `placed` gives the facts of the placed partitions (id -> workload), `ledger` their charges. A
    preemptor that fits as things are gets a Preemption without victims.
    """
    rules = Rules(ledger, preemptor)
    direct = allocator.plan_partition(request)
    tier_index = {tier.name: i for i, tier in enumerate(allocator.tree.profile.tiers)}
    if isinstance(direct, result.Placement) and rules.needs_nothing:
        cost = Cost(LOWEST_PRIORITY, 0, 0, 0, tier_index[direct.tier_span], 0.0)
        return Preemption((), direct, cost)
    if isinstance(direct, result.Rejection) and direct.reason == PendingReason.UNSATISFIABLE:
        return direct
    refusal = ledger.quota_refusal(preemptor)
    if isinstance(direct, result.Rejection):
        reason, message = direct.reason, direct.message
    else:
        reason, message = PendingReason.QUOTA_EXCEEDED, refusal or "quota"
    if rules.never:
        return result.Rejection(reason, f"{message}; its preemptionPolicy is Never")
    candidates = [
        Victim(workload, ledger.tenant(workload), allocator.held_by(pid), _devices(allocator.held_by(pid)))
        for pid in allocator.partitions
        if (workload := placed.get(pid)) is not None and rules.eligible(workload)
    ]
    if not candidates:
        return result.Rejection(reason, f"{message}; no placed partition may be preempted for it")
    shape = placement_request.resolve(request, allocator.tree)
    assert not isinstance(shape, str)  # Unsatisfiable returned above
    found = _Search(allocator, request, shape, rules, candidates, exact_limit, tier_index).run(direct)
    if found is None:
        return result.Rejection(
            reason, f"{message}; preempting what it may preempt would not make room for it in any tier"
        )
    return found


class _Anyone(Rules):
    """Every placed partition may be waited for, without quota conditions (for reservations)."""

    def __init__(self, preemptor: placement_quota.Workload) -> None:
        self.preemptor = preemptor
        self.tenant = preemptor.tenant
        self.reclaim = True
        self.required_own = self.required_total = 0
        self.budgets = {}
        self.never = False

    def eligible(self, workload: placement_quota.Workload) -> bool:
        return workload.id != self.preemptor.id

    def allows_partial(self, victims: Iterable[Victim]) -> bool:
        return True

    def within_budget(self, charges: Mapping[str, tuple[int, int]], victim: Victim) -> bool:
        return True


def plan_reservation(
    allocator: placement_allocator.Allocator,
    request: placement_request.PlacementRequest,
    waiter: placement_quota.Workload,
    placed: Mapping[str, placement_quota.Workload],
) -> Preemption | None:
    """Where `waiter` would go once the cheapest set of placed partitions (any, whatever their priority or
    tenant) has left, costed as a preemption: the devices to hold for it, so that partitions behind it in
    the queue do not take them (`superpod.placement.queue`). None when even an empty SuperPod (of its
    present health) would not place it."""
    candidates = [
        Victim(workload, workload.tenant, allocator.held_by(pid), _devices(allocator.held_by(pid)))
        for pid in allocator.partitions
        if (workload := placed.get(pid)) is not None and pid != waiter.id
    ]
    shape = placement_request.resolve(request, allocator.tree)
    if isinstance(shape, str):
        return None
    direct = allocator.plan_partition(request)
    tier_index = {tier.name: i for i, tier in enumerate(allocator.tree.profile.tiers)}
    if isinstance(direct, result.Placement):
        return Preemption((), direct, Cost(LOWEST_PRIORITY, 0, 0, 0, tier_index[direct.tier_span], 0.0))
    if not candidates or direct.reason == PendingReason.UNSATISFIABLE:
        return None
    return _Search(allocator, request, shape, _Anyone(waiter), candidates, EXACT_LIMIT, tier_index).run(
        direct
    )


def victim_order(victims: Iterable[placement_quota.Workload]) -> list[placement_quota.Workload]:
    """Lowest priority first, then youngest (Kueue's order), then by id."""
    return sorted(victims, key=lambda w: (w.priority, -w.created, w.id))


def _charges(victims: Iterable[Victim]) -> dict[str, tuple[int, int]]:
    """Per tenant: the sum and the largest charge of `victims`."""
    out: dict[str, tuple[int, int]] = {}
    for victim in victims:
        total, largest = out.get(victim.tenant, (0, 0))
        out[victim.tenant] = (total + victim.workload.npus, max(largest, victim.workload.npus))
    return out


def _devices(held: Mapping[int, int]) -> int:
    return sum(mask.bit_count() for mask in held.values())


@dataclasses.dataclass
class _Found:
    key: tuple[int, int, int, int, float, tuple[str, ...]]  # Cost without the tier, then the ids
    victims: tuple[Victim, ...]
    exact: bool
    required: bool = False  # quotas ask for them all (the preemptor fits without them)


class _Search:
    def __init__(
        self,
        allocator: placement_allocator.Allocator,
        request: placement_request.PlacementRequest,
        shape: placement_request.Shape,
        rules: Rules,
        candidates: Sequence[Victim],
        exact_limit: int,
        tier_index: Mapping[str, int],
    ) -> None:
        self.allocator = allocator
        self.tree = allocator.tree
        self.state = allocator.state
        self.request = request
        self.shape = shape
        self.rules = rules
        self.exact_limit = exact_limit
        self.tier_index = tier_index
        self.key = shape.key
        self.caps = self.state.shape_caps(shape.key)
        self.candidates = {victim.workload.id: victim for victim in candidates}
        self.on_node: dict[int, list[Victim]] = {}
        for victim in candidates:
            for node in victim.held:
                self.on_node.setdefault(node, []).append(victim)
        self.priorities = sorted({victim.workload.priority for victim in candidates})
        ideal = allocator.ideal_tiers(request)
        node_tier = self.tree.node_tier
        self.first_level = max(0, tier_index[ideal[1]] - node_tier) if ideal else shape.max_level
        self.exact = True

    # ---- the slot capacity model -----------------------------------------------------------------

    def node_cap(self, node: int, released: int) -> int:
        """Slots of the preemptor's shape node `node` hosts with `released` devices freed."""
        state = self.state
        free = state.free[node] | (released & ~state.unhealthy[node])
        return state.node_cap(node, self.key, free=free)

    def gain(self, masks: Mapping[int, int]) -> int:
        caps = self.caps[0]
        return sum(self.node_cap(node, mask) - caps[node] for node, mask in masks.items())

    def bounds(self) -> list[dict[int, int]]:
        """Per level, per domain: the index into `priorities` of the lowest threshold whose victims, all
        released, would let the domain host every slot (domains no threshold helps are absent)."""
        tree = self.tree
        levels = len(tree.levels)
        gains: list[list[dict[int, int]]] = [[{} for _ in range(levels)] for _ in self.priorities]
        rank = {priority: i for i, priority in enumerate(self.priorities)}
        caps0 = self.caps[0]
        thresholds = len(self.priorities)
        for node, victims in self.on_node.items():
            by_rank: dict[int, int] = {}
            for victim in victims:
                i = rank[victim.workload.priority]
                by_rank[i] = by_rank.get(i, 0) | victim.held[node]
            domains = tuple(enumerate(tree.nodes[node].domains))[self.first_level : self.shape.max_level + 1]
            mask = 0
            gain = 0
            for i in range(min(by_rank), thresholds):
                if i in by_rank:  # the gain changes only where this node has victims of that priority
                    mask |= by_rank[i]
                    gain = self.node_cap(node, mask) - caps0[node]
                if gain:
                    for level, domain in domains:
                        level_gains = gains[i][level]
                        level_gains[domain] = level_gains.get(domain, 0) + gain
        slots = self.shape.slots
        out: list[dict[int, int]] = [{} for _ in range(levels)]
        for i in range(len(self.priorities) - 1, -1, -1):  # lowest threshold wins: write it last
            for level in range(self.first_level, self.shape.max_level + 1):  # the levels searched
                caps = self.caps[level]
                for domain, gain in gains[i][level].items():
                    if caps[domain] + gain >= slots:
                        out[level][domain] = i
        return out

    # ---- the search ------------------------------------------------------------------------------

    def run(self, direct: result.Placement | result.Rejection) -> Preemption | None:
        """`direct`: the allocator's plan for the preemptor as things are."""
        # it fits as things are, and only quotas ask for victims: from its tier on, any domain will do
        direct_level = (
            max(0, self.tier_index[direct.tier_span] - self.tree.node_tier)
            if isinstance(direct, result.Placement)
            else None
        )
        bounds = self.bounds()
        found: list[tuple[int, _Found]] = []  # (level, unverified set)
        best: _Found | None = None
        # widest level first: it holds every narrower domain's candidates, so it finds the cheapest cost
        # quickly; a narrower level can then only tie it (and win on the tier), which bounds its search
        top = self.shape.max_level if direct_level is None else min(direct_level, self.shape.max_level)
        if direct_level is not None:
            quota = self.quota_only()
            if quota is not None:
                found.append((direct_level, quota))
                best = quota
        for level in range(top if direct_level is None else top - 1, self.first_level - 1, -1):
            for solution in self.level(level, bounds[level], best):
                found.append((level, solution))
                if best is None or solution.key < best.key:
                    best = solution
        found.sort(key=lambda item: (item[1].key[:4], item[0], item[1].key[4:]))
        for _, solution in found[:VERIFY_LIMIT]:
            verified = self.verify(solution, required=solution.victims if solution.required else ())
            if verified is not None:
                return verified
        return None

    def quota_only(self) -> _Found | None:
        """The cheapest set quotas require when the preemptor fits without victims."""
        for priority in self.priorities:
            members = self.required_members(priority, ())
            if len(members) <= self.exact_limit:
                chosen = self.exhaustive(members, [{} for _ in members], 0)
                exact = True
            else:
                chosen = self.quota_victims(())
                exact = False
                self.exact = False
            if chosen is not None:
                return _Found(self.cost_key(chosen), tuple(chosen), exact, required=True)
        return None

    def level(self, level: int, bounds: Mapping[int, int], best: _Found | None) -> list[_Found]:
        """The cheapest set of each domain of `level` solved, best bound first, while a bound can still
        reach `best` (ties included: they may win on the tier)."""
        free_count = self.state.free_count[level]
        npus = self.shape.npus
        order = sorted(
            (self.priorities[i], max(1, npus - free_count[domain]), domain) for domain, i in bounds.items()
        )
        solutions: list[_Found] = []
        for solved, (priority, devices, domain) in enumerate(order):
            if best is not None and (priority, devices) > best.key[:2]:
                break
            if solved >= DOMAIN_LIMIT:
                self.exact = False
                break
            found = self.solve(level, domain, priority)
            if found is not None:
                solutions.append(found)
                if best is None or found.key < best.key:
                    best = found
        return sorted(solutions, key=lambda f: f.key)[:VERIFY_LIMIT]

    def members(self, level: int, domain: int, priority: int) -> list[Victim]:
        tree = self.tree
        span = tree.levels[level][domain]
        seen: dict[str, Victim] = {}
        if len(self.on_node) < span.end_node - span.first_node:
            nodes: Iterable[int] = (n for n in self.on_node if span.first_node <= n < span.end_node)
        else:
            nodes = range(span.first_node, span.end_node)
        for node in nodes:
            for victim in self.on_node.get(node, ()):
                if victim.workload.priority <= priority:
                    seen[victim.workload.id] = victim
        return sorted(seen.values(), key=lambda v: (v.devices, v.workload.running_pods, v.workload.id))

    def solve(self, level: int, domain: int, lowest: int) -> _Found | None:
        """The cheapest victim set that lets `domain` host the preemptor (and meets quotas), trying
        priority thresholds from `lowest` up: the first that works bounds the victims' priority."""
        span = self.tree.levels[level][domain]
        need = self.shape.slots - self.caps[level][domain]
        for priority in self.priorities:
            if priority < lowest:
                continue
            members = self.members(level, domain, priority)
            members += self.required_members(priority, members)
            local = [
                {n: m for n, m in victim.held.items() if span.first_node <= n < span.end_node}
                for victim in members
            ]
            if len(members) <= self.exact_limit:
                chosen = self.exhaustive(members, local, need)
                exact = True
            else:
                chosen = self.greedy(members, local, need)
                if chosen is not None and not self.rules.allows(chosen):
                    chosen = self.quota_victims(chosen)
                exact = False
                self.exact = False
            if chosen is not None:
                return _Found(self.cost_key(chosen), tuple(chosen), exact)
        return None

    def required_members(self, priority: int, already: Sequence[Victim]) -> list[Victim]:
        """Candidates that quotas may require beyond the domain's (own partitions, for a tenant that must
        get back within its share or free idle capacity), of priority up to `priority`."""
        if self.rules.needs_nothing:
            return []
        ids = {v.workload.id for v in already}
        return sorted(
            (
                v
                for v in self.candidates.values()
                if v.tenant == self.rules.tenant
                and v.workload.priority <= priority
                and v.workload.id not in ids
            ),
            key=lambda v: (v.devices, v.workload.running_pods, v.workload.id),
        )

    def cost_key(self, victims: Sequence[Victim]) -> tuple[int, int, int, int, float, tuple[str, ...]]:
        return (
            max((v.workload.priority for v in victims), default=LOWEST_PRIORITY),
            sum(v.devices for v in victims),
            len(victims),
            sum(v.workload.running_pods for v in victims),
            -min((v.workload.created for v in victims), default=0.0),
            tuple(sorted(v.workload.id for v in victims)),
        )

    def exhaustive(
        self, members: Sequence[Victim], local: Sequence[Mapping[int, int]], need: int
    ) -> list[Victim] | None:
        """The cheapest subset of `members` whose release frees `need` slots in the domain and meets the
        quota rules (branch and bound: a partial set's cost bounds every extension, and a set that cannot
        succeed even with every remaining member is abandoned)."""
        rules = self.rules
        count = len(members)
        suffix: list[dict[int, int]] = [{} for _ in range(count + 1)]
        own_left = [0] * (count + 1)
        total_left = [0] * (count + 1)
        for i in range(count - 1, -1, -1):
            merged = dict(suffix[i + 1])
            for node, mask in local[i].items():
                merged[node] = merged.get(node, 0) | mask
            suffix[i] = merged
            npus = members[i].workload.npus
            own_left[i] = own_left[i + 1] + (npus if members[i].tenant == rules.tenant else 0)
            total_left[i] = total_left[i + 1] + npus
        best: list[tuple[tuple[int, int, int, float, tuple[str, ...]], list[Victim]]] = []

        def key(chosen: list[Victim]) -> tuple[int, int, int, float, tuple[str, ...]]:
            full = self.cost_key(chosen)
            return full[1], full[2], full[3], full[4], full[5]

        def visit(i: int, chosen: list[Victim], masks: dict[int, int], own: int, total: int) -> None:
            if best and key(chosen) >= best[0][0]:
                return
            if self.gain(masks) >= need and own >= rules.required_own and total >= rules.required_total:
                best[:] = [(key(chosen), list(chosen))]
                return
            if i == count:
                return
            if own + own_left[i] < rules.required_own or total + total_left[i] < rules.required_total:
                return
            relaxed = dict(masks)
            for node, mask in suffix[i].items():
                relaxed[node] = relaxed.get(node, 0) | mask
            if self.gain(relaxed) < need:
                return
            victim = members[i]
            if self.rules.within_budget(_charges(chosen), victim):
                grown = dict(masks)
                for node, mask in local[i].items():
                    grown[node] = grown.get(node, 0) | mask
                npus = victim.workload.npus
                chosen.append(victim)
                visit(
                    i + 1, chosen, grown, own + (npus if victim.tenant == rules.tenant else 0), total + npus
                )
                chosen.pop()
            visit(i + 1, chosen, masks, own, total)

        visit(0, [], {}, 0, 0)
        return best[0][1] if best else None

    def greedy(
        self, members: Sequence[Victim], local: Sequence[Mapping[int, int]], need: int
    ) -> list[Victim] | None:
        """Units that free the most slots per device first (each candidate alone, and the candidates
        that live only on one node together), until the domain hosts every slot; then each victim not
        needed is dropped, the most costly first."""
        caps0 = self.caps[0]
        units: list[tuple[tuple[float, int, int, str], list[int]]] = []
        alone_on: dict[int, list[int]] = {}
        for i, victim in enumerate(members):
            gain = self.gain(local[i])
            score = (-gain / max(victim.devices, 1), victim.devices, victim.workload.running_pods, "")
            units.append((score, [i]))
            if len(local[i]) == 1:
                (node,) = local[i]
                alone_on.setdefault(node, []).append(i)
        for node, group in alone_on.items():
            if len(group) > 1:
                mask = 0
                devices = 0
                for i in group:
                    mask |= local[i][node]
                    devices += members[i].devices
                gain = self.node_cap(node, mask) - caps0[node]
                units.append(((-gain / max(devices, 1), devices, 0, f"{node}"), group))
        units.sort(key=lambda unit: unit[0])
        chosen: list[int] = []
        taken: set[int] = set()
        charges: dict[str, tuple[int, int]] = {}
        masks: dict[int, int] = {}
        gain = 0
        for _, group in units:
            for i in group:
                if i in taken or not self.rules.within_budget(charges, members[i]):
                    continue
                taken.add(i)
                chosen.append(i)
                total, largest = charges.get(members[i].tenant, (0, 0))
                charges[members[i].tenant] = (
                    total + members[i].workload.npus,
                    max(largest, members[i].workload.npus),
                )
                for node, mask in local[i].items():
                    before = self.node_cap(node, masks.get(node, 0)) - caps0[node] if node in masks else 0
                    masks[node] = masks.get(node, 0) | mask
                    gain += self.node_cap(node, masks[node]) - caps0[node] - before
            if gain >= need:
                break
        if gain < need:
            return None
        # drop what is not needed, the most costly first
        for i in sorted(chosen, key=lambda j: (-members[j].workload.priority, -members[j].devices)):
            rest = [j for j in chosen if j != i]
            nodes = local[i].keys()
            trial = dict(masks)
            for node in nodes:
                trial[node] = 0
                for j in rest:
                    trial[node] |= local[j].get(node, 0)
            delta = sum(
                (self.node_cap(node, trial[node]) - self.node_cap(node, masks[node])) for node in nodes
            )
            if gain + delta >= need:
                chosen = rest
                masks = trial
                gain += delta
        return [members[i] for i in chosen]

    def quota_victims(self, chosen: Sequence[Victim]) -> list[Victim] | None:
        """`chosen` plus what quotas still require: the preemptor's own partitions (and, for a borrower,
        any allowed), lowest priority and youngest first; None if even all of them do not suffice."""
        out = list(chosen)
        if self.rules.allows(out):
            return out
        ids = {v.workload.id for v in out}
        order = victim_order(
            v.workload
            for v in self.candidates.values()
            if v.workload.id not in ids and (v.tenant == self.rules.tenant or self.rules.required_own == 0)
        )
        for workload in order:
            victim = self.candidates[workload.id]
            if not self.rules.within_budget(_charges(out), victim):
                continue
            out.append(victim)
            if self.rules.allows(out):
                return out
        return None

    def verify(self, found: _Found, required: Sequence[Victim] = ()) -> Preemption | None:
        """The allocator's own plan with the victims released; victims whose devices it does not use are
        dropped (quota-required ones stay)."""
        allocator = self.allocator
        ids = [v.workload.id for v in found.victims]
        with allocator.released(ids):
            plan = allocator.plan_partition(self.request)
        if not isinstance(plan, result.Placement):
            return None
        tree = self.tree
        held = dict(plan.held)  # node name -> devices the preemptor holds
        keep_anyway = {v.workload.id for v in required}

        def used(victim: Victim) -> bool:
            for node_index, mask in victim.held.items():
                node = tree.nodes[node_index]
                devices = held.get(node.name)
                if devices:
                    index = tree.device_index[node.name]
                    if any(mask >> index[device] & 1 for device in devices):
                        return True
            return False

        victims = [v for v in found.victims if v.workload.id in keep_anyway or used(v)]
        if not self.rules.allows(victims):
            victims = list(found.victims)
        key = self.cost_key(victims)
        cost = Cost(key[0], key[1], key[2], key[3], self.tier_index[plan.tier_span], key[4])
        ordered = victim_order(v.workload for v in victims)
        return Preemption(
            victims=tuple(w.id for w in ordered),
            placement=plan,
            cost=cost,
            reclaimed=tuple(w.id for w in ordered if self.candidates[w.id].tenant != self.rules.tenant),
            exact=self.exact and found.exact,
        )
