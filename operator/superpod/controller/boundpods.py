"""What may happen to a pod bound to a partition after the webhook bound it: pure decisions.

A bound pod carries its slot in three places the scheduler, the kubelet and the device plugin read: the
device annotation (`huawei.com/Ascend910: "Ascend910-0,..."`), the required node affinity to the slot's node,
and the toleration of the isolation taint; and its partition in the label `superpod.dev/partition`, by which
the operator follows it. While the pod is not finished (phase neither Succeeded nor Failed):

- `create_refusal`: the pod as it is finally created (after every mutating webhook) must carry its slot:
  the slot's devices in the annotation, the node pinned, the toleration, and no `spec.nodeName` of another
  node;
- `update_refusal`: an update may not change the partition label, the device annotations, the node affinity,
  or drop the toleration (kube lets an update change annotations and labels at any time, and the affinity of
  a pod held by scheduling gates: each would move the pod off its slot or out of the operator's sight);
- `join_refusal`: a pod joins a partition only when it is created (its slot is claimed then), never by an
  update that adds the label;
- `binding_refusal`: a `pods/binding` must name the node the pod is pinned to (a scheduler other than
  kube-scheduler may bind anywhere, and the device plugin would hand out the annotated devices of that node).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from superpod.api import common
from superpod.api import superpod as api_superpod
from superpod.cluster import podplacement

JSON = dict[str, Any]
FINISHED = frozenset({"Succeeded", "Failed"})
AGAIN = "delete the pod and create it again to be bound anew"


def is_bound(pod: Mapping[str, Any] | None) -> bool:
    """Whether the pod belongs to a partition and still runs or waits to (its slot is held for it)."""
    if not pod:
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return common.PARTITION_LABEL in labels and (pod.get("status") or {}).get("phase") not in FINISHED


def _describe(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    partition = (metadata.get("labels") or {}).get(common.PARTITION_LABEL)
    return f"pod {metadata.get('name')} of partition {partition}"


def _affinity(pod: Mapping[str, Any]) -> Any:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity")


def create_refusal(pod: Mapping[str, Any], slot: Mapping[str, Any] | None, resource: str) -> str | None:
    """Why the bound pod may not be created as it is (`slot`: the slot recorded for it, None: none is)."""
    who = _describe(pod)
    if slot is None:
        return f"{who} holds no slot of its partition (it was not bound at admission); create it again"
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    devices = ",".join(slot["devices"])
    if annotations.get(resource) != devices:
        return (
            f"{who} is bound to devices {devices} of node {slot['node']}, but its {resource} annotation says "
            f"{annotations.get(resource)!r} (changed after the binding?); {AGAIN}"
        )
    node = (pod.get("spec") or {}).get("nodeName")
    if node and node != slot["node"]:
        return f"{who} is bound to node {slot['node']} but sets spec.nodeName {node}; remove spec.nodeName"
    if podplacement.pinned_node(pod) != slot["node"]:
        return f"{who} is bound to node {slot['node']}, but its node affinity does not pin it there; {AGAIN}"
    if not podplacement.tolerates(pod, api_superpod.ISOLATION_TAINT, "NoSchedule"):
        return f"{who} lacks the toleration of {api_superpod.ISOLATION_TAINT} the webhook adds; {AGAIN}"
    return None


def update_refusal(
    old: Mapping[str, Any], new: Mapping[str, Any], device_keys: Collection[str]
) -> str | None:
    """Why an update of a bound pod (`old` bound) is refused, or None."""
    who = _describe(old)
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    label = (old_meta.get("labels") or {}).get(common.PARTITION_LABEL)
    if (new_meta.get("labels") or {}).get(common.PARTITION_LABEL) != label:
        return (
            f"{who} runs bound to a slot: its label {common.PARTITION_LABEL} cannot change or go until the "
            f"pod finishes (the operator follows the pod by it); delete the pod to give its slot back"
        )
    old_annotations, new_annotations = old_meta.get("annotations") or {}, new_meta.get("annotations") or {}
    for key in sorted(device_keys):
        if old_annotations.get(key) != new_annotations.get(key):
            return f"{who} is bound to the devices of its {key} annotation, which cannot change; {AGAIN}"
    if _affinity(old) != _affinity(new):
        return f"{who} is pinned to its slot's node by its node affinity, which cannot change; {AGAIN}"
    was = podplacement.tolerates(old, api_superpod.ISOLATION_TAINT, "NoSchedule")
    if was and not podplacement.tolerates(new, api_superpod.ISOLATION_TAINT, "NoSchedule"):
        return f"{who} keeps the toleration of {api_superpod.ISOLATION_TAINT} the webhook added; {AGAIN}"
    return None


def join_refusal(pod: Mapping[str, Any]) -> str:
    """Why an update may not add the partition label to a pod."""
    return (
        f"pod {(pod.get('metadata') or {}).get('name')}: the label {common.PARTITION_LABEL} can only be set when "
        f"a pod is created (its slot is claimed then); create a new pod with the label instead"
    )


def binding_refusal(pod: Mapping[str, Any], node: str) -> str | None:
    """Why binding the bound pod to `node` is refused, or None."""
    pinned = podplacement.pinned_node(pod)
    if pinned is None:
        return (
            f"{_describe(pod)} was never bound to a slot (created before the webhook ran?); create it again"
        )
    if pinned != node:
        return f"{_describe(pod)} is bound to node {pinned} (its slot's); it may not be bound to node {node}"
    return None
