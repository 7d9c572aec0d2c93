"""Which pods without a partition are refused at admission for reaching into an isolated SuperPod: pure.

A SuperPod with `spec.isolation: Partitions` keeps its member nodes for the pods of its partitions: the
operator taints them `superpod.dev/partitions-only=<SuperPod>:NoSchedule` and the mutating webhook gives the
toleration to partition pods only. A pod without the `superpod.dev/partition` label is refused when it
*wants* the SuperPod's devices and can *reach* its nodes despite the taint:

- wants: it requests the SuperPod's device resource (`huawei.com/Ascend910: 16`), or names devices in the
  device plugin's annotation of that name (`huawei.com/Ascend910: "Ascend910-0,..."`);
- reaches: it tolerates the taint (a toleration with its key, or a wildcard `operator: Exists`); or its
  `spec.nodeName` is a member node (which skips the scheduler, and so the taint); or its node selector and
  required node affinity admit member nodes only (it would wait forever: refused with the reason instead).

Everything else passes: pods that want no such device (DaemonSets tolerating every taint), pods that can
run on non-member nodes (the taint keeps them off the members), other device resources, SuperPods with
`isolation: None`. On UPDATE a pod is refused only for what the update adds: a pod that ran on member nodes
before isolation was turned on may still be labelled or annotated by its controllers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from superpod.api import common
from superpod.api import superpod as api_superpod
from superpod.cluster import podplacement
from superpod.controller import podrequest

JSON = dict[str, Any]
NAMED_NODES = 3  # member nodes named in a message


@dataclasses.dataclass(frozen=True)
class IsolatedSuperPod:
    """A SuperPod whose member nodes are for partition pods only."""

    name: str
    resource: str  # its device resource, also the device plugin's annotation key
    members: frozenset[str]  # member node names


def _name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("name") or f"{metadata.get('generateName', '')}<generated>")


def wanted(pod: Mapping[str, Any], resource: str) -> str | None:
    """How the pod asks for devices of `resource` (for a message), or None when it does not."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get(resource) or "").strip():
        return f"names devices in its {resource} annotation"
    try:
        count = podrequest.requested_devices(pod, resource)
    except ValueError:  # not a whole number: kube refuses the pod anyway; treat it as asking
        return f"asks for {resource}"
    if count:
        return f"asks for {count} {resource}"
    return None


def _nodes(names: Iterable[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:NAMED_NODES])
    return shown + (f" and {len(ordered) - NAMED_NODES} more" if len(ordered) > NAMED_NODES else "")


def reached(
    pod: Mapping[str, Any], superpod: IsolatedSuperPod, nodes: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """How the pod gets onto the SuperPod's member nodes despite the taint (for a message), or None."""
    if podplacement.tolerates(pod, api_superpod.ISOLATION_TAINT, "NoSchedule"):
        return f"tolerates the taint {api_superpod.ISOLATION_TAINT} of its nodes"
    spec = pod.get("spec") or {}
    node_name = spec.get("nodeName")
    if node_name:
        return f"sets spec.nodeName {node_name}, a member node" if node_name in superpod.members else None
    if not podplacement.constrained(pod):
        return None
    admitted = [name for name, node in nodes.items() if podplacement.may_run_on(pod, node)]
    if admitted and all(name in superpod.members for name in admitted):
        return f"selects member nodes only ({_nodes(admitted)}) by its nodeSelector or node affinity"
    return None


def refusal(
    pod: Mapping[str, Any],
    superpods: Sequence[IsolatedSuperPod],
    nodes: Mapping[str, Mapping[str, Any]],
) -> str | None:
    """Why a pod without a partition may not be admitted, or None."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "<namespace>"
    for superpod in superpods:
        want = wanted(pod, superpod.resource)
        if want is None:
            continue
        how = reached(pod, superpod, nodes)
        if how is None:
            continue
        return (
            f"pod {_name(pod)} {want} and {how}, but the devices of SuperPod {superpod.name} are for the pods "
            f"of its partitions only: label the pod {common.PARTITION_LABEL}=<name> with a SuperPodPartition "
            f"of namespace {namespace} (the webhook then binds it to its devices and adds the toleration), or "
            f"remove the {superpod.resource} request and annotation to run elsewhere"
        )
    return None


def update_refusal(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    superpods: Sequence[IsolatedSuperPod],
    nodes: Mapping[str, Mapping[str, Any]],
) -> str | None:
    """Why an update of a pod without a partition is refused, or None (see the module docstring)."""
    refused = refusal(new, superpods, nodes)
    if refused is None or refusal(old, superpods, nodes) is not None:
        return None
    return refused
