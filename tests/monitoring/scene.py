"""A realistic monitored fleet: two CloudMatrix 384 SuperPoDs, partitions placed by the real allocator, faults.

What is real: the topology trees (`superpod.topology.tree.build` over the simulator's node layout), the
allocator's placements and health, the snapshot (`superpod.metrics.snapshot.capture` over a Fleet-shaped
object), and the NPU-Exporter exposition (`superpod_sandbox.sim.telemetry`, integrating the simulator's traffic model
for the pods of each partition). What stands in for the operator: partition statuses are written here (Bound
when its pods "run", Degraded when it holds an unhealthy device), and the timings fed to the histograms are
this module's own work measured with a clock: a placement decision (`plan_partition`), a partition reconcile
(plan, commit, status), a SuperPod reconcile (`capacity()`), and, for the webhook, finding a pod's slot.

Mutations and scrapes may come from different threads (the stage serves on its own loop), so both go through
`World.lock`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from superpod import metrics, placement
from superpod.metrics import instruments, snapshot
from superpod.placement import quota
from superpod.topology import inventory
from superpod.topology import tree as topology_tree
from superpod_sandbox.sim import hardware, layout, telemetry, traffic

HARDWARE = hardware.describe("cloudmatrix-384")
SUPERPODS = (("cm384-a", 0), ("cm384-b", 1))  # name, SuperPodID
FULL = {"cm384-a": 48, "cm384-b": 16}  # nodes: the picture
HALF = {"cm384-a": 24, "cm384-b": 12}  # nodes: the tests (fewer series for a machine shared by many)
RESOURCE = HARDWARE.resource


@dataclasses.dataclass(frozen=True)
class Ask:
    """A partition the scene creates: where, what, whether its pods run, and which training job it is."""

    superpod: str
    namespace: str
    name: str
    request: placement.PlacementRequest
    running: bool = True
    job: str = ""  # partitions of one job talk to each other (default: the partition alone)


def _ask(superpod: str, key: str, npus: int, per_pod: int, **extra: Any) -> Ask:
    namespace, _, name = key.partition("/")
    block = extra.pop("block", None)
    return Ask(superpod, namespace, name, placement.PlacementRequest(npus, block, None, per_pod), **extra)


ASKS: tuple[Ask, ...] = (
    _ask("cm384-a", "team-a/llm-pretrain", 128, 16, block=64, job="team-a/pretrain"),
    _ask("cm384-b", "team-a/llm-pretrain-b", 64, 16, job="team-a/pretrain"),
    _ask("cm384-a", "team-a/moe-expert", 64, 16),
    _ask("cm384-a", "team-b/finetune", 32, 8, running=False),
    _ask("cm384-a", "team-b/eval", 8, 4),
    _ask("cm384-a", "team-c/rl", 32, 16),
    _ask("cm384-a", "team-c/inference", 2, 2),
    _ask("cm384-a", "team-c/huge", 512, 16),
    _ask("cm384-b", "team-b/small", 24, 8),
    _ask("cm384-b", "team-b/wide", 160, 16, block=160),
)

# cm384-a is shared by quota (tenant = namespace): team-a borrows beyond its share, team-c is starved (its huge
# partition can never be placed while it uses less than its share)
QUOTAS = {"cm384-a": (quota.Quota("team-a", 160), quota.Quota("team-b", 64), quota.Quota("team-c", 128))}


@dataclasses.dataclass(frozen=True)
class Problem:
    node: str
    reason: str
    message: str = ""


@dataclasses.dataclass
class SuperPodState:
    """Shaped like the controller's SuperPodState, as far as `snapshot.capture` reads it."""

    name: str
    layout: layout.Layout
    allocator: placement.Allocator
    observed: dict[str, inventory.ObservedNode]
    problems: dict[str, Problem] = dataclasses.field(default_factory=dict)
    quota_usage: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def profile(self) -> Any:
        return HARDWARE.profile


