"""The isolation taint on the member nodes of each SuperPod: one loop per SuperPod, on the active replica.

With `spec.isolation: Partitions` every member node carries `superpod.dev/partitions-only=<SuperPod>:NoSchedule`
(kube-scheduler then places there only pods that tolerate it: the webhook gives the toleration to partition
pods alone). The loop (`follow`, a worker of the SuperPod's kopf daemon) adds the taint to nodes that join and
removes it from nodes that leave, when isolation is switched to None, and when the SuperPod is deleted (kopf
stops its daemon with the reason RESOURCE_DELETED before the finalizer goes). It wakes when `Membership` says
that a node's labels or taints, or the SuperPod's spec, changed, and looks again every `IDLE_RECHECK` seconds.

NoSchedule, not NoExecute: pods already running on a node when it is tainted keep running (the operator never
evicts). Each write is a merge patch of the node's whole taint list with the resourceVersion it was computed
on, so a taint another controller wrote meanwhile is never lost (409: computed again when the node's change
arrives). A node whose taint of that key already names another SuperPod (two SuperPods selecting one node) is
left as it is: kube allows one taint per key and effect, and either value keeps the node isolated.

The loop judges a node by the newest copy it knows: the watch's, or the answer to its own write while the watch
has not brought that write yet. Judged by the watch's copy alone, a node tainted a moment ago looked untainted,
and a SuperPod deleted in that moment left the taint behind. A taint that names a SuperPod no longer there (its
last untainting failed, or the operator was down when it went) is removed by `sweep_orphans`, on the replica
that owns the missing name, every `IDLE_RECHECK` seconds: a leftover taint would keep every other pod off
the node for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import kopf

from superpod.api import superpod as api_superpod
from superpod.cluster import client, inventory
from superpod.controller import kopfkit, membership

JSON = dict[str, Any]
EFFECT = membership.TAINT_EFFECT
IDLE_RECHECK = 30.0  # seconds
RETRY_SECONDS = 2.0  # after a write that failed or lost a race
CONCURRENCY = 8  # node writes at once
FENCED = 423  # `shards.Fenced`: this replica may not write for that SuperPod now
logger = logging.getLogger(__name__)


class Owner(Protocol):
    """Who writes for which SuperPod (`shards.Ownership`)."""

    def owns(self, superpod: str) -> bool: ...

    def writing(self, superpod: str) -> contextlib.AbstractContextManager[None]: ...


def wanted_taints(node: Mapping[str, Any], superpod: str, member: bool) -> list[JSON] | None:
    """The node's taints as the SuperPod wants them, or None when they are right as they are.

    `member`: the node belongs to the SuperPod and the SuperPod isolates its nodes.
    """
    taints: list[JSON] = list((node.get("spec") or {}).get("taints") or [])
    ours = [t for t in taints if t.get("key") == api_superpod.ISOLATION_TAINT and t.get("effect") == EFFECT]
    if member and not ours:
        return [*taints, {"key": api_superpod.ISOLATION_TAINT, "value": superpod, "effect": EFFECT}]
    if not member and any(t.get("value") == superpod for t in ours):
        return [t for t in taints if not (t in ours and t.get("value") == superpod)]
    return None


class NodeTaints:
    """Keeps the isolation taint of every SuperPod on exactly its member nodes."""

    def __init__(self, api: client.KubeClient, view: membership.Membership) -> None:
        self.api = api
        self.view = view
        self.writes = 0  # node patches that succeeded
        # node -> (the resourceVersion a write of ours was computed on, the API's answer to it): newer than the
        # watch's copy for as long as the watch's copy is still the one the write was computed on
        self._answers: dict[str, tuple[str | None, JSON]] = {}

    async def follow(self, superpod: str, stopped: kopf.DaemonStopped) -> None:
        """Keep the SuperPod's taints right until `stopped`; take them all away if it was deleted."""
        changed = self.view.changed(superpod)
        async with kopfkit.Sleeper(stopped) as sleeper:
            while not stopped:
                changed.clear()
                try:
                    settled = await self.reconcile(superpod)
                except (client.ApiError, OSError, TimeoutError) as error:
                    logger.warning("SuperPod %s: tainting its nodes failed: %s; retrying", superpod, error)
                    settled = False
                await sleeper.until_poked(changed, IDLE_RECHECK if settled else RETRY_SECONDS)
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.RESOURCE_DELETED:
            for _ in range(3):  # the finalizer waits for this, briefly
                try:
                    if await self.reconcile(superpod, deleted=True):
                        return
                except (client.ApiError, OSError, TimeoutError) as error:
                    logger.warning("SuperPod %s deleted: untainting its nodes failed: %s", superpod, error)
                await asyncio.sleep(RETRY_SECONDS / 4)

    async def reconcile(self, superpod: str, *, deleted: bool = False) -> bool:
        """Write the taints that differ; True when every node is as wanted."""
        isolating = not deleted and self.view.isolating(superpod)
        members = self.view.members.get(superpod, set()) if isolating else set()
        writes = []
        # only these can need a write: members (to taint), nodes whose taint names it, and nodes written lately
        # (the watch may not show our taint on them yet)
        for name in sorted(members | self.view.tainted.get(superpod, set()) | self._answers.keys()):
            node = self.newest(name)
            if node is None:
                continue  # gone
            taints = wanted_taints(node, superpod, name in members)
            if taints is not None:
                writes.append((name, node, taints))
        if not writes:
            return True
        return await self._write_all(superpod, members, writes)

    async def sweep_orphans(self, exists: Callable[[str], bool], owner: Owner) -> bool:
        """Remove the taints naming a SuperPod that does not exist, where this replica owns that name.

        True when none is left to remove (False: a write lost a race; computed again from the node's change)."""
        orphans: dict[str, list[tuple[str, JSON, list[JSON]]]] = {}
        gone = [nodes for superpod, nodes in self.view.tainted.items() if not exists(superpod)]
        for name in sorted(set().union(*gone) | self._answers.keys()):
            node = self.newest(name)
            if node is None:
                continue  # gone
            for superpod in membership.isolating_superpods(node):
                taints = wanted_taints(node, superpod, member=False)
                if taints is not None and not exists(superpod) and owner.owns(superpod):
                    orphans.setdefault(superpod, []).append((name, node, taints))
        settled = True
        for superpod, writes in orphans.items():
            logger.info(
                "SuperPod %s is gone: its isolation taint is still on %d nodes", superpod, len(writes)
            )
            try:
                with owner.writing(superpod):
                    settled = await self._write_all(superpod, set(), writes) and settled
            except client.ApiError as error:
                if error.status != FENCED:
                    raise  # fenced: the name's new owner sweeps it
        return settled

    async def sweeping(self, exists: Callable[[str], bool], owner: Owner) -> None:
        """`sweep_orphans` every `IDLE_RECHECK` seconds for the operator's life, sooner after a failed write."""
        while True:
            try:
                settled = await self.sweep_orphans(exists, owner)
            except (client.ApiError, OSError, TimeoutError) as error:
                logger.warning("removing the taints of SuperPods that are gone failed: %s; retrying", error)
                settled = False
            await asyncio.sleep(IDLE_RECHECK if settled else RETRY_SECONDS)

    def newest(self, name: str) -> JSON | None:
        """The node as this replica knows it newest: the watch's copy, or the answer to our write on it."""
        node = self.view.nodes.get(name)
        answer = self._answers.get(name)
        if node is None or answer is None:
            return node
        if answer[0] == (node.get("metadata") or {}).get("resourceVersion"):
            return answer[1]  # the watch has not brought our write yet
        del self._answers[name]  # the watch has caught up (or moved on): its copy is the newest
        return node

    async def _write_all(
        self, superpod: str, members: set[str], writes: list[tuple[str, JSON, list[JSON]]]
    ) -> bool:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def write(name: str, node: JSON, taints: list[JSON]) -> bool:
            async with gate:
                return await self._write(name, node, taints)

        results = await asyncio.gather(*(write(*change) for change in writes))
        added = sum(1 for name, _, _ in writes if name in members)
        logger.info(
            "SuperPod %s: isolation taint added to %d nodes, removed from %d",
            superpod,
            added,
            len(writes) - added,
        )
        return all(results)

    async def _write(self, name: str, node: JSON, taints: list[JSON]) -> bool:
        based_on = node["metadata"].get("resourceVersion")
        body = {"metadata": {"resourceVersion": based_on}, "spec": {"taints": taints or None}}
        try:
            answer = await self.api.patch(client.resource_path("v1", "nodes", None, name), body)
        except client.ApiError as error:
            if error.status == 404:
                return True  # gone: nothing to taint
            if error.status == 409:
                return False  # changed meanwhile: computed again from the change
            raise
        if answer:  # kept reduced like the mirror's copies until the watch brings the write
            self._answers[name] = (based_on, inventory.compact_node(answer))
        self.writes += 1
        return True
