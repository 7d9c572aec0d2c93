"""The operator's copy of what it watches: SuperPods, Nodes, device-info and NodeD ConfigMaps, partitions.

Five reflectors (list, then watch) keep maps of the objects: SuperPods as the API serves them, partitions
without their managedFields (`lean`), Nodes and ConfigMaps reduced to the fields the operator reads
(`inventory.compact_node`, `deviceinfo.compact`, `nodeinfo.compact`); each in its own shape, so every reader
sees what it would have read in the whole object. `list_all` fills them
and sets `synced`; from then on `watch` follows changes and the mirror tells its `Listener`: a SuperPod's
change, a Node's or a partition's change (told before the mirror is synced too, so the membership view sees
every one), and `inventory_changed` once per burst of Node and ConfigMap changes that matter to the allocator
(coalesced over `debounce` seconds). A Node's status report that moves only heartbeat times and a device-info
refresh that moves only its UpdateTime are told to nobody: the reduced copies do not keep those fields, and the
reflectors keep quiet about a copy that did not change but for its resourceVersion (`quiet_unchanged`).

A partition's copy is the newest the operator has seen: the watch's, or the reply to its own status write
(`remember`), whichever is later; a partition the watch saw go is never brought back by a late reply.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.cluster import client, deviceinfo, inventory, nodeinfo, reflector, writer
from superpod.controller import partitionmap

JSON = common.JSON


class Listener(Protocol):
    def superpod_changed(self, name: str, old: JSON | None, new: JSON | None) -> None: ...

    def partition_changed(self, key: str, old: JSON | None, new: JSON | None) -> None: ...

    def node_changed(self, name: str, old: JSON | None, new: JSON | None) -> None: ...

    def inventory_changed(self) -> None: ...


class ClusterMirror:
    """Raw maps of the watched objects, kept by reflectors."""

    def __init__(
        self,
        api: client.KubeClient,
        listener: Listener,
        *,
        namespace: str | None = None,
        debounce: float = 0.2,
        configmap_selector: str = deviceinfo.CONSUMER_SELECTOR,
    ) -> None:
        self.listener = listener
        self.debounce = debounce
        self.superpods: dict[str, JSON] = {}  # name -> SuperPod
        self.partitions = partitionmap.PartitionMap()  # namespace/name -> the newest copy seen
        self.nodes: dict[str, JSON] = {}  # name -> Node
        self.deviceinfo: dict[str, JSON] = {}  # node name -> device plugin's ConfigMap
        self.node_health: dict[str, nodeinfo.NodeHealth] = {}  # node name -> NodeD's verdict, when NodeD runs
        self.synced = asyncio.Event()  # set once every initial list is in the maps
        self._scheduled = False
        partitions = client.resource_path(common.API_VERSION, api_partition.PLURAL, namespace)
        self.reflectors = [
            reflector.Reflector(api, writer.superpod_path(), self.superpod_event),
            # each object reduced to what the operator reads as it arrives (`compact_node`, `compact`): the
            # mirror of a SuperCluster's 65,536 Nodes and ConfigMaps would otherwise hold 15 KB of each pair
            reflector.Reflector(
                api,
                "/api/v1/nodes",
                self.node_event,
                transform=inventory.compact_node,
                quiet_unchanged=True,
            ),
            # filtered by the API server: the other ConfigMaps of kube-system are never sent, decoded or kept
            reflector.Reflector(
                api,
                client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE),
                self.deviceinfo_event,
                label_selector=configmap_selector or None,
                transform=deviceinfo.compact,
                quiet_unchanged=True,
            ),
            reflector.Reflector(
                api,
                client.resource_path("v1", "configmaps", nodeinfo.NAMESPACE),
                self.nodeinfo_event,
                label_selector=configmap_selector or None,
                transform=nodeinfo.compact,
                quiet_unchanged=True,
            ),
            reflector.Reflector(api, partitions, self.partition_event, transform=lean),
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def list_all(self) -> None:
        """The initial lists, in order: SuperPods, Nodes, ConfigMaps, then partitions; `synced` after them."""
        for mirror in self.reflectors:
            await mirror.relist()
        self.synced.set()

    def watch(self) -> None:
        """Follow every change from now on (tasks on the running loop, until `stop`)."""
        self._tasks = [asyncio.create_task(mirror.run()) for mirror in self.reflectors]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- events (the reflectors' callbacks) --------------------------------------------------------------

    def superpod_event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            self.superpods.pop(key, None)
        else:
            self.superpods[key] = new
        if self.synced.is_set():
            self.listener.superpod_changed(key, old, new)

    def node_event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.listener.node_changed(key, old, new)  # every change, synced or not
        if new is None:
            self.nodes.pop(key, None)
        else:
            self.nodes[key] = new
        if old is not None and new is not None and node_essence(old) == node_essence(new):
            return  # its taints or capacity: nothing the allocator reads
        self._inventory_changed()

    def deviceinfo_event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        node = deviceinfo.node_of(key.rpartition("/")[2])
        if node is None:
            return
        if new is None:
            self.deviceinfo.pop(node, None)
        else:
            self.deviceinfo[node] = new
        self._inventory_changed()

    def nodeinfo_event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        node = nodeinfo.node_of(key.rpartition("/")[2])
        if node is None:
            return
        health = nodeinfo.parse(new) if new is not None else None
        if self.node_health.get(node) == health:
            return
        if health is None:
            self.node_health.pop(node, None)
        else:
            self.node_health[node] = health
        self._inventory_changed()

    def partition_event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:  # the listener gets the last copy the mirror held (None: it held none)
            self.listener.partition_changed(key, self.partitions.pop(key, None), None)
            return
        if old is not None and old["metadata"].get("uid") != new["metadata"].get("uid"):
            # deleted and created again while the watch was down: a relist shows both as one update, and the
            # new partition must not inherit the old one's devices
            self.partition_event(key, old, None)
            old = None
        self.partitions[key] = new
        self.listener.partition_changed(key, old, new)

    def remember(self, written: JSON) -> None:
        """Keep a copy the operator wrote when it is newer than the mirror's; never revive a deleted partition.

        The reply to a write may arrive after the watch event of the partition's deletion (or of a newer
        version): the mirror's copy then stays, so no deleted partition lingers with an allocation that a later
        rebuild would restore.
        """
        written = lean(written)
        key = views.Partition(written).key
        known = self.partitions.get(key)
        if known is None or known["metadata"].get("uid") != written["metadata"].get("uid"):
            return
        self.partitions[key] = views.newest(known, written) or written

    def _inventory_changed(self) -> None:
        if self._scheduled or not self.synced.is_set():
            return
        self._scheduled = True
        asyncio.get_running_loop().call_later(self.debounce, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        self.listener.inventory_changed()


def lean(obj: JSON) -> JSON:
    """A partition as the mirror keeps it: without `metadata.managedFields` (more than half of a placed
    partition as the API serves it: 4.8 of 8.7 KB), which the operator never reads; every replica keeps every
    partition, so this is most of what 20,000 of them cost. Partitions are only ever patched, never replaced,
    so no write sends a copy without them."""
    metadata = obj.get("metadata")
    if not metadata or "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": {key: value for key, value in metadata.items() if key != "managedFields"}}


def node_essence(node: JSON) -> tuple[Any, ...]:
    """What of a Node matters to the inventory (not its taints)."""
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    metadata = node.get("metadata") or {}
    return (metadata.get("labels"), metadata.get("annotations"), status.get("allocatable"), ready)