class World:
    """The fleet (a `snapshot.FleetView`) and the simulated NPU-Exporters of its SuperPoDs."""

    def __init__(self, nodes: dict[str, int] = HALF) -> None:
        self.lock = threading.RLock()
        self.superpods: dict[str, SuperPodState] = {}
        self.partitions: dict[str, dict[str, Any]] = {}
        self.asks: dict[str, Ask] = {}
        self.network_faults: set[tuple[str, str]] = set()
        self.bound: set[str] = set()  # partitions whose pods went through the webhook
        for name, superpod_id in SUPERPODS:
            fleet = layout.build(HARDWARE, superpod_id, nodes[name])
            observed = {
                node.name: inventory.ObservedNode(
                    name=node.name,
                    superpod_index=superpod_id,
                    rack=node.rack_id,
                    server_index=node.index,
                    devices=node.devices,
                )
                for node in fleet.nodes
            }
            tree = topology_tree.build(HARDWARE.profile, observed.values())
            self.superpods[name] = SuperPodState(name, fleet, placement.Allocator(tree), observed)
        self.telemetry = {name: telemetry.Telemetry(state.layout) for name, state in self.superpods.items()}
        self._last_advance = dict.fromkeys(self.superpods, time.monotonic())
        self._expositions: dict[str, tuple[float, str]] = {}
        self._exposition_lock = threading.Lock()

    # ---- the operator's side -------------------------------------------------------------------------

    def create(self, ask: Ask) -> dict[str, Any]:
        """Place a partition the way the operator does, timing the decision and the reconcile."""
        with self.lock:
            key = f"{ask.namespace}/{ask.name}"
            started = time.perf_counter()
            allocator = self.superpods[ask.superpod].allocator
            decision = allocator.plan_partition(ask.request)
            metrics.observe_placement(time.perf_counter() - started)
            if isinstance(decision, placement.Placement):
                allocator.commit(key, decision)
                status = {"phase": "Bound" if ask.running else "Allocated", "reason": "Placed"}
            else:
                status = {"phase": "Pending", "reason": decision.reason.value, "message": decision.message}
            self.asks[key] = ask
            if ask.superpod in QUOTAS:
                status["quota"] = ask.namespace
            self.partitions[key] = {
                "metadata": {"namespace": ask.namespace, "name": ask.name},
                "spec": {"superPod": ask.superpod, "npus": ask.request.npus},
                "status": status,
            }
            self._count_quotas(ask.superpod)
            metrics.observe_reconcile("partition", time.perf_counter() - started)
            return self.partitions[key]

    def _count_quotas(self, superpod: str) -> None:
        """status.quotas of a SuperPod with quotas, as the operator derives it (the ledger of placed ones)."""
        if superpod not in QUOTAS:
            return
        state = self.superpods[superpod]
        quotas = quota.Quotas(QUOTAS[superpod], state.allocator.capacity().total)
        placed = [
            quota.Workload(key, ask.request.npus, ask.namespace)
            for key, ask in self.asks.items()
            if ask.superpod == superpod and state.allocator.placement_of(key) is not None
        ]
        ledger = quota.Ledger(quotas, placed)
        state.quota_usage = [
            {"name": u.tenant, "nominal": u.nominal, "used": u.used, "borrowed": u.borrowed}
            for u in ledger.usage()
            if u.tenant
        ]
        instruments.count_preemptions(superpod)  # the operator counts from 0 on a SuperPod with quotas

    def bind_pods(self) -> None:
        """What the webhook does per pod: find its slot (timed)."""
        with self.lock:
            for key, ask in self.asks.items():
                decision = self.superpods[ask.superpod].allocator.placement_of(key)
                if decision is None or not ask.running or key in self.bound:
                    continue
                self.bound.add(key)
                for slot in decision.slots:
                    started = time.perf_counter()
                    patch = [
                        {"op": "add", "path": "/spec/nodeName", "value": slot.node},
                        {
                            "op": "add",
                            "path": "/metadata/annotations",
                            "value": {RESOURCE: ",".join(slot.devices)},
                        },
                    ]
                    assert patch
                    metrics.observe_webhook(time.perf_counter() - started)

    def refresh_superpods(self) -> None:
        with self.lock:
            for state in self.superpods.values():
                started = time.perf_counter()
                state.allocator.capacity()
                metrics.observe_reconcile("superpod", time.perf_counter() - started)

    def fail_device(self, superpod: str, node: str, device: str, *, network: bool = False) -> None:
        """The device plugin lists a device Unhealthy (or NetworkUnhealthy); partitions holding it degrade."""
        with self.lock:
            state = self.superpods[superpod]
            observed = state.observed[node]
            state.observed[node] = dataclasses.replace(observed, unhealthy=observed.unhealthy | {device})
            state.allocator.set_health(node, state.observed[node].unhealthy)
            if network:
                self.network_faults.add((node, device))
            self._derive_phases()

    def switch_fault(self, superpod: str, node: str) -> None:
        """The node's SwitchInfoCfg reports a UB switch fault."""
        with self.lock:
            self.superpods[superpod].problems[node] = Problem(node, "UBSwitchFault", "UB switch fault")

    def _derive_phases(self) -> None:
        for key, ask in self.asks.items():
            state = self.superpods[ask.superpod]
            decision = state.allocator.placement_of(key)
            if decision is None:
                continue
            failed = any(
                device in state.observed[node].unhealthy
                for node, devices in decision.held
                for device in devices
            )
            phase = "Degraded" if failed else ("Bound" if ask.running else "Allocated")
            self.partitions[key]["status"]["phase"] = phase

    def capture(self) -> snapshot.FleetSnapshot:
        with self.lock:
            return snapshot.capture(self)

    # ---- the NPU-Exporter's side ---------------------------------------------------------------------

    def _members(self) -> dict[str, list[traffic.Member]]:
        jobs: dict[str, list[traffic.Member]] = {}
        for key, ask in self.asks.items():
            state = self.superpods[ask.superpod]
            decision = state.allocator.placement_of(key)
            if decision is None or not ask.running:
                continue
            for slot in decision.slots:
                pod = f"{ask.name}-{slot.rank // max(1, len(slot.devices))}"
                for device in slot.devices:
                    jobs.setdefault(ask.job or key, []).append(
                        traffic.Member(
                            slot.node,
                            device,
                            state.layout.fleet,
                            f"{ask.namespace}/{pod}",
                            ask.namespace,
                            pod,
                            "trainer",
                        )
                    )
        return jobs

    def _status(
        self, state: SuperPodState, members: dict[tuple[str, str], traffic.Member]
    ) -> dict[tuple[str, str], telemetry.DeviceStatus]:
        switch_nodes = {node for node, p in state.problems.items() if p.reason == "UBSwitchFault"}
        status = {}
        for node in state.layout.nodes:
            unhealthy = state.observed[node.name].unhealthy
            for device in node.devices:
                key = (node.name, device)
                member = members.get(key)
                network = key in self.network_faults
                status[key] = telemetry.DeviceStatus(
                    healthy=device not in unhealthy or network,
                    network_ok=not network,
                    switch_fault=node.name in switch_nodes,
                    namespace=member.namespace if member else "",
                    pod_name=member.pod_name if member else "",
                    container_name=member.container if member else "",
                )
        return status

    def exposition(self, superpod: str, max_age: float = 2.0) -> str:
        """NPU-Exporter series of one SuperPoD's devices, counters advanced to now.

        Like NPU-Exporter, which collects in the background and serves its cache, the text is reused for
        `max_age` seconds: producing it for 768 devices takes a few hundred milliseconds here, so it is made
        outside `lock` (only the reading of rates and health holds it) and the operator's scrapes do not wait.
        """
        with self._exposition_lock:
            now = time.monotonic()
            cached = self._expositions.get(superpod)
            if cached is not None and now - cached[0] < max_age:
                return cached[1]
            rates, status = self._observe(superpod)
            seconds, self._last_advance[superpod] = now - self._last_advance[superpod], now
            self.telemetry[superpod].advance(seconds, rates, status)
            text = self.telemetry[superpod].exposition()
            self._expositions[superpod] = (now, text)
            return text

    def _observe(
        self, superpod: str
    ) -> tuple[dict[tuple[str, str], traffic.Rates], dict[tuple[str, str], telemetry.DeviceStatus]]:
        with self.lock:
            jobs = self._members()
            members = {(m.node, m.device): m for group in jobs.values() for m in group}
            unhealthy = {
                (node, device)
                for state in self.superpods.values()
                for node, seen in state.observed.items()
                for device in seen.unhealthy
                if (node, device) not in self.network_faults
            }
            rates = traffic.rates(
                jobs,
                traffic.Bandwidths.of(HARDWARE.profile),
                has_superpod=True,
                silent=frozenset(unhealthy),
                no_roce=frozenset(self.network_faults),
            )
            return rates, self._status(self.superpods[superpod], members)


def fault(world: World) -> None:
    """Three faults: a chip of team-c/rl, a RoCE port of team-a/llm-pretrain, a UB switch under moe-expert."""
    allocator = world.superpods["cm384-a"].allocator
    pretrain = allocator.placement_of("team-a/llm-pretrain")
    rl = allocator.placement_of("team-c/rl")
    moe = allocator.placement_of("team-a/moe-expert")
    assert pretrain is not None and rl is not None and moe is not None
    world.fail_device("cm384-a", rl.slots[0].node, rl.slots[0].devices[3])
    world.fail_device("cm384-a", pretrain.slots[-1].node, pretrain.slots[-1].devices[5], network=True)
    world.switch_fault("cm384-a", moe.slots[0].node)


def populated(nodes: dict[str, int] = HALF) -> World:
    """The scene the tests use: every partition created, pods bound, then the faults."""
    world = World(nodes)
    for ask in ASKS:
        world.create(ask)
    world.bind_pods()
    world.refresh_superpods()
    fault(world)
    return world
