"""The changes the admission webhook makes to a pod bound to a slot: a pure function of the pod and the slot.

- `metadata.name`, when the pod came with `generateName` only (see `podrequest`);
- required node affinity to the slot's node (`matchFields metadata.name In [node]`, as the DaemonSet controller
  pins pods), added to every existing node selector term, since terms are ORed;
- the toleration of the isolation taint `superpod.dev/partitions-only` (NoSchedule, any value), which the
  operator keeps on the member nodes of SuperPods with `isolation: Partitions`: only bound pods get it;
- the annotation `<resource>: "<device>,<device>,..."` (for example `huawei.com/Ascend910: "Ascend910-0,
  Ascend910-1"`), which the Ascend device plugin reads at Allocate to hand out exactly these devices;
- the device request and limit (the slot size) on the first container when no container asks for the resource,
  and the limit where a container set only the request (kube requires limits for extended resources);
- env `RANK` (the slot's first rank), `WORLD_SIZE` (the partition's devices) and `RANK_TABLE_FILE` in every
  container, first in its list (so its own variables may use `$(RANK)`), replacing values of the same names;
- the rank table ConfigMap as a volume, mounted read-only at /user/serverid/devindex/config, where MindCluster's
  ascend-operator mounts `rings-config-<job>` (HCCL reads hccl.json there).

`apply` mutates a pod in place; `json_patch` gives the same change as the RFC 6902 operations the webhook
answers with. Each changed field is written whole (`add` replaces an existing member), which kube-apiserver
applies exactly like a minimal diff, at a fraction of the cost of deep-copying and diffing the pod.
"""

from __future__ import annotations

import copy
import dataclasses

from superpod.api import common
from superpod.api import superpod as api_superpod

JSON = common.JSON

RANK_TABLE_DIR = "/user/serverid/devindex/config"
RANK_TABLE_FILE = f"{RANK_TABLE_DIR}/hccl.json"
RANK_TABLE_VOLUME = "superpod-rank-table"
BOUND_ENV = ("RANK", "WORLD_SIZE", "RANK_TABLE_FILE")
TOLERATION = {"key": api_superpod.ISOLATION_TAINT, "operator": "Exists", "effect": "NoSchedule"}
# the fields `apply` may change, in the order the patch writes them
CHANGED_FIELDS = (
    ("metadata", "name"),
    ("metadata", "annotations"),
    ("spec", "affinity"),
    ("spec", "tolerations"),
    ("spec", "containers"),
    ("spec", "volumes"),
)


@dataclasses.dataclass(frozen=True)
class Binding:
    """What binding a pod to a slot injects."""

    name: str | None  # the pod's name to set (None: it has one)
    node: str
    devices: tuple[str, ...]  # device-plugin names, in rank order
    rank: int  # the slot's first rank
    world_size: int  # the partition's devices
    resource: str  # the profile's extended resource, e.g. huawei.com/Ascend910
    rank_table: str | None  # ConfigMap name; None where the profile has no rank table


def apply(pod: JSON, binding: Binding) -> None:
    """Mutate `pod` (an AdmissionReview object) in place."""
    metadata = pod.setdefault("metadata", {})
    if binding.name and not metadata.get("name"):
        metadata["name"] = binding.name
    annotations = metadata.get("annotations") or {}
    metadata["annotations"] = {**annotations, binding.resource: ",".join(binding.devices)}
    spec = pod.setdefault("spec", {})
    _pin_node(spec, binding.node)
    tolerations = spec.get("tolerations") or []
    if TOLERATION not in tolerations:
        spec["tolerations"] = [*tolerations, dict(TOLERATION)]
    containers = spec.get("containers") or []
    _request_devices(containers, binding.resource, len(binding.devices))
    env = [
        {"name": "RANK", "value": str(binding.rank)},
        {"name": "WORLD_SIZE", "value": str(binding.world_size)},
    ]
    if binding.rank_table:
        env.append({"name": "RANK_TABLE_FILE", "value": RANK_TABLE_FILE})
        _mount_rank_table(spec, containers, binding.rank_table)
    for container in containers:
        kept = [item for item in container.get("env") or [] if item.get("name") not in BOUND_ENV]
        # first, so the container's own variables can refer to them (kubelet expands `$(RANK)` only from
        # variables defined before it)
        container["env"] = [dict(item) for item in env] + kept


def json_patch(pod: JSON, binding: Binding) -> list[JSON]:
    """JSON Patch operations turning `pod` into what `apply` makes of it; `pod` itself is left unchanged."""
    metadata = dict(pod.get("metadata") or {})
    spec = dict(pod.get("spec") or {})
    # copies of exactly what `apply` changes in place: it assigns new values to every other field it touches
    if "affinity" in spec:
        spec["affinity"] = copy.deepcopy(spec["affinity"])
    if "containers" in spec:
        spec["containers"] = [dict(container) for container in spec["containers"] or []]
    bound = {**pod, "metadata": metadata, "spec": spec}
    apply(bound, binding)
    operations: list[JSON] = []
    for section in ("metadata", "spec"):
        if section not in pod:
            operations.append({"op": "add", "path": f"/{section}", "value": bound[section]})
    for section, field in CHANGED_FIELDS:
        old, new = (pod.get(section) or {}).get(field), bound[section].get(field)
        if section in pod and field in bound[section] and new != old:
            operations.append({"op": "add", "path": f"/{section}/{field}", "value": new})
    return operations


def _pin_node(spec: JSON, node: str) -> None:
    requirement = {"key": "metadata.name", "operator": "In", "values": [node]}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        fields = [field for field in term.get("matchFields") or [] if field != requirement]
        term["matchFields"] = [*fields, requirement]
    required["nodeSelectorTerms"] = terms


def _request_devices(containers: list[JSON], resource: str, count: int) -> None:
    asked = False
    for container in containers:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if resource in limits or resource in requests:
            asked = True
            if resource not in limits:
                container["resources"] = {**resources, "limits": {**limits, resource: requests[resource]}}
    if not asked and containers:
        first = containers[0]
        resources = first.get("resources") or {}
        first["resources"] = {
            **resources,
            "limits": {**(resources.get("limits") or {}), resource: str(count)},
            "requests": {**(resources.get("requests") or {}), resource: str(count)},
        }


def _mount_rank_table(spec: JSON, containers: list[JSON], configmap: str) -> None:
    volumes = [volume for volume in spec.get("volumes") or [] if volume.get("name") != RANK_TABLE_VOLUME]
    spec["volumes"] = [*volumes, {"name": RANK_TABLE_VOLUME, "configMap": {"name": configmap}}]
    mount = {"name": RANK_TABLE_VOLUME, "mountPath": RANK_TABLE_DIR, "readOnly": True}
    for container in containers:
        mounts = [
            item
            for item in container.get("volumeMounts") or []
            if item.get("name") != RANK_TABLE_VOLUME and item.get("mountPath") != RANK_TABLE_DIR
        ]
        container["volumeMounts"] = [*mounts, dict(mount)]
