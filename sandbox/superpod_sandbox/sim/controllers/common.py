"""What the workload controllers share: owner references, pod states, conditions, status writes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from superpod.cluster import client

from superpod_sandbox.sim import publisher

JSON = dict[str, Any]
logger = logging.getLogger(__name__)
FINISHED = frozenset({"Succeeded", "Failed"})


def uid(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object's controller (the owner reference with `controller: true`)."""
    for reference in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid", ""))
    return None


def owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> JSON:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned(objects: Iterable[JSON], owner: Mapping[str, Any]) -> list[JSON]:
    owner_uid = uid(owner)
    return [obj for obj in objects if controller_uid(obj) == owner_uid]


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_active(pod: Mapping[str, Any]) -> bool:
    """kube's controller.IsPodActive: not finished and not being deleted."""
    return phase(pod) not in FINISHED and not deleting(pod)


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def condition(
    kind: str, status: bool, reason: str, message: str, previous: Iterable[JSON], **times: str
) -> JSON:
    """A condition keeping the previous lastTransitionTime while its status is unchanged."""
    now = publisher.now_rfc3339()
    value = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == kind), None)
    transition = before["lastTransitionTime"] if before and before.get("status") == value else now
    made = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    for field in times:
        made[field] = before.get(field, now) if before and before.get("reason") == reason else now
    return made


def path(api_version: str, plural: str, obj: Mapping[str, Any], subresource: str | None = None) -> str:
    meta = obj["metadata"]
    return client.resource_path(api_version, plural, meta.get("namespace"), meta["name"], subresource)


def collection(api_version: str, plural: str, namespace: str) -> str:
    return client.resource_path(api_version, plural, namespace)


def changed(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether writing `wanted` over `current` changes anything, ignoring condition timestamps."""

    def comparable(status: Mapping[str, Any]) -> JSON:
        conditions = [
            {k: v for k, v in c.items() if k not in ("lastTransitionTime", "lastUpdateTime", "lastProbeTime")}
            for c in status.get("conditions") or []
        ]
        return {**status, "conditions": conditions}

    return comparable(current) != comparable(wanted)


async def write_status(
    api: client.KubeClient, api_version: str, plural: str, obj: Mapping[str, Any], status: JSON
) -> None:
    """Replace the object's status (merge patch of the whole status) when it differs from the stored one."""
    if not changed(obj.get("status") or {}, status):
        return
    cleared = {key: None for key in (obj.get("status") or {}) if key not in status}
    try:
        await api.patch(path(api_version, plural, obj, "status"), {"status": {**cleared, **status}})
    except client.ApiError as error:
        if error.status not in (404, 409):
            raise


async def event(
    api: client.KubeClient, obj: Mapping[str, Any], kind: str, reason: str, message: str, warning: bool
) -> None:
    """An Event about `obj` from its controller (`source.component` as kube-controller-manager names them)."""
    meta = obj["metadata"]
    now = publisher.now_rfc3339()
    component = {"ReplicaSet": "replicaset-controller", "Deployment": "deployment-controller"}.get(
        kind, "job-controller"
    )
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await api.create(client.resource_path("v1", "events", meta["namespace"]), body)
    except client.ApiError as error:
        logger.warning(
            "could not post event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], error
        )


def new_pod(template: Mapping[str, Any], owner: JSON, generate_name: str) -> JSON:
    """A Pod from a pod template, controlled by `owner` (already an owner reference)."""
    template_meta = template.get("metadata") or {}
    meta: JSON = {"generateName": generate_name, "ownerReferences": [owner]}
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            meta[field] = dict(template_meta[field]) if field != "finalizers" else list(template_meta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": dict(template.get("spec") or {})}


class Expectations:
    """kube's controller expectations: after creating or deleting Pods for an owner, act for it again only once
    the watch shows them (or `timeout` seconds passed), so a pass that runs before the watch catches up does not
    create the same Pods twice."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._by_owner: dict[
            str, tuple[int, int, float]
        ] = {}  # uid -> (at least owned, at most active, deadline)

    def expect(self, owner_uid: str, at_least_owned: int = 0, at_most_active: int = 1 << 30) -> None:
        self._by_owner[owner_uid] = (at_least_owned, at_most_active, time.monotonic() + self.timeout)

    def satisfied(self, owner_uid: str, owned: int, active: int) -> bool:
        entry = self._by_owner.get(owner_uid)
        if entry is None:
            return True
        at_least, at_most, deadline = entry
        if (owned >= at_least and active <= at_most) or time.monotonic() > deadline:
            del self._by_owner[owner_uid]
            return True
        return False
