"""From Kubernetes objects to the allocator's view of a node: membership, devices, health, coordinates.

Sources, in the device plugin's own terms (never another source of truth):
- the Node: labels `huawei.com/topotree.superpodid|rackid|serverid`, annotations `superPodID`/`serverIndex`, the
  Ready condition, and `status.allocatable[<resource>]`; on GB200, GPU feature discovery's
  `nvidia.com/gpu.clique` names the node's NVLink domain (its rack);
- the ConfigMap `kube-system/mindx-dl-deviceinfo-<node>` (see `cluster.deviceinfo`): device names, health,
  faults and the SuperPodID/ServerIndex/RackID coordinates, which win over the labels when known, and the UB
  switch state (`SwitchInfoCfg`): a switch fault that makes the node UnHealthy takes all its devices out of
  service (their UB links are gone); a lesser one is reported only;
- NodeD's `mindx-dl/mindx-dl-nodeinfo-<node>` when NodeD runs: a node it marks PreSeparate or UnHealthy takes no
  new partitions and its partitions are repaired off it.

Only devices a node of the profile can have are accepted (`<prefix><n>`, n below the profile's devices per
node, no more of them than that in the Node's capacity): a node whose device information names others, or whose
ConfigMap is malformed, is left out with the problem `DeviceInfoInvalid`, its message quoting the offending
names, as the device plugin's data cannot be trusted for placement.

A device leaves the free pool when the device plugin lists it Unhealthy, NetworkUnhealthy or Recovering, or when a
fault asks for separation (SeparateNPU, PreSeparateNPU, ...); NotHandleFault and RestartRequest faults are only
reported. A node without a device-info ConfigMap (GB200, or a plugin that has not published yet) takes its device
count from allocatable and the profile's device names.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping

from superpod.api import common, reasons
from superpod.api import superpod as api_superpod
from superpod.cluster import deviceinfo, nodeinfo, selectors
from superpod.topology import inventory, profiles

JSON = common.JSON

SUPERPOD_LABEL = "huawei.com/topotree.superpodid"
RACK_LABEL = "huawei.com/topotree.rackid"
SERVER_LABEL = "huawei.com/topotree.serverid"
CLIQUE_LABEL = "nvidia.com/gpu.clique"
"""GPU feature discovery's NVLink domain of a GB200 node, `<ClusterUUID>.<CliqueId>`: its rack, by name."""
DEVICE_INFO_INVALID = reasons.NodeProblemReason.DEVICE_INFO_INVALID
"""Reason of a node left out because its device information is unusable: a malformed ConfigMap, device names
the profile's nodes cannot have, or more devices than such a node has."""
MAX_NAMED = 10  # device names quoted in a message
NODE_ANNOTATIONS = ("superPodID", "serverIndex")
"""The Node annotations the inventory reads (the device plugin's coordinates); a Node's other annotations are
not kept (`compact_node`)."""
REPORT_ONLY_FAULTS = frozenset({"", "NotHandleFault", "RestartRequest", "RestartBusiness", "SubHealthFault"})
"""Fault handling levels that leave the device in service (reported in status and metrics only)."""


@dataclasses.dataclass(frozen=True)
class NodeProblem:
    """Why a member node was left out or is degraded, for a condition and an Event."""

    node: str
    reason: str  # CamelCase, for example DeviceInfoInvalid
    message: str


def is_member(node: JSON, spec: api_superpod.SuperPodSpec) -> bool:
    """Whether a Node belongs to the SuperPod described by `spec`."""
    labels: Mapping[str, str] = node.get("metadata", {}).get("labels") or {}
    if spec.super_pod_id is not None and labels.get(SUPERPOD_LABEL) != str(spec.super_pod_id):
        return False
    return selectors.matches(spec.node_selector, labels)


def by_superpod_id(nodes: Mapping[str, JSON]) -> dict[str, dict[str, JSON]]:
    """The nodes grouped by their `SUPERPOD_LABEL` value (nodes without it in none): read once for a pass over
    many SuperPods (`member_candidates`), instead of every node once for each SuperPod."""
    grouped: dict[str, dict[str, JSON]] = {}
    for name, node in nodes.items():
        value = ((node.get("metadata") or {}).get("labels") or {}).get(SUPERPOD_LABEL)
        if value is not None:
            grouped.setdefault(value, {})[name] = node
    return grouped


def member_candidates(
    spec: api_superpod.SuperPodSpec, nodes: Mapping[str, JSON], grouped: Mapping[str, Mapping[str, JSON]]
) -> Mapping[str, JSON]:
    """The nodes among which `is_member` can find the SuperPod's members: with a `superPodID`, only the nodes
    labelled with it (`grouped`: `by_superpod_id(nodes)`); without one, every node."""
    if spec.super_pod_id is None:
        return nodes
    return grouped.get(str(spec.super_pod_id), {})


