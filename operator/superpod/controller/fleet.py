"""The operator's memory of every SuperPod: inventory, allocator and pending partitions.

Allocations live only in partition status. The fleet mirrors SuperPods, Nodes, device-info ConfigMaps and
partitions with reflectors; every allocation it sees in a partition's status is restored into that SuperPod's
allocator, so a standby replica (paused by kopf peering) holds the same picture as the active one and a restarted
operator rebuilds it before it places anything. Only the active replica decides: placement runs in kopf handlers
and in a kopf daemon per SuperPod, and kopf stops both while the operator is paused.

Per SuperPod one asyncio lock orders decisions: plan and commit in memory, with no API call under it; the status
is written after the lock is released, so placements on one SuperPod write concurrently, while a lock per
partition keeps one partition's decisions and writes in order. Memory is updated before the write, so concurrent
requests never share a device; a refused write releases the devices and queues the partition again, a write
that may have landed (5xx, timeout) keeps them and the daemon writes them again; a crash between decision and
write loses nothing, because the decision was never persisted and is simply made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import kopf
import pydantic

from superpod import placement
from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client, deviceinfo, inventory, nodeinfo, reflector, writer
from superpod.controller import ranktables
from superpod.controller import status as derive
from superpod.metrics import instruments
from superpod.ranktable import versions
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles
from superpod.topology import tree as topology_tree

JSON = dict[str, Any]
logger = logging.getLogger(__name__)
RETRY_FIRST = 2.0  # seconds before a pending partition whose try raised is tried again; doubles each time
RETRY_MOST = 60.0


def partition_key(obj: JSON) -> str:
    metadata = obj["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"


@dataclasses.dataclass
class SuperPodState:
    """One SuperPod: its spec, the inventory observed for it and the allocator over it."""

    name: str
    body: JSON
    spec: api_superpod.SuperPodSpec | None = None
    profile: profiles.HardwareProfile | None = None
    error: str | None = None  # why the spec cannot be used
    observed: dict[str, topology_inventory.ObservedNode] = dataclasses.field(default_factory=dict)
    problems: dict[str, inventory.NodeProblem] = dataclasses.field(default_factory=dict)
    allocator: placement.Allocator | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    pending: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # key -> (created, key)
    shape: tuple[tuple[str, tuple[str, ...]], ...] = ()  # node names and devices the tree was built from
    reported: set[str] = dataclasses.field(default_factory=set)  # nodes whose problem has had its Event
    # placed partitions need a look: device health changed, a spec was edited or a status write failed
    health_dirty: bool = False
    # pending partitions whose last try raised: key -> (monotonic time of the next try, current delay)
    backoff: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    @property
    def resource(self) -> str:
        return self.profile.resource_name if self.profile else ""

    def poke(self) -> None:
        """Ask the SuperPod's daemon to retry pending partitions and refresh the status."""
        self.wake.set()


