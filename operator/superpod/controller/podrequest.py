"""What a pod asks of its partition at admission: its name, its index among the partition's pods, its devices.

Pure functions of the pod object as the AdmissionReview carries it.

Identity. A slot records its pod by name (`status.allocation[].pod`). At admission kube-apiserver has not yet
generated the name of a pod created with `generateName` (names are generated after mutating admission, and the
uid is unset too), so the webhook chooses the name itself, as the apiserver would (`generateName` + 5 random
characters of the same alphabet) and sets it in its patch; the apiserver keeps a name that is set. A collision
(1 in 14 million per pod) fails that one create with AlreadyExists, and its controller retries.

Index. Workload controllers label each pod with its index; the pod then gets the slot at that position in rank
order, so a restarted pod finds its old rank again:
- Indexed Job: `batch.kubernetes.io/job-completion-index`
- StatefulSet: `apps.kubernetes.io/pod-index`
- JobSet: `jobset.sigs.k8s.io/job-global-index` (else `job-index`) with `jobset.sigs.k8s.io/global-replicas`
  (else `replicatedjob-replicas`) and the Job's completion index: job index x (slots / jobs) + completion index
- PyTorchJob (Kubeflow training-operator): `training.kubeflow.org/replica-index` with `replica-type`: the
  master is index 0, worker i is index i + 1 (training-operator's RANK).
Without an index label the pod takes the next free slot in rank order.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping
from typing import Any

from superpod.api import common

JSON = common.JSON

JOB_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
POD_INDEX = "apps.kubernetes.io/pod-index"
JOBSET_GLOBAL_INDEX = "jobset.sigs.k8s.io/job-global-index"
JOBSET_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
JOBSET_GLOBAL_REPLICAS = "jobset.sigs.k8s.io/global-replicas"
JOBSET_REPLICAS = "jobset.sigs.k8s.io/replicatedjob-replicas"
PYTORCH_REPLICA_INDEX = "training.kubeflow.org/replica-index"
PYTORCH_REPLICA_TYPE = "training.kubeflow.org/replica-type"

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apiserver's names.SimpleNameGenerator
NAME_SUFFIX_LENGTH = 5
MAX_GENERATE_NAME_PREFIX = 63 - NAME_SUFFIX_LENGTH


class BadIndexLabel(ValueError):
    """An index label is present but is not a non-negative integer."""


@dataclasses.dataclass(frozen=True)
class PodIndex:
    """The pod's position among the partition's pods, and the labels it came from (for messages)."""

    value: int
    source: str  # e.g. "batch.kubernetes.io/job-completion-index=3"


@dataclasses.dataclass(frozen=True)
class PodRequest:
    """One pod asking for a slot."""

    pod: str  # the pod's name (chosen at admission when it came with generateName only)
    devices: int | None  # devices of the profile's resource the pod requests; None: it requests none
    index: PodIndex | None  # None: the next free slot in rank order
    dry_run: bool = False  # a dry-run admission: decide, but claim nothing


def in_namespace(pod: JSON, request: Mapping[str, Any]) -> JSON:
    """The pod with the review's namespace when its object has none (kube fills `request.namespace`)."""
    metadata = pod.get("metadata") or {}
    if metadata.get("namespace") or not request.get("namespace"):
        return pod
    return {**pod, "metadata": {**metadata, "namespace": request["namespace"]}}


def generated_name(generate_name: str) -> str:
    """A name as kube-apiserver generates it from `generateName`."""
    prefix = generate_name[:MAX_GENERATE_NAME_PREFIX]
    return prefix + "".join(secrets.choice(NAME_ALPHABET) for _ in range(NAME_SUFFIX_LENGTH))


def _number(labels: Mapping[str, str], key: str) -> int | None:
    raw = labels.get(key)
    if raw is None:
        return None
    text = str(raw).strip()
    if not text.isdecimal():
        raise BadIndexLabel(f"label {key}={raw!r} is not a non-negative integer")
    return int(text)


def pod_index(labels: Mapping[str, str], slot_count: int) -> PodIndex | None:
    """The pod's index from its workload controller's labels (see the module docstring), or None."""
    completion = _number(labels, JOB_COMPLETION_INDEX)
    job = _number(labels, JOBSET_GLOBAL_INDEX)
    job_label = JOBSET_GLOBAL_INDEX
    if job is None:
        job, job_label = _number(labels, JOBSET_JOB_INDEX), JOBSET_JOB_INDEX
    if job is not None:
        jobs = _number(labels, JOBSET_GLOBAL_REPLICAS)
        if jobs is None:
            jobs = _number(labels, JOBSET_REPLICAS)
        if jobs and slot_count % jobs == 0:
            per_job = slot_count // jobs
            value = job * per_job + (completion or 0)
            return PodIndex(
                value, f"{job_label}={job} x {per_job} pods per job + completion index {completion or 0}"
            )
    if completion is not None:
        return PodIndex(completion, f"{JOB_COMPLETION_INDEX}={completion}")
    stateful = _number(labels, POD_INDEX)
    if stateful is not None:
        return PodIndex(stateful, f"{POD_INDEX}={stateful}")
    replica = _number(labels, PYTORCH_REPLICA_INDEX)
    if replica is not None:
        kind = str(labels.get(PYTORCH_REPLICA_TYPE, "worker")).lower()
        value = 0 if kind == "master" else replica + 1
        return PodIndex(value, f"{PYTORCH_REPLICA_TYPE}={kind}, {PYTORCH_REPLICA_INDEX}={replica}")
    return None


def _quantity(value: Any) -> int:
    """An extended-resource quantity: a whole number (kube refuses fractions for extended resources)."""
    text = str(value).strip()
    if not text.isdecimal():
        raise ValueError(f"{value!r} is not a whole number of devices")
    return int(text)


def requested_devices(pod: Mapping[str, Any], resource: str) -> int | None:
    """Devices of `resource` the pod needs at once (limits, else requests), as the scheduler counts them; None
    when no container asks.

    The app containers add up, with the sidecars (init containers with `restartPolicy: Always`), which run
    beside them; a plain init container runs alone, beside only the sidecars started before it, so the pod
    needs the largest of those sums: kube's effective request.
    """
    spec = pod.get("spec") or {}
    asked = False

    def devices_of(container: Mapping[str, Any]) -> int:
        nonlocal asked
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if resource in limits:
            asked = True
            return _quantity(limits[resource])
        if resource in requests:
            asked = True
            return _quantity(requests[resource])
        return 0

    sidecars = init_peak = 0
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":
            sidecars += devices_of(container)
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + devices_of(container))
    running = sidecars + sum(devices_of(container) for container in spec.get("containers") or [])
    return max(running, init_peak) if asked else None