def compact_node(node: JSON) -> JSON:
    """The part of a Node the operator reads, in the Node's own shape (the mirror keeps this, not the Node).

    Kept: name, resourceVersion and labels (membership, `is_member`; admission's node selection,
    `podplacement.may_run_on`), `NODE_ANNOTATIONS` and the extended resources of `status.capacity` and
    `status.allocatable` (`observe`), the Ready condition's status (`_is_ready`), and `spec.taints` whole (the
    isolation taint loop writes the list back, `nodetaints`). Dropped: managedFields, images, addresses,
    nodeInfo, the other conditions and every heartbeat time, which were nine tenths of a decoded Node (11 KB).
    Label and resource names are interned: every Node repeats the same few keys.
    """
    metadata = node.get("metadata") or {}
    kept: JSON = {"name": metadata.get("name"), "resourceVersion": metadata.get("resourceVersion")}
    labels = metadata.get("labels")
    if labels:
        kept["labels"] = {sys.intern(key): _interned(value) for key, value in labels.items()}
    annotations = metadata.get("annotations") or {}
    mine = {key: str(annotations[key]) for key in NODE_ANNOTATIONS if key in annotations}
    if mine:
        kept["annotations"] = mine
    compact: JSON = {"metadata": kept}
    taints = (node.get("spec") or {}).get("taints")
    if taints:
        compact["spec"] = {"taints": taints}
    status = node.get("status") or {}
    reduced: JSON = {}
    for field in ("capacity", "allocatable"):
        extended = {sys.intern(k): _interned(v) for k, v in (status.get(field) or {}).items() if "/" in k}
        if extended:
            reduced[field] = extended
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is not None:
        reduced["conditions"] = [{"type": "Ready", "status": _interned(ready.get("status"))}]
    if reduced:
        compact["status"] = _shared_status(reduced)
    return compact


_STATUSES: dict[tuple[object, ...], JSON] = {}
SHARED_STATUSES = 4096  # distinct reduced statuses shared between Nodes, at most


def _shared_status(status: JSON) -> JSON:
    """One object for every Node whose reduced status is the same (a fleet's healthy nodes all have one):
    most of a reduced Node was the small dicts of its status. Never changed in place (nobody writes into the
    mirror's Nodes)."""
    key = (
        tuple(sorted((status.get("capacity") or {}).items())),
        tuple(sorted((status.get("allocatable") or {}).items())),
        tuple(c.get("status") for c in status.get("conditions") or []),
    )
    shared = _STATUSES.get(key)
    if shared is not None:
        return shared
    if len(_STATUSES) < SHARED_STATUSES:
        _STATUSES[key] = status
    return status


