"""The operator's memory of every SuperPod, and the one object the handlers, the webhook and the metrics use.

Three parts, along the seam of a cache, a snapshot and a scheduler:

- `clustermirror.ClusterMirror`: the watched objects, raw (SuperPods, Nodes, device-info and NodeD ConfigMaps,
  partitions), with one `synced`;
- `superpodmodel`: per SuperPod, spec -> inventory -> tree -> allocator, a pure function of the mirror's maps;
- `partitions.Partitions`: the decisions on partitions (place, refresh, release, retry the queue) and their
  status writes.

The fleet wires them: it listens to the mirror, keeps a `superpodstate.SuperPodState` per SuperPod (its model, its
lock and queue), rebuilds a SuperPod's model when its spec or its nodes change, and restores into it every
allocation partition statuses hold, before anything is placed: at start, after a rebuild of the tree, and
whenever another replica wrote one. It writes the SuperPods' status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any

import kopf

from superpod.api import common, views
from superpod.api import superpod as api_superpod
from superpod.cluster import client, deviceinfo, inventory, writer
from superpod.controller import (
    audit,
    clustermirror,
    conflicts,
    partitionmap,
    partitionqueue,
    partitions,
    partitionwrite,
    queuepass,
    restore,
    scheduler,
    superpodmodel,
    superpodstate,
    superpodstatus,
    tenants,
)
from superpod.controller import status as derive

JSON = common.JSON
SuperPodState = superpodstate.SuperPodState
logger = logging.getLogger(__name__)


class Fleet:
    """Every SuperPod and partition the operator serves."""

    def __init__(
        self,
        api: client.KubeClient,
        *,
        namespace: str | None = None,
        clock: Callable[[], str] = writer.now,
        configmap_selector: str = deviceinfo.CONSUMER_SELECTOR,
    ) -> None:
        self.api = api
        self.clock = clock
        self.superpods: dict[str, SuperPodState] = {}
        # the SuperPods whose inventory, tree and allocator this replica builds (None: every SuperPod, one
        # replica); with Leases, the ones it owns: `reload` adds a SuperPod it takes, `unmodel` drops one it
        # gave up, so a replica's memory follows its share, not the cluster (docs/operator.md, "Replicas")
        self.modelled: set[str] | None = None
        self.mirror = clustermirror.ClusterMirror(
            api, self, namespace=namespace, configmap_selector=configmap_selector
        )
        self.statuses = partitionwrite.StatusWriter(api, self.mirror, clock)
        self.writer = self.statuses.writer
        self.reconciler = partitions.Partitions(self.superpods, self.mirror.partitions, self.statuses)
        self.restorer = restore.Restorer(self.reconciler)
        self.audit = audit.Audit(self.reconciler)
        self.scheduler = scheduler.Scheduler(self.reconciler)
        self.scheduler.facts.listeners.append(self.priority_classes_changed)
        # told of every partition change (None: the partition is gone)
        self.partition_listeners: list[Callable[[str, JSON | None], None]] = []
        # told of every Node change, heartbeats included: (name, old, new)
        self.node_listeners: list[Callable[[str, JSON | None, JSON | None], None]] = []
        # told of every SuperPod spec read: (name, spec or None when gone or unusable, device resource)
        self.superpod_listeners: list[Callable[[str, api_superpod.SuperPodSpec | None, str], None]] = []
        # told of a partition's deletion by kopf's delete handler (active replica): each returns when to be told
        # again (the partition still waits for its pods and no loop follows it), or None
        self.deletion_listeners: list[Callable[[JSON], Coroutine[Any, Any, float | None]]] = []
        # awaited at start once everything is listed and before any allocation is restored (the admission
        # module's mirror of partition pods: a conflict's running pods keep what they use from the start)
        self.before_restore: list[Callable[[], Coroutine[Any, Any, None]]] = []
        # run beside each SuperPod's daemon, so only on the active replica: (SuperPod name, stopped)
        self.superpod_workers: list[Callable[[str, kopf.DaemonStopped], Coroutine[Any, Any, None]]] = []

    @property
    def partitions(self) -> partitionmap.PartitionMap:
        """Every partition (`namespace/name` -> its newest copy), indexed (`partitionmap`)."""
        return self.mirror.partitions

    @property
    def inventory_debounce(self) -> float:
        """Seconds over which Node and device-info changes are coalesced into one rebuild."""
        return self.mirror.debounce

    @inventory_debounce.setter
    def inventory_debounce(self, seconds: float) -> None:
        self.mirror.debounce = seconds

    # ---- start and stop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Mirror everything, build every SuperPod and restore every allocation, then follow changes."""
        await self.scheduler.facts.start()
        await self.mirror.list_all()
        for hook in self.before_restore:
            await hook()
        for name, body in self.mirror.superpods.items():
            self._tell_spec(self._add(name, body))
        self._overlaps()
        grouped = inventory.by_superpod_id(self.mirror.nodes)
        for state in self.superpods.values():
            self._rebuild(state, grouped)
        # the claim written first is restored first, so it keeps devices a later claim also names
        for key, obj in sorted(
            self.mirror.partitions.items(), key=lambda item: conflicts.claim_order(item[1])
        ):
            self.restorer.adopt(key, obj)
        self.mirror.watch()

    async def stop(self) -> None:
        await self.mirror.stop()
        await self.scheduler.facts.stop()

    # ---- what the mirror tells (clustermirror.Listener) --------------------------------------------------

    def superpod_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            gone = self.superpods.pop(name, None)
            self.audit.forget(name)
            if gone is not None:
                gone.poke()
            for listener in self.superpod_listeners:
                listener(name, None, "")
            grouped = inventory.by_superpod_id(self.mirror.nodes)
            for other in self._overlaps():
                self._rebuild(other, grouped)
                other.poke()
            return
        respecified = old is None or old.get("spec") != new.get("spec")
        state = self.superpods.get(name)
        if state is None:
            state = self._add(name, new)
            self.reconciler.queue_unplaced(state)
        elif respecified:
            state.model = superpodmodel.configure(views.SuperPod(new).spec, state.model)
        state.body = new
        if respecified:
            self._tell_spec(state)
            moved = self._overlaps()
            grouped = inventory.by_superpod_id(self.mirror.nodes)
            self._rebuild(state, grouped)
            for other in moved:
                if other is not state:
                    self._rebuild(other, grouped)
                    other.poke()
        state.poke()

    def node_changed(self, name: str, old: JSON | None, new: JSON | None) -> None:
        for listener in self.node_listeners:
            listener(name, old, new)

    def partition_changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            if old is not None:
                self.reconciler.forget(key, old)
            for listener in self.partition_listeners:
                listener(key, None)
            return
        for listener in self.partition_listeners:
            listener(key, new)
        if not self.mirror.synced.is_set():
            return
        self.restorer.adopt(key, new)
        state = self.superpods.get(views.Partition(new).superpod)
        unbound = old is not None and views.Partition(old).bound_pods - views.Partition(new).bound_pods
        spec_edited = old is not None and old.get("spec") != new.get("spec")
        if state is not None and (unbound or spec_edited):
            # a pod left its slot: a slot kept on failed devices for that pod may move now; or the spec's
            # one mutable field, repairPolicy, changed (kopf's diff base sees no spec change: see kopfkit)
            state.health_dirty = True
            state.poke()

    def priority_classes_changed(self) -> None:
        """A PriorityClass appeared, changed or went: a partition waiting for its class may be placeable now, a
        queue's order and who may preempt whom may have changed. Every SuperPod's pass runs again."""
        for state in self.superpods.values():
            state.poke()

    def reload(self, names: Collection[str], fresh: list[JSON]) -> None:
        """This replica has just taken the SuperPods `names`: rebuild their memory from `fresh` (a new list of
        every partition), so a write of their previous owner that the watch has not brought yet is not missed."""
        for obj in map(clustermirror.lean, fresh):
            key = views.Partition(obj).key
            self.mirror.partitions[key] = views.newest(self.mirror.partitions.get(key), obj) or obj
        grouped = inventory.by_superpod_id(self.mirror.nodes)
        for name in names:
            state = self.superpods.get(name)
            if state is None:
                continue
            if self.modelled is not None:
                self.modelled.add(name)
            state.model = superpodmodel.configure(views.SuperPod(state.body).spec)
            state.pending = partitionqueue.PendingQueue()
            state.conflicts = {}  # found again from the fresh list, with the new owner's quarantine
            state.moving = {}  # moves in flight are found again in the statuses (podmoves)
            self._rebuild(state, grouped)
            self.reconciler.queue_unplaced(state)
            state.poke()

    def models(self, name: str) -> bool:
        """Whether this replica builds the SuperPod's inventory and allocator (it owns it, or runs alone)."""
        return self.modelled is None or name in self.modelled

    def unmodel(self, name: str) -> None:
        """This replica gave the SuperPod up: its inventory, tree and allocator go, and what only its owner
        keeps (conflicts, moves, preemptions, the last admission pass). Its spec stays (admission reads the
        profile), and so does what every replica keeps: the partitions, and the queue of unplaced ones."""
        if self.modelled is None:
            return
        self.modelled.discard(name)
        state = self.superpods.get(name)
        if state is None:
            return
        state.model = superpodmodel.configure(views.SuperPod(state.body).spec)
        state.conflicts = {}
        state.moving = {}
        state.preempting = {}
        state.tenancy = None
        state.health_dirty = False

    def inventory_changed(self) -> None:
        """Coalesced: one pass over the SuperPods for a burst of Node and ConfigMap changes."""
        self._overlaps()
        grouped = inventory.by_superpod_id(self.mirror.nodes)
        for state in self.superpods.values():
            self._rebuild(state, grouped)
            state.poke()

    # ---- SuperPods ---------------------------------------------------------------------------------------

    def _add(self, name: str, body: JSON) -> SuperPodState:
        state = self.superpods[name] = SuperPodState(
            name=name, body=body, model=superpodmodel.configure(views.SuperPod(body).spec)
        )
        return state

    def _tell_spec(self, state: SuperPodState) -> None:
        for listener in self.superpod_listeners:
            listener(state.name, state.model.spec, state.model.resource)

    def _rebuild(self, state: SuperPodState, grouped: Mapping[str, Mapping[str, JSON]]) -> None:
        """Bring the SuperPod's model up to date with the mirror; restore what partitions hold into a new tree.
        `grouped`: the mirror's nodes by SuperPoD id (`inventory.by_superpod_id`), made once for a pass over
        many SuperPods, so that each looks for members among its candidates, not among all 65,536 nodes of a
        SuperCluster (a failover rebuilt 32 SuperPods)."""
        if state.model.spec is None or not self.models(state.name):
            return
        before = state.model.allocator
        nodes = inventory.member_candidates(state.model.spec, self.mirror.nodes, grouped)
        if state.overlap is not None and state.overlap.ceded:  # an older SuperPod keeps them
            nodes = {name: node for name, node in nodes.items() if name not in state.overlap.ceded}
        state.model = superpodmodel.build(state.model, nodes, self.mirror.deviceinfo, self.mirror.node_health)
        state.health_dirty = True
        self.restorer.rebuilt(state, before)
        after = state.model.allocator
        if after is None or after is before:
            return
        held = before.partitions if before is not None else {}
        partitions = self.mirror.partitions
        mine = [(key, partitions[key]) for key in partitions.of(state.name)]
        for key, obj in sorted(mine, key=lambda item: conflicts.claim_order(item[1])):
            if key not in held:
                self.restorer.adopt(key, obj)

    def _overlaps(self) -> list[SuperPodState]:
        """Find SuperPods selecting the same nodes; returns the ones whose ceded nodes changed."""
        members = {}
        for name, state in self.superpods.items():
            spec = state.model.spec
            if spec is None:
                continue
            created = str((state.body.get("metadata") or {}).get("creationTimestamp") or "")
            mine = frozenset(n for n, node in self.mirror.nodes.items() if inventory.is_member(node, spec))
            members[name] = (created, mine)
        found = conflicts.overlaps(members)
        moved = []
        for name, state in self.superpods.items():
            overlap = found.get(name)
            before = state.overlap.ceded if state.overlap is not None else frozenset()
            if (overlap.ceded if overlap is not None else frozenset()) != before:
                moved.append(state)
            state.overlap = overlap
        return moved

    def superpod_status(self, state: SuperPodState) -> JSON:
        model = state.model
        return superpodstatus.derive(
            capacity=model.allocator.capacity() if model.allocator is not None else None,
            resource_name=model.resource,
            nodes=model.node_count,
            ready_nodes=model.ready_nodes,
            problems=model.problems.values(),
            previous=views.SuperPod(state.body).status,
            generation=views.SuperPod(state.body).generation,
            now=self.clock(),
            error=model.error,
            overlap=state.overlap.message(state.name) if state.overlap is not None else None,
            quotas=queuepass.quota_status(state.tenancy) if tenants.quota_specs(model.spec) else None,
            quota_problem=(
                tenants.quota_problem(state.tenancy.ledger.quotas) if state.tenancy is not None else None
            ),
        )

    async def write_superpod_status(self, state: SuperPodState) -> bool:
        desired = self.superpod_status(state)
        if not derive.changed(state.body.get("status"), desired):
            return False
        written = await self.writer.superpod_status(state.name, desired)
        if written is None:
            return False
        state.body = written
        for node in sorted(set(state.model.problems) - state.reported):
            problem = state.model.problems[node]
            await self.writer.event(written, reason=problem.reason, message=problem.message, warning=True)
        state.reported = set(state.model.problems)
        return True

    # ---- partitions (the handlers' and the daemon's calls) ----------------------------------------------

    async def place(self, obj: JSON) -> JSON:
        return await self.scheduler.place(obj)

    async def release(self, obj: JSON) -> None:
        await self.reconciler.release(obj)

    async def deleted(self, obj: JSON) -> float | None:
        """A partition is being deleted: the in-use protection (a deletion listener) releases it once its pods
        are gone; without one its devices are released now. Seconds until it is to be looked at again."""
        self.mirror.remember(obj)  # kopf's copy may be ahead of the mirror's: the deletion is to be seen
        if not self.deletion_listeners:
            await self.release(obj)
            return None
        delays = [await listener(obj) for listener in self.deletion_listeners]
        return min((delay for delay in delays if delay is not None), default=None)

    async def refresh_placed(self, state: SuperPodState) -> None:
        await self.reconciler.refresh_placed(state)

    async def retry_pending(self, state: SuperPodState) -> int:
        return await self.scheduler.retry_pending(state)

    async def resolve_conflicts(self, state: SuperPodState) -> None:
        await self.restorer.resolve(state)

    async def audit_books(self, state: SuperPodState) -> int:
        return await self.audit.run(state)
