"""The ReplicaSet controller: as many active Pods from the template as `spec.replicas` asks, and the status.

As kube's (pkg/controller/replicaset): Pods are named `<replicaset>-<5 characters>` and controlled by the
ReplicaSet; a surplus is deleted, unscheduled, then not-ready, then newest Pods first; a Pod the API server
refuses is reported once as a `FailedCreate` Event and a `ReplicaFailure` condition and tried again on the next
pass. `availableReplicas` counts Pods Ready for at least `minReadySeconds`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from superpod.cluster import client

from superpod_sandbox.sim.controllers import common

JSON = dict[str, Any]
API_VERSION = "apps/v1"
PLURAL = "replicasets"
BURST = 100  # Pods created or deleted per ReplicaSet and pass (kube: slow-start batches up to 500)


class ReplicaSetController:
    def __init__(self, api: client.KubeClient) -> None:
        self.api = api
        self._failures: dict[str, str] = {}  # replicaset uid -> last refusal, reported once
        self.expectations = common.Expectations()

    async def sync(self, replicaset: JSON, pods: Iterable[JSON]) -> None:
        if common.deleting(replicaset):
            return
        mine = common.owned(pods, replicaset)
        active = [pod for pod in mine if common.is_active(pod)]
        wanted = int((replicaset.get("spec") or {}).get("replicas", 1))
        owner = common.uid(replicaset)
        failure = None
        if not self.expectations.satisfied(owner, len(mine), len(active)):
            return  # Pods created or deleted in an earlier pass are not all seen yet
        if len(active) < wanted:
            created, failure = await self._create(replicaset, min(wanted - len(active), BURST))
            self.expectations.expect(owner, at_least_owned=len(mine) + created)
        elif len(active) > wanted:
            surplus = _deletion_order(active)[: min(len(active) - wanted, BURST)]
            await self._delete(surplus)
            self.expectations.expect(owner, at_most_active=len(active) - len(surplus))
        await common.write_status(
            self.api, API_VERSION, PLURAL, replicaset, self.status(replicaset, active, failure)
        )

    async def _create(self, replicaset: JSON, count: int) -> tuple[int, str | None]:
        """Create up to `count` Pods; how many were created, and the refusal that stopped it."""
        meta = replicaset["metadata"]
        template = (replicaset.get("spec") or {}).get("template") or {}
        owner = common.owner_reference(replicaset, API_VERSION, "ReplicaSet")
        collection = common.collection("v1", "pods", meta["namespace"])
        for created in range(count):
            try:
                await self.api.create(collection, common.new_pod(template, owner, f"{meta['name']}-"))
            except client.ApiError as error:
                message = str((error.body or {}).get("message", error))
                if self._failures.get(meta["uid"]) != message:
                    self._failures[meta["uid"]] = message
                    await common.event(
                        self.api, replicaset, "ReplicaSet", "FailedCreate", f"Error creating: {message}", True
                    )
                return created, message
            self._failures.pop(meta["uid"], None)
        return count, None

    async def _delete(self, pods: list[JSON]) -> None:
        for pod in pods:
            await self.api.delete(common.path("v1", "pods", pod))

    def status(self, replicaset: JSON, active: list[JSON], failure: str | None) -> JSON:
        spec = replicaset.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        ready = [pod for pod in active if common.is_ready(pod)]
        previous = (replicaset.get("status") or {}).get("conditions") or []
        status: JSON = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": len(ready),
            "availableReplicas": sum(1 for pod in ready if _ready_for(pod, min_ready)),
            "observedGeneration": (replicaset["metadata"]).get("generation", 1),
        }
        if failure is not None:
            status["conditions"] = [
                common.condition("ReplicaFailure", True, "FailedCreate", failure, previous)
            ]
        return status


def _ready_for(pod: JSON, seconds: int) -> bool:
    if seconds <= 0:
        return True
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("lastTransitionTime"):
            since = datetime.datetime.fromisoformat(
                str(condition["lastTransitionTime"]).replace("Z", "+00:00")
            )
            return (datetime.datetime.now(datetime.UTC) - since).total_seconds() >= seconds
    return False


def _deletion_order(pods: list[JSON]) -> list[JSON]:
    """kube's ActivePods order for scale-down: unscheduled, pending, not ready, then the newest first."""

    def rank(pod: JSON) -> tuple[int, int, int, str]:
        scheduled = bool((pod.get("spec") or {}).get("nodeName"))
        running = common.phase(pod) == "Running"
        created = str((pod.get("metadata") or {}).get("creationTimestamp", ""))
        return (int(scheduled), int(running), int(common.is_ready(pod)), _negated(created))

    return sorted(pods, key=rank)


def _negated(timestamp: str) -> str:
    """Sorts RFC 3339 timestamps newest first."""
    return "".join(chr(0x10FFFF - ord(ch)) for ch in timestamp)
