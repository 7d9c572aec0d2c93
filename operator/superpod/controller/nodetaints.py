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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from superpod.api import superpod as api_superpod
from superpod.cluster import client
from superpod.controller import kopfkit, membership

JSON = dict[str, Any]
EFFECT = "NoSchedule"
IDLE_RECHECK = 30.0  # seconds
RETRY_SECONDS = 2.0  # after a write that failed or lost a race
CONCURRENCY = 8  # node writes at once
logger = logging.getLogger(__name__)


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

    async def follow(self, superpod: str, stopped: kopf.DaemonStopped) -> None:
        """Keep the SuperPod's taints right until `stopped`; take them all away if it was deleted."""
        changed = self.view.changed(superpod)
        while not stopped:
            changed.clear()
            try:
                settled = await self.reconcile(superpod)
            except (client.ApiError, OSError, TimeoutError) as error:
                logger.warning("SuperPod %s: tainting its nodes failed: %s; retrying", superpod, error)
                settled = False
            await kopfkit.wait_for_poke(changed, stopped, IDLE_RECHECK if settled else RETRY_SECONDS)
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
        for name, node in list(self.view.nodes.items()):
            taints = wanted_taints(node, superpod, name in members)
            if taints is not None:
                writes.append((name, node, taints))
        if not writes:
            return True
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
        body = {
            "metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
            "spec": {"taints": taints or None},
        }
        try:
            await self.api.patch(client.resource_path("v1", "nodes", None, name), body)
        except client.ApiError as error:
            if error.status == 404:
                return True  # gone: nothing to taint
            if error.status == 409:
                return False  # changed meanwhile: computed again from the change
            raise
        self.writes += 1
        return True