class Fleet:
    """Mirror of the cluster and the decisions made on it."""

    def __init__(self, api: client.KubeClient, *, namespace: str | None = None) -> None:
        self.api = api
        self.writer = writer.Writer(api)
        self.namespace = namespace
        self.superpods: dict[str, SuperPodState] = {}
        self.partitions: dict[str, JSON] = {}  # key -> latest partition object seen
        # told of every partition change (None: the partition is gone)
        self.partition_listeners: list[Callable[[str, JSON | None], None]] = []
        # told of every Node change, heartbeats included: (name, old, new)
        self.node_listeners: list[Callable[[str, JSON | None, JSON | None], None]] = []
        # told of every SuperPod spec read: (name, spec or None when gone or unusable, device resource)
        self.superpod_listeners: list[Callable[[str, api_superpod.SuperPodSpec | None, str], None]] = []
        # run beside each SuperPod's daemon, so only on the active replica: (SuperPod name, stopped)
        self.superpod_workers: list[Callable[[str, kopf.DaemonStopped], Coroutine[Any, Any, None]]] = []
        self._serials: dict[str, _Serial] = {}  # partition key -> its lock, while someone uses it
        self._nodes: dict[str, JSON] = {}
        self._configmaps: dict[str, JSON] = {}  # node name -> device-info ConfigMap
        self._deviceinfo_essences: dict[str, int] = {}  # node name -> hash of its ConfigMap's essence
        self._node_health: dict[
            str, nodeinfo.NodeHealth
        ] = {}  # node name -> NodeD's verdict, when NodeD runs
        self._reflectors: list[reflector.Reflector] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty_inventory: set[str] = set()
        self._inventory_scheduled = False
        self.inventory_debounce = 0.2

    # ---- start and stop ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Mirror everything, rebuild every allocation, then keep following changes."""
        partitions_path = client.resource_path(common.API_VERSION, api_partition.PLURAL, self.namespace)
        self._reflectors = [
            reflector.Reflector(self.api, writer.superpod_path(), self._on_superpod),
            reflector.Reflector(self.api, "/api/v1/nodes", self._on_node),
            reflector.Reflector(
                self.api,
                client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE),
                self._on_configmap,
            ),
            reflector.Reflector(
                self.api, client.resource_path("v1", "configmaps", nodeinfo.NAMESPACE), self._on_nodeinfo
            ),
            reflector.Reflector(self.api, partitions_path, self._on_partition),
        ]
        # the initial lists; callbacks only record until every mirror is synced, then the trees are built
        # and every allocation is restored, before the first event is served and anything is placed
        for mirror in self._reflectors:
            await mirror.relist()
        for name in list(self.superpods):
            self._rebuild(self.superpods[name])
        for key, obj in self.partitions.items():
            self._adopt(key, obj)
        self._tasks = [asyncio.create_task(mirror.run()) for mirror in self._reflectors]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- mirrors -------------------------------------------------------------------------------------

    def _on_superpod(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            state = self.superpods.pop(key, None)
            if state is not None:
                state.poke()
            for listener in self.superpod_listeners:
                listener(key, None, "")
            return
        state = self.superpods.get(key)
        if state is None:
            state = self.superpods[key] = SuperPodState(name=key, body=new)
            state.pending.update(self._orphans(key))
        old_spec = (old or {}).get("spec")
        state.body = new
        if old is None or old_spec != new.get("spec"):
            self._configure(state)
            for listener in self.superpod_listeners:
                listener(key, state.spec, state.resource)
            if self._reflectors and all(m.synced.is_set() for m in self._reflectors):
                self._rebuild(state)
        state.poke()

    def _on_node(self, key: str, old: JSON | None, new: JSON | None) -> None:
        for listener in self.node_listeners:
            listener(key, old, new)
        if new is None:
            self._nodes.pop(key, None)
        else:
            self._nodes[key] = new
        if old is not None and new is not None and _node_essence(old) == _node_essence(new):
            return  # a heartbeat: nothing the allocator cares about
        self._inventory_changed(key)

    def _on_configmap(self, key: str, old: JSON | None, new: JSON | None) -> None:
        node = deviceinfo.node_of(key.rpartition("/")[2])
        if node is None:
            return
        if new is None:
            self._configmaps.pop(node, None)
            self._deviceinfo_essences.pop(node, None)
        else:
            self._configmaps[node] = new
            essence = hash(_deviceinfo_essence(new))  # a hash: 1,936 essences would cost megabytes
            if old is not None and self._deviceinfo_essences.get(node) == essence:
                return  # only UpdateTime moved (the essence of the old copy is kept: one parse per refresh)
            self._deviceinfo_essences[node] = essence
        self._inventory_changed(node)

    def _on_nodeinfo(self, key: str, old: JSON | None, new: JSON | None) -> None:
        node = nodeinfo.node_of(key.rpartition("/")[2])
        if node is None:
            return
        health = nodeinfo.parse(new) if new is not None else None
        if self._node_health.get(node) == health:
            return
        if health is None:
            self._node_health.pop(node, None)
        else:
            self._node_health[node] = health
        self._inventory_changed(node)

    def _on_partition(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            gone = self.partitions.pop(key, None)
            if gone is not None:
                self._forget(key, gone)
            for listener in self.partition_listeners:
                listener(key, None)
            return
        if old is not None and old["metadata"].get("uid") != new["metadata"].get("uid"):
            # deleted and created again while the watch was down: a relist shows both as one update, and the
            # new partition must not inherit the old one's devices
            self._on_partition(key, old, None)
            old = None
        self.partitions[key] = new
        for listener in self.partition_listeners:
            listener(key, new)
        if self._reflectors and all(m.synced.is_set() for m in self._reflectors):
            self._adopt(key, new)
            state = self.superpods.get(_superpod_of(new))
            spec_edited = old is not None and old.get("spec") != new.get("spec")
            if state is not None and (_bound_pods(old) - _bound_pods(new) or spec_edited):
                # a pod left its slot: a slot kept on failed devices for that pod may move now; or the spec's
                # one mutable field, repairPolicy, changed (kopf's diff base sees no spec change: see kopfkit)
                state.health_dirty = True
                state.poke()

    # ---- inventory -----------------------------------------------------------------------------------

    def _configure(self, state: SuperPodState) -> None:
        try:
            state.spec = api_superpod.SuperPodSpec.model_validate(state.body.get("spec") or {})
            state.profile = profiles.for_spec(state.spec)
            state.error = None
        except (pydantic.ValidationError, profiles.ProfileError, ValueError) as error:
            state.spec, state.profile, state.allocator = None, None, None
            state.error = _one_line(error)

    def _inventory_changed(self, node: str) -> None:
        self._dirty_inventory.add(node)
        if (
            self._inventory_scheduled
            or not self._reflectors
            or not all(m.synced.is_set() for m in self._reflectors)
        ):
            return
        self._inventory_scheduled = True
        asyncio.get_running_loop().call_later(self.inventory_debounce, self._flush_inventory)

    def _flush_inventory(self) -> None:
        """Coalesced: one pass over the SuperPods for a burst of Node and ConfigMap changes."""
        self._inventory_scheduled = False
        self._dirty_inventory.clear()
        for state in self.superpods.values():
            self._rebuild(state)
            state.poke()

    def _observe(self, state: SuperPodState) -> None:
        assert state.spec is not None and state.profile is not None
        before = dict(state.observed)
        state.observed.clear()
        state.problems.clear()
        for name, node in self._nodes.items():
            if not inventory.is_member(node, state.spec):
                continue
            observed, problem = inventory.observe(
                node, self._configmaps.get(name), state.profile, state.resource, self._node_health.get(name)
            )
            if observed is not None:
                state.observed[name] = observed
            if problem is not None:
                state.problems[name] = problem
        # A node that vanished (deleted, or its device info broke) while partitions hold its devices stays in
        # the tree as a node that is down, so its partitions are reported Degraded and repaired, not lost.
        held = _held_nodes(state.allocator)
        for name in held - state.observed.keys():
            if name in before:
                state.observed[name] = dataclasses.replace(before[name], ready=False)
                state.problems.setdefault(
                    name,
                    inventory.NodeProblem(
                        name, "NodeLost", f"node {name} is gone; its devices are out of service"
                    ),
                )

    def _rebuild(self, state: SuperPodState) -> None:
        """Rebuild the tree when the node set or device lists change; otherwise only update health."""
        if state.spec is None or state.profile is None:
            return
        self._observe(state)
        shape = tuple(sorted((name, node.devices) for name, node in state.observed.items()))
        state.health_dirty = True
        if state.allocator is not None and shape == state.shape:
            for name, node in state.observed.items():
                state.allocator.set_health(name, node.unhealthy, ready=node.ready)
            return
        state.shape = shape
        if not state.observed:
            state.allocator = None
            return
        tree = topology_tree.build(state.profile, state.observed.values(), state.spec.reserve_nodes)
        previous = state.allocator
        state.allocator = placement.Allocator(tree)
        held = previous.partitions if previous is not None else {}
        for key, decision in held.items():
            self._restore(state, key, decision.slots, decision.whole_nodes)
        for key, obj in self.partitions.items():
            if key not in held and _superpod_of(obj) == state.name:
                self._adopt(key, obj)

    # ---- partitions ----------------------------------------------------------------------------------

    def _orphans(self, superpod_name: str) -> dict[str, tuple[str, str]]:
        return {
            key: (obj["metadata"].get("creationTimestamp", ""), key)
            for key, obj in self.partitions.items()
            if _superpod_of(obj) == superpod_name and not (obj.get("status") or {}).get("allocation")
        }

    def _restore(
        self, state: SuperPodState, key: str, slots: Iterable[Any], whole_nodes: bool
    ) -> placement.Placement | placement.Conflict:
        assert state.allocator is not None
        outcome = state.allocator.restore(key, list(slots), whole_nodes=whole_nodes)
        if isinstance(outcome, placement.Conflict):
            logger.warning("could not restore %s: %s", key, outcome.message)
        return outcome

    def _adopt(self, key: str, obj: JSON) -> None:
        """Learn a partition: restore its allocation from status, or queue it when it has none."""
        state = self.superpods.get(_superpod_of(obj))
        allocation = (obj.get("status") or {}).get("allocation")
        if obj["metadata"].get("deletionTimestamp"):
            return
        if not allocation:
            if state is not None and (state.allocator is None or state.allocator.placement_of(key) is None):
                state.pending.setdefault(key, (obj["metadata"].get("creationTimestamp", ""), key))
            return
        if state is None or state.allocator is None:
            return
        if state.allocator.placement_of(key) is not None:
            return
        try:
            slots = [api_partition.Slot.model_validate(slot) for slot in allocation]
        except pydantic.ValidationError as error:
            logger.warning("partition %s has an unreadable allocation: %s", key, _one_line(error))
            return
        whole = bool((obj.get("spec") or {}).get("wholeNodes", False))
        self._restore(state, key, slots, whole)
        state.pending.pop(key, None)

    def _forget(self, key: str, obj: JSON) -> None:
        state = self.superpods.get(_superpod_of(obj))
        if state is None:
            return
        state.pending.pop(key, None)
        if state.allocator is not None and state.allocator.release(key) is not None:
            state.poke()

    async def place(self, obj: JSON) -> JSON:
        """Place a partition (kopf create/resume handler); returns the status it now has."""
        key = partition_key(obj)
        state = self.superpods.get(_superpod_of(obj))
        async with self._serial(key):
            if state is None:
                reason = api_partition.PendingReason.SUPER_POD_NOT_FOUND.value
                message = f"SuperPod {_superpod_of(obj)} does not exist; the partition waits for it"
                return await self._write(obj, lambda previous: self._pending(obj, previous, reason, message))
            return await self._place(state, obj)

    @contextlib.asynccontextmanager
    async def _serial(self, key: str) -> AsyncIterator[None]:
        """One placement, refresh or status write at a time per partition.

        The SuperPod's lock is held only while a decision is made and committed in memory (no API call under
        it), so the placements of one SuperPod write their statuses concurrently; this per-partition lock keeps
        the decisions and writes about one partition in order (a failed write releases exactly what it wrote).
        """
        entry = self._serials.get(key)
        if entry is None:
            entry = self._serials[key] = _Serial()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._serials[key]

    async def _place(self, state: SuperPodState, obj: JSON) -> JSON:
        """Decide under the SuperPod's lock (plan, commit in memory), then write the status outside it."""
        key = partition_key(obj)
        created = obj["metadata"].get("creationTimestamp", "")
        async with state.lock:
            if state.allocator is None:
                reason = api_partition.PendingReason.SUPER_POD_NOT_READY.value
                message = state.error or f"SuperPod {state.name} has no usable nodes yet"
                state.pending.setdefault(key, (created, key))
                decision: placement.Placement | placement.Rejection | None = None
            elif state.allocator.placement_of(key) is not None:
                decision = None
                reason = message = ""
            else:
                try:
                    spec = api_partition.PartitionSpec.model_validate(obj.get("spec") or {})
                except pydantic.ValidationError as error:
                    message = _one_line(error)
                    return await self._write(
                        obj,
                        lambda previous: self._pending(obj, previous, "InvalidSpec", message, failed=True),
                    )
                started = time.perf_counter()
                decision = state.allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
                instruments.observe_placement(time.perf_counter() - started)
                if isinstance(decision, placement.Rejection):
                    state.pending.setdefault(key, (created, key))
                    reason, message = decision.reason.value, decision.message
                else:
                    state.allocator.commit(key, decision)
                    state.pending.pop(key, None)
            allocator = state.allocator
        if allocator is None or isinstance(decision, placement.Rejection):
            return await self._write(obj, lambda previous: self._pending(obj, previous, reason, message))
        if decision is None:
            return await self._refresh(state, obj)
        placed = decision
        rank_table = self._rank_table(state, obj)
        try:
            written = await self._write(
                obj,
                lambda previous: derive.allocated(
                    placed, previous=previous, generation=_generation(obj), rank_table=rank_table
                ),
            )
        except Exception as error:
            if isinstance(error, client.ApiError) and 400 <= error.status < 500:
                # definitely refused: the devices are free again (in the tree rebuilt meanwhile too), and the
                # partition waits its turn again: the daemon's retries, not only kopf's, place it
                for holder in (allocator, state.allocator):
                    if holder is not None:
                        _release_if_held(holder, key, placed)
                state.pending.setdefault(key, (created, key))
            else:
                # A 5xx or a timeout may come after the write landed (a lost reply): keep the devices, so no
                # other partition gets them, and have the daemon write this placement again (kopf retries
                # only its own handler, not the daemon's placement of a queued partition).
                state.health_dirty = True
            state.poke()
            raise
        except asyncio.CancelledError:
            # the operator is stopping, or kopf stopped the daemon (a pause): the decision may not be written;
            # if it was, the mirror restores it; if not, the partition waits its turn again
            _release_if_held(allocator, key, placed)
            state.pending.setdefault(key, (created, key))
            raise
        if not written:  # deleted meanwhile
            _release_if_held(allocator, key, placed)
            return {}
        logger.info("placed %s: %s", key, written["message"])
        state.poke()
        await self.writer.event(obj, reason="Allocated", message=written["message"])
        return written

    @staticmethod
    def _rank_table(state: SuperPodState, obj: JSON) -> str | None:
        """The rank table ConfigMap's name, written with the allocation (the bindings loop makes the ConfigMap)."""
        if state.profile is None or versions.version_for_profile(state.profile.name) is None:
            return None
        return ranktables.configmap_name(obj)

    async def _refresh(self, state: SuperPodState, obj: JSON) -> JSON:
        """Bring a placed partition's status up to date: failed devices, repair, bindings."""
        key = partition_key(obj)
        async with state.lock:
            if state.allocator is None or state.allocator.placement_of(key) is None:
                return dict(obj.get("status") or {})
            decision = state.allocator.placement_of(key)
            assert decision is not None
            failed = failed_devices(state.allocator, decision)
            problem: str | None = None
            repaired = False
            policy = (obj.get("spec") or {}).get("repairPolicy", api_partition.RepairPolicy.AUTO.value)
            if failed and policy == api_partition.RepairPolicy.AUTO.value:
                movable = _unbound_devices(obj, failed)
                if movable:
                    outcome = state.allocator.repair(key, movable)
                    if isinstance(outcome, placement.Rejection) and not _any_bound(obj):
                        # no pod runs yet, so the ranks may change: place the whole request afresh
                        outcome = self._replace_locked(state, key, obj, decision, outcome)
                    if isinstance(outcome, placement.Rejection):
                        problem = outcome.message
                    else:
                        repaired = outcome != decision
                        decision = outcome
                        failed = failed_devices(state.allocator, decision)
                if failed and problem is None:
                    problem = "the failed devices belong to running pods; their slots move when the pods are recreated"
        was_degraded = (obj.get("status") or {}).get("phase") == api_partition.Phase.DEGRADED.value
        current = decision
        rank_table = self._rank_table(state, obj)
        try:
            written = await self._write(
                obj,
                lambda previous: derive.allocated(
                    current,
                    previous=previous,
                    generation=_generation(obj),
                    failed=failed,
                    repair_problem=problem if failed else None,
                    rank_table=rank_table,
                ),
            )
        except BaseException:
            # memory (a repair, failed devices) is ahead of the status: the daemon refreshes it again
            state.health_dirty = True
            state.poke()
            raise
        if repaired and written:
            await self.writer.event(
                obj, reason="Repaired", message=f"moved off failed devices: {written['message']}"
            )
            state.poke()
        elif failed and not was_degraded and written:
            await self.writer.event(obj, reason="DeviceFailed", message=written["message"], warning=True)
        return written

    def _replace_locked(
        self,
        state: SuperPodState,
        key: str,
        obj: JSON,
        old: placement.Placement,
        rejection: placement.Rejection,
    ) -> placement.Placement | placement.Rejection:
        """Release and re-plan a partition whose slots could not move one by one; keep it if that fails."""
        assert state.allocator is not None
        spec = api_partition.PartitionSpec.model_validate(obj.get("spec") or {})
        state.allocator.release(key)
        fresh = state.allocator.plan_partition(placement.PlacementRequest.from_spec(spec))
        if isinstance(fresh, placement.Placement):
            state.allocator.commit(key, fresh)
            return fresh
        state.allocator.restore(key, old.slots, whole_nodes=old.whole_nodes)
        return rejection

    def _pending(
        self, obj: JSON, previous: JSON | None, reason: str, message: str, *, failed: bool = False
    ) -> JSON:
        desired = derive.pending(reason, message, previous=previous, generation=_generation(obj))
        if failed:
            desired["phase"] = api_partition.Phase.FAILED.value
        return desired

    async def _write(self, obj: JSON, compute: Callable[[JSON | None], JSON], attempts: int = 8) -> JSON:
        """Write the status `compute(current status)` if it differs, guarded by resourceVersion.

        On a 409 (someone, e.g. an admission webhook binding a pod, wrote in between) read the object again
        and recompute. Returns the status now in effect; {} when the partition is gone (or was replaced by a
        new one of the same name).
        """
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        uid = obj["metadata"].get("uid")
        current = obj
        for _ in range(attempts):
            previous = current.get("status") or {}
            desired = compute(previous)
            if not derive.changed(previous, desired):
                return desired
            try:
                written = await self.writer.partition_status(
                    namespace, name, desired, resource_version=current["metadata"].get("resourceVersion")
                )
            except client.ApiError as error:
                if error.status != 409:
                    raise
                fresh = await self.api.get_or_none(writer.partition_path(namespace, name))
                if fresh is None or (uid and fresh["metadata"].get("uid") != uid):
                    return {}  # gone, or another partition of the same name: not ours to write
                current = fresh
                continue
            if written is None:
                return {}
            self._remember(written)
            unplaced = (api_partition.Phase.PENDING.value, api_partition.Phase.FAILED.value)
            if desired.get("phase") in unplaced and previous.get("reason") != desired.get("reason"):
                await self.writer.event(
                    written, reason=desired["reason"], message=desired["message"], warning=True
                )
            return dict(written.get("status") or {})
        raise RuntimeError(f"status of {namespace}/{name} kept changing; giving up after {attempts} attempts")

    def _remember(self, written: JSON) -> None:
        """Keep a copy we wrote when it is newer than the mirror's; never bring back a partition it saw go.

        The reply to a write may arrive after the watch event of the partition's deletion (or of a newer
        version): the mirror's copy then stays, so no deleted partition lingers with an allocation that a later
        rebuild would restore.
        """
        key = partition_key(written)
        known = self.partitions.get(key)
        if known is None or known["metadata"].get("uid") != written["metadata"].get("uid"):
            return
        mine, theirs = (str(obj["metadata"].get("resourceVersion")) for obj in (written, known))
        if not (mine.isdecimal() and theirs.isdecimal()) or int(mine) > int(theirs):
            self.partitions[key] = written

    async def refresh_placed(self, state: SuperPodState) -> None:
        """After health changes: report failed devices and repair what can be repaired (daemon)."""
        if state.allocator is None:
            return
        for key in list(state.allocator.partitions):
            obj = self.partitions.get(key)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                continue
            async with self._serial(key):
                if state.allocator is not None and state.allocator.placement_of(key) is not None:
                    await self._refresh(state, obj)

    async def release(self, obj: JSON) -> None:
        """A partition is being deleted (kopf delete handler, before its finalizer goes)."""
        key = partition_key(obj)
        state = self.superpods.get(_superpod_of(obj))
        if state is None:
            return
        async with self._serial(key), state.lock:
            state.pending.pop(key, None)
            released = state.allocator.release(key) if state.allocator is not None else None
        if released is not None:
            state.poke()
            await self.writer.event(
                obj, reason="Released", message=f"released {len(released.device_ids())} devices"
            )

    async def retry_pending(self, state: SuperPodState) -> int:
        """Try every pending partition of the SuperPod, oldest first; returns how many were placed.

        A partition whose try raises (its status write refused, say) waits with a backoff of its own, doubling
        from `RETRY_FIRST` to `RETRY_MOST` seconds, while the ones behind it are tried: one partition the API
        keeps refusing must not hold up every other pending partition of the SuperPod.
        """
        placed = 0
        now = time.monotonic()
        for key in set(state.backoff) - set(state.pending):
            del state.backoff[key]
        for _, key in sorted(state.pending.values()):
            obj = self.partitions.get(key)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                state.pending.pop(key, None)
                state.backoff.pop(key, None)
                continue
            next_try, delay = state.backoff.get(key, (0.0, 0.0))
            if next_try > now:
                continue
            async with self._serial(key):
                if key not in state.pending:
                    continue
                try:
                    result = await self._place(state, obj)
                except Exception as error:  # whatever failed for this one partition; cancellation passes
                    delay = min(RETRY_MOST, max(RETRY_FIRST, 2 * delay))
                    state.backoff[key] = (time.monotonic() + delay, delay)
                    asyncio.get_running_loop().call_later(delay, state.poke)
                    instruments.count_reconcile_error("partition")
                    logger.warning("partition %s: %s; trying it again in %.0f s", key, error, delay)
                    continue
            state.backoff.pop(key, None)
            if result.get("phase") == api_partition.Phase.ALLOCATED.value:
                placed += 1
        return placed

    # ---- SuperPod status -----------------------------------------------------------------------------

    def superpod_status(self, state: SuperPodState) -> JSON:
        capacity = state.allocator.capacity() if state.allocator is not None else None
        return derive.superpod(
            capacity=capacity,
            resource_name=state.resource,
            nodes=len(state.observed)
            + sum(1 for p in state.problems.values() if p.node not in state.observed),
            ready_nodes=sum(1 for node in state.observed.values() if node.ready),
            problems=state.problems.values(),
            previous=state.body.get("status"),
            generation=state.body["metadata"].get("generation"),
            error=state.error,
        )

    async def write_superpod_status(self, state: SuperPodState) -> bool:
        desired = self.superpod_status(state)
        if not derive.changed(state.body.get("status"), desired):
            return False
        written = await self.writer.superpod_status(state.name, desired)
        if written is None:
            return False
        state.body = written
        for node in sorted(set(state.problems) - state.reported):
            problem = state.problems[node]
            await self.writer.event(written, reason=problem.reason, message=problem.message, warning=True)
        state.reported = set(state.problems)
        return True


@dataclasses.dataclass
class _Serial:
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    users: int = 0


def _release_if_held(allocator: placement.Allocator, key: str, decision: placement.Placement) -> None:
    """Release `key`'s devices if it still holds `decision` (not one a later refresh or repair made)."""
    if allocator.placement_of(key) == decision:
        allocator.release(key)


def failed_devices(allocator: placement.Allocator, decision: placement.Placement) -> list[str]:
    """`node/device` of every device of the placement that is unhealthy now."""
    tree = allocator.tree
    failed: list[str] = []
    for slot in decision.slots:
        node = tree.by_name[slot.node]
        index = tree.device_index[slot.node]
        unhealthy = allocator.state.unhealthy[node.index]
        failed.extend(f"{slot.node}/{device}" for device in slot.devices if unhealthy >> index[device] & 1)
    return failed


def _unbound_devices(obj: JSON, failed: list[str]) -> list[str]:
    """The failed devices whose slot has no pod bound (they can move now)."""
    bound = {
        f"{slot['node']}/{device}"
        for slot in (obj.get("status") or {}).get("allocation") or []
        if slot.get("pod")
        for device in slot.get("devices") or []
    }
    return [device for device in failed if device not in bound]


def _bound_pods(obj: JSON | None) -> set[str]:
    allocation = ((obj or {}).get("status") or {}).get("allocation") or []
    return {str(slot["pod"]) for slot in allocation if slot.get("pod")}


def _any_bound(obj: JSON) -> bool:
    return any(slot.get("pod") for slot in (obj.get("status") or {}).get("allocation") or [])


def _held_nodes(allocator: placement.Allocator | None) -> set[str]:
    if allocator is None:
        return set()
    return {slot.node for decision in allocator.partitions.values() for slot in decision.slots}


def _generation(obj: JSON) -> int | None:
    generation = obj["metadata"].get("generation")
    return int(generation) if generation is not None else None


def _superpod_of(obj: JSON) -> str:
    return str((obj.get("spec") or {}).get("superPod", ""))


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _node_essence(node: JSON) -> tuple[Any, ...]:
    """What of a Node matters to the inventory (not heartbeats)."""
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    metadata = node.get("metadata") or {}
    return (metadata.get("labels"), metadata.get("annotations"), status.get("allocatable"), ready)


def _deviceinfo_essence(configmap: JSON) -> str:
    """What of a device-info ConfigMap matters: not the UpdateTime and CheckCode that move on every refresh."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("UpdateTime", "CheckCode")}
        return value

    essence = {}
    for key, raw in (configmap.get("data") or {}).items():
        try:
            essence[key] = strip(json.loads(raw))
        except (TypeError, ValueError):
            essence[key] = raw
    return json.dumps(essence, sort_keys=True)
