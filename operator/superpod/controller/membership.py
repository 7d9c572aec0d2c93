"""Which nodes belong to which SuperPod, and which SuperPods isolate theirs, on every replica.

Fed by the fleet's mirrors (`Fleet.node_listeners`, `Fleet.superpod_listeners`): every replica answers
admission reviews, so every replica keeps this view, not only the active one. A node's membership is computed
again when its labels change, a SuperPod's members when its spec changes (`cluster.inventory.is_member`, the
rule the inventory uses). Changes that concern the isolation taint (membership, a node's taints, a SuperPod's
isolation) set `changed(superpod)`, which wakes that SuperPod's taint loop (`nodetaints`). The nodes whose
isolation taint names each SuperPod are indexed (`tainted`), so a SuperPod's taint loop looks at its members and
those nodes only, not at every node of the cluster (65,536 of them, for each SuperPod, at every pass).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from superpod.api import superpod as api_superpod
from superpod.cluster import inventory
from superpod.controller import isolation

JSON = dict[str, Any]
TAINT_EFFECT = "NoSchedule"


class Membership:
    """Nodes, SuperPod specs, and the member nodes of each SuperPod."""

    def __init__(self) -> None:
        self.nodes: dict[str, JSON] = {}  # the fleet's node objects (shared, never changed here)
        self.specs: dict[str, api_superpod.SuperPodSpec] = {}  # SuperPods whose spec could be read
        self.resources: dict[str, str] = {}  # SuperPod -> its device resource
        self.members: dict[str, set[str]] = {}  # SuperPod -> member node names
        self.tainted: dict[
            str, set[str]
        ] = {}  # SuperPod named by an isolation taint -> the nodes carrying it
        self._taints_of: dict[str, frozenset[str]] = {}  # node -> the SuperPods its isolation taints name
        self._changed: dict[str, asyncio.Event] = {}
        self._isolated: list[isolation.IsolatedSuperPod] | None = None  # cache, None: to compute

    def changed(self, superpod: str) -> asyncio.Event:
        return self._changed.setdefault(superpod, asyncio.Event())

    def _poke_all(self) -> None:
        self._isolated = None
        for event in self._changed.values():
            event.set()

    def on_node(self, key: str, old: JSON | None, new: JSON | None) -> None:
        if new is None:
            self.nodes.pop(key, None)
            for members in self.members.values():
                members.discard(key)
            self._index_taints(key, frozenset())
            self._poke_all()
            return
        self.nodes[key] = new
        if old is not None and _essence(old) == _essence(new):
            return  # a heartbeat
        self._index_taints(key, isolating_superpods(new))
        for superpod, spec in self.specs.items():
            members = self.members.setdefault(superpod, set())
            if inventory.is_member(new, spec):
                members.add(key)
            else:
                members.discard(key)
        self._poke_all()

    def on_superpod(self, name: str, spec: api_superpod.SuperPodSpec | None, resource: str) -> None:
        """The SuperPod's spec as the fleet read it (None: deleted, or a spec that cannot be used)."""
        if spec is None:
            self.specs.pop(name, None)
            self.resources.pop(name, None)
            self.members.pop(name, None)
        elif self.specs.get(name) != spec or self.resources.get(name) != resource:
            self.specs[name] = spec
            self.resources[name] = resource
            self.members[name] = {key for key, node in self.nodes.items() if inventory.is_member(node, spec)}
        else:
            return
        self._isolated = None
        self.changed(name).set()

    def _index_taints(self, key: str, names: frozenset[str]) -> None:
        before = self._taints_of.get(key, frozenset())
        if names == before:
            return
        for name in before - names:
            nodes = self.tainted.get(name)
            if nodes is not None:
                nodes.discard(key)
                if not nodes:
                    del self.tainted[name]
        for name in names - before:
            self.tainted.setdefault(name, set()).add(key)
        if names:
            self._taints_of[key] = names
        else:
            self._taints_of.pop(key, None)

    def isolating(self, superpod: str) -> bool:
        spec = self.specs.get(superpod)
        return spec is not None and spec.isolation is api_superpod.Isolation.PARTITIONS

    def isolated(self) -> list[isolation.IsolatedSuperPod]:
        """The SuperPods with isolation Partitions (computed once per change, admission reads it often)."""
        if self._isolated is None:
            self._isolated = [
                isolation.IsolatedSuperPod(name, self.resources[name], frozenset(self.members.get(name, ())))
                for name in sorted(self.specs)
                if self.isolating(name)
            ]
        return self._isolated

    def isolated_member(self, node: str) -> isolation.IsolatedSuperPod | None:
        """The isolating SuperPod the node belongs to, if any."""
        return next((superpod for superpod in self.isolated() if node in superpod.members), None)

    def device_keys(self) -> frozenset[str]:
        """Every SuperPod's device resource: the device plugin's annotation keys."""
        return frozenset(self.resources.values())


def isolating_superpods(node: Mapping[str, Any]) -> frozenset[str]:
    """The SuperPods the node's isolation taints name."""
    taints = (node.get("spec") or {}).get("taints") or []
    return frozenset(
        str(t.get("value"))
        for t in taints
        if t.get("key") == api_superpod.ISOLATION_TAINT and t.get("effect") == TAINT_EFFECT and t.get("value")
    )


def _essence(node: Mapping[str, Any]) -> tuple[Any, Any]:
    """What of a node matters here: its labels (membership) and its taints (the taint loop)."""
    return ((node.get("metadata") or {}).get("labels"), (node.get("spec") or {}).get("taints"))
