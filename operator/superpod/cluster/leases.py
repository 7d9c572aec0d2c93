"""The coordination.k8s.io/v1 Leases operator replicas share SuperPods through: names, bodies, fields.

Two kinds, told apart by the label `superpod.dev/shard-role`: a `member` Lease per replica (named after the
replica, renewed every few seconds: the replica is alive while it changes) and a `superpod` Lease per SuperPod
(its holderIdentity is the replica that owns the SuperPod; written only when ownership moves, always with the
resourceVersion it was read at, so two replicas never both take it).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

from superpod.cluster import client

JSON = dict[str, Any]
API_VERSION = "coordination.k8s.io/v1"
ROLE_LABEL = "superpod.dev/shard-role"
MEMBER = "member"
SUPERPOD = "superpod"
SUPERPOD_ANNOTATION = "superpod.dev/superpod"  # the SuperPod a `superpod` Lease is for (names can be long)
MAX_NAME = 253


def collection(namespace: str) -> str:
    return client.resource_path(API_VERSION, "leases", namespace)


def path(namespace: str, name: str) -> str:
    return client.resource_path(API_VERSION, "leases", namespace, name)


def microtime(moment: datetime.datetime | None = None) -> str:
    """A MicroTime as kube writes it (`2024-01-02T03:04:05.123456Z`)."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dns_name(prefix: str, text: str) -> str:
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.") or "x"
    name = f"{prefix}{cleaned}"
    if len(name) <= MAX_NAME and cleaned == text:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]  # two texts that clean alike stay apart
    return f"{prefix}{cleaned[: MAX_NAME - len(prefix) - 11]}-{digest}"


def member_name(identity: str) -> str:
    return _dns_name("superpod-operator-", identity)


def superpod_name(superpod: str) -> str:
    return _dns_name("superpod-shard-", superpod)


def role(lease: JSON) -> str:
    return str(((lease.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, ""))


def holder(lease: JSON) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def duration(lease: JSON, default: float) -> float:
    return float((lease.get("spec") or {}).get("leaseDurationSeconds") or default)


def superpod_of(lease: JSON) -> str:
    return str(((lease.get("metadata") or {}).get("annotations") or {}).get(SUPERPOD_ANNOTATION, ""))


def version(lease: JSON) -> str:
    return str((lease.get("metadata") or {}).get("resourceVersion") or "")


def body(
    namespace: str,
    name: str,
    kind: str,
    holder_identity: str,
    seconds: float,
    *,
    superpod: str | None = None,
    previous: JSON | None = None,
) -> JSON:
    """The Lease as it should be written; with `previous` (as read) it replaces that version, or fails."""
    now = microtime()
    old_spec = (previous or {}).get("spec") or {}
    moved = holder(previous or {}) != holder_identity
    metadata: JSON = {"name": name, "namespace": namespace, "labels": {ROLE_LABEL: kind}}
    if superpod is not None:
        metadata["annotations"] = {SUPERPOD_ANNOTATION: superpod}
    if previous is not None:
        metadata["resourceVersion"] = version(previous)
    spec: JSON = {
        "holderIdentity": holder_identity,
        "leaseDurationSeconds": max(1, round(seconds)),
        "renewTime": now,
        "acquireTime": now if moved or not old_spec.get("acquireTime") else old_spec["acquireTime"],
        "leaseTransitions": int(old_spec.get("leaseTransitions") or 0) + (1 if moved and previous else 0),
    }
    return {"apiVersion": API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}