def _interned(value: object) -> object:
    """Short strings (label values such as a rack's id, "True", a device count) shared between Nodes."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= 64 else value


def _is_ready(node: JSON) -> bool:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _coordinate(known: int, *fallbacks: str | None) -> int:
    if known >= 0:
        return known
    for value in fallbacks:
        if value is not None and str(value).lstrip("-").isdigit():
            return int(value)
    return inventory.UNKNOWN


def _allocatable(node: JSON, resource: str) -> int:
    return _quantity(node, "allocatable", resource)


def _capacity(node: JSON, resource: str) -> int:
    """Devices the kubelet registered for the resource, healthy or not (allocatable drops unhealthy ones)."""
    return _quantity(node, "capacity", resource) or _allocatable(node, resource)


def _quantity(node: JSON, field: str, resource: str) -> int:
    raw = (node.get("status", {}).get(field) or {}).get(resource, "0")
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _mentioned(info: deviceinfo.DeviceInfo) -> list[str]:
    """Every device name the ConfigMap uses: listed healthy or not, or named by a fault."""
    return [*info.healthy, *sorted(info.devices), *(fault.device for fault in info.faults)]


def _foreign_message(where: str, foreign: tuple[str, ...], profile: profiles.HardwareProfile) -> str:
    shown = ", ".join(repr(name) for name in foreign[:MAX_NAMED])
    more = f" and {len(foreign) - MAX_NAMED} more" if len(foreign) > MAX_NAMED else ""
    first, last = profile.device_names()[0], profile.device_names()[-1]
    return (
        f"{where}: devices a {profile.name} node cannot have: {shown}{more} (its devices are {first} to "
        f"{last}); the node is left out until the device plugin reports it correctly"
    )


def _too_many(name: str, count: int, resource: str, profile: profiles.HardwareProfile) -> NodeProblem:
    return NodeProblem(
        name,
        DEVICE_INFO_INVALID,
        f"node {name} advertises {count} {resource}, more than the {profile.devices_per_node} devices a "
        f"{profile.name} node has; the node is left out until it advertises what it has",
    )


def unavailable_devices(info: deviceinfo.DeviceInfo) -> frozenset[str]:
    """Devices the allocator must not hand out."""
    separated = {fault.device for fault in info.faults if fault.fault_handling not in REPORT_ONLY_FAULTS}
    return info.unhealthy | info.network_unhealthy | info.recovering | separated


def observe(
    node: JSON,
    configmap: JSON | None,
    profile: profiles.HardwareProfile,
    resource: str,
    node_health: nodeinfo.NodeHealth | None = None,
) -> tuple[inventory.ObservedNode | None, NodeProblem | None]:
    """The allocator's view of one member node, and a problem to report if any.

    A malformed device-info ConfigMap leaves the node out (None) with a problem naming the ConfigMap.
    """
    metadata = node.get("metadata", {})
    name = str(metadata["name"])
    labels: Mapping[str, str] = metadata.get("labels") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    info: deviceinfo.DeviceInfo | None = None
    problem: NodeProblem | None = None
    if configmap is not None:
        try:
            info = deviceinfo.parse(configmap, resource)
        except deviceinfo.DeviceInfoError as error:
            return None, NodeProblem(name, DEVICE_INFO_INVALID, str(error))
    if info is not None:
        foreign = inventory.foreign_devices(profile, _mentioned(info))
        if foreign:
            where = f"ConfigMap {deviceinfo.NAMESPACE}/{deviceinfo.configmap_name(name)}"
            return None, NodeProblem(name, DEVICE_INFO_INVALID, _foreign_message(where, foreign, profile))
        capacity = _capacity(node, resource)
        if capacity > profile.devices_per_node:
            return None, _too_many(name, capacity, resource, profile)
        # The plugin lists only *free* healthy devices (used ones vanish from DeviceList), so the node's full
        # set is its capacity, named as the profile names devices, plus whatever the ConfigMap mentions.
        listed = set(info.devices)
        named = profile.device_names(capacity) if capacity else ()
        devices = tuple(sorted(listed | set(named), key=deviceinfo.device_index))
        unhealthy = unavailable_devices(info)
        if info.switch is not None and info.switch.fault_codes:
            codes = ", ".join(info.switch.fault_codes)
            if info.switch.out_of_service:
                unhealthy = frozenset(devices)
                problem = NodeProblem(
                    name,
                    reasons.NodeProblemReason.UB_SWITCH_FAULT,
                    f"node {name}: UB switch fault {codes} (level {info.switch.fault_level}); its devices are out of service",
                )
            else:
                problem = NodeProblem(
                    name,
                    reasons.NodeProblemReason.UB_SWITCH_DEGRADED,
                    f"node {name}: UB switch fault {codes} (level {info.switch.fault_level})",
                )
        super_pod_id, rack, server = info.super_pod_id, info.rack_id, info.server_index
    else:
        count = _allocatable(node, resource)
        if count == 0:
            return None, NodeProblem(
                name, reasons.NodeProblemReason.NO_DEVICES, f"node {name} advertises no {resource}"
            )
        if max(count, _capacity(node, resource)) > profile.devices_per_node:
            return None, _too_many(name, max(count, _capacity(node, resource)), resource, profile)
        devices = profile.device_names(count)
        unhealthy = frozenset()
        super_pod_id = rack = server = inventory.UNKNOWN
    if node_health is not None and node_health.out_of_service:
        unhealthy = frozenset(devices)
        faults = "; ".join(node_health.faults) or "no fault list"
        problem = NodeProblem(
            name,
            reasons.NodeProblemReason.noded(node_health.status),
            f"NodeD reports node {name} {node_health.status}: {faults}",
        )
    ready = _is_ready(node)
    if not ready and problem is None:
        problem = NodeProblem(
            name,
            reasons.NodeProblemReason.NODE_NOT_READY,
            f"node {name} is not Ready; its devices are out of service",
        )
    observed = inventory.ObservedNode(
        name=name,
        superpod_index=_coordinate(super_pod_id, labels.get(SUPERPOD_LABEL), annotations.get("superPodID")),
        rack=_coordinate(rack, labels.get(RACK_LABEL)),
        server_index=_coordinate(server, annotations.get("serverIndex"), labels.get(SERVER_LABEL)),
        devices=devices,
        unhealthy=unhealthy,
        ready=ready,
        rack_label=labels.get(CLIQUE_LABEL, ""),
    )
    return observed, problem
