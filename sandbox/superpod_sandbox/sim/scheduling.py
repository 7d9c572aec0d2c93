"""Where a pod may run and which devices it gets: the scheduler and device-plugin decisions, pure.

Binding (only where no scheduler runs, as in the sandbox) honours `spec.nodeName`, `spec.nodeSelector`,
required node affinity (`nodeSelectorTerms`: terms are ORed, each term's `matchExpressions` on labels with In,
NotIn, Exists, DoesNotExist, Gt, Lt and `matchFields` on `metadata.name` with In and NotIn are ANDed), taints
with NoSchedule/NoExecute effects against the pod's tolerations, Ready, and device capacity. Among the nodes
that fit it picks the one with the fewest free devices that still hold the pod (bin packing, like the
MostAllocated scoring a device scheduler uses), then by name.

Allocate, as the Ascend device plugin does it in Volcano mode, and only for a pod that requests the resource
(kubelet calls the plugin for those alone; an annotation on a pod that requests none gets it nothing): the
devices named in the pod annotation
`<resource>` (for example `huawei.com/Ascend910: "Ascend910-0,Ascend910-1"`) when present, else free devices
chosen with the profile's per-node rule (whole HiAM pairs on A3, one HCCS ring on 910A). A device already used
by another pod, unhealthy or recovering refuses the allocation; the reason is returned as data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from superpod.topology import noderules

from superpod_sandbox.sim import layout

JSON = dict[str, Any]

ACTIVE_PHASES = frozenset({"Pending", "Running", "Unknown"})


def requested_devices(pod: Mapping[str, Any], resource: str) -> int:
    """Devices the pod asks for: the sum over containers (limits, else requests), at least the init maximum."""
    spec = pod.get("spec") or {}

    def amount(container: Mapping[str, Any]) -> int:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(
            resource, (resources.get("requests") or {}).get(resource, 0)
        )
        return int(str(value))

    regular = sum(amount(container) for container in spec.get("containers") or [])
    init = max((amount(container) for container in spec.get("initContainers") or []), default=0)
    return max(regular, init)


def is_active(pod: Mapping[str, Any]) -> bool:
    """Whether the pod holds its devices: not finished and not yet deleted from the API."""
    return (pod.get("status") or {}).get("phase", "Pending") in ACTIVE_PHASES


def _expression_matches(expression: Mapping[str, Any], value: str | None) -> bool:
    operator = expression.get("operator")
    values = [str(item) for item in expression.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    metadata = node.get("metadata") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term matches no objects (kube-scheduler semantics)
    for expression in expressions:
        if not _expression_matches(expression, labels.get(str(expression.get("key")))):
            return False
    for field in fields:
        if field.get("key") != "metadata.name":
            return False
        if not _expression_matches(field, str(metadata.get("name"))):
            return False
    return True


def _tolerated(taint: Mapping[str, Any], tolerations: Sequence[Mapping[str, Any]]) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration.get("key") == taint.get("key"):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def node_mismatch(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why the pod cannot go to this node by its constraints (None: it may), ignoring devices."""
    spec = pod.get("spec") or {}
    name = str((node.get("metadata") or {}).get("name"))
    labels: Mapping[str, str] = (node.get("metadata") or {}).get("labels") or {}
    if spec.get("nodeName") and spec["nodeName"] != name:
        return "spec.nodeName names another node"
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return f"node(s) didn't match Pod's node selector ({key})"
    required = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required is not None and not any(_term_matches(term, node) for term in required):
        return "node(s) didn't match Pod's node affinity/selector"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, tolerations):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") != "True":
            return "node(s) were not ready"
    return None


@dataclasses.dataclass(frozen=True)
class NodeView:
    """One node as the binder and the allocator see it."""

    node: JSON  # the Node object
    sim: layout.SimNode
    usable: frozenset[str]  # devices whose chip is healthy (not unhealthy, not recovering)
    in_use: frozenset[str]  # devices active pods hold (their AscendReal annotation)
    promised: int  # devices requested by active pods bound here but not yet allocated

    @property
    def free(self) -> frozenset[str]:
        return self.usable - self.in_use

    @property
    def free_count(self) -> int:
        return len(self.free) - self.promised


def choose_node(pod: Mapping[str, Any], views: Iterable[NodeView], resource: str) -> tuple[str | None, str]:
    """The node to bind the pod to, or None and the reason (sorted, so it reads the same every run)."""
    wanted = requested_devices(pod, resource)
    fitting: list[tuple[int, str]] = []
    reasons: dict[str, int] = {}
    for view in views:
        problem = node_mismatch(pod, view.node)
        if problem is None and view.free_count < wanted:
            problem = f"Insufficient {resource}"
        if problem is None:
            fitting.append((view.free_count, view.sim.name))
        else:
            reasons[problem] = reasons.get(problem, 0) + 1
    if fitting:
        return min(fitting)[1], ""
    total = sum(reasons.values())
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return None, f"0/{total} nodes are available: {detail}." if total else "no simulated nodes"


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The device plugin's answer to Allocate: the devices, or why it failed."""

    devices: tuple[str, ...] = ()
    error: str = ""


def allocate(
    pod: Mapping[str, Any],
    view: NodeView,
    resource: str,
    rule: noderules.NodeRule,
    holders: Mapping[str, str] | None = None,
) -> Allocation:
    """Which devices the pod gets on this node (`holders`: device -> the pod key holding it, for messages)."""
    wanted = requested_devices(pod, resource)
    if wanted == 0:  # kubelet calls Allocate only for containers that request the resource
        return Allocation()
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    pinned = [name.strip() for name in annotations.get(resource, "").split(",") if name.strip()]
    holders = holders or {}
    if pinned:
        if len(pinned) != wanted:
            return Allocation(
                error=f"annotation {resource} names {len(pinned)} devices, the pod requests {wanted}"
            )
        for name in pinned:
            if name not in view.sim.devices:
                return Allocation(error=f"device {name} does not exist on node {view.sim.name}")
            if name in view.in_use:
                holder = holders.get(name, "another pod")
                return Allocation(error=f"device {name} is already in use by {holder}")
            if name not in view.usable:
                return Allocation(error=f"device {name} is unhealthy")
        return Allocation(devices=tuple(sorted(pinned, key=layout.device_index)))
    free_mask = 0
    for index, name in enumerate(view.sim.devices):
        if name in view.free:
            free_mask |= 1 << index
    modules = rule.modules(len(view.sim.devices))
    mask = noderules.pick(rule, modules, free_mask, wanted) if rule.allows(wanted) else 0
    if not mask and len(view.free) >= wanted:
        mask = _lowest(
            free_mask, wanted
        )  # a size the profile's rule forbids: kubelet still hands devices out
    if not mask:
        return Allocation(error=f"requested {wanted} {resource}, {len(view.free)} free and healthy")
    return Allocation(devices=tuple(name for index, name in enumerate(view.sim.devices) if mask >> index & 1))


def _lowest(mask: int, count: int) -> int:
    out = 0
    while count and mask:
        low = mask & -mask
        out |= low
        mask ^= low
        count -= 1
    return out if count == 0 else 0
