"""Reading MindCluster NodeD's per-node ConfigMap, `mindx-dl/mindx-dl-nodeinfo-<node>`, when NodeD runs.

NodeD reports node-level hardware faults (CPU, memory, disk, shared storage, UB network) under the key
`NodeInfo`: `{"FaultDevList": [{"DeviceType", "DeviceId", "FaultCode", "FaultLevel"}], "NodeStatus": ...}`,
where NodeStatus is the worst fault's verdict: Healthy (NotHandleFault at most), PreSeparate (no new work on the
node) or UnHealthy (SeparateFault: move work off the node now).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

NAMESPACE = "mindx-dl"
NAME_PREFIX = "mindx-dl-nodeinfo-"
DATA_KEY = "NodeInfo"
HEALTHY = "Healthy"


@dataclasses.dataclass(frozen=True)
class NodeHealth:
    node: str
    status: str  # Healthy, PreSeparate or UnHealthy
    faults: tuple[str, ...]  # "<DeviceType> <DeviceId>: <FaultCode> (<FaultLevel>)"

    @property
    def out_of_service(self) -> bool:
        """The node takes no new partitions (PreSeparate) or must be vacated (UnHealthy)."""
        return self.status in ("PreSeparate", "UnHealthy")


def compact(configmap: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a NodeD ConfigMap the operator reads (`parse`): name, namespace, resourceVersion and the
    `NodeInfo` document."""
    metadata = configmap.get("metadata") or {}
    data = configmap.get("data") or {}
    return {
        "metadata": {
            key: metadata[key] for key in ("name", "namespace", "resourceVersion") if key in metadata
        },
        "data": {key: data[key] for key in (DATA_KEY,) if key in data},
    }


def node_of(configmap_name: str) -> str | None:
    return configmap_name[len(NAME_PREFIX) :] if configmap_name.startswith(NAME_PREFIX) else None


def parse(configmap: Mapping[str, Any]) -> NodeHealth | None:
    """The node's health, or None when the ConfigMap is not NodeD's or unreadable (NodeD is optional)."""
    name = str((configmap.get("metadata") or {}).get("name", ""))
    node = node_of(name)
    raw = (configmap.get("data") or {}).get(DATA_KEY)
    if node is None or not raw:
        return None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    info = document.get("NodeInfo", document) if isinstance(document.get("NodeInfo"), dict) else document
    faults = []
    for entry in info.get("FaultDevList") or []:
        if isinstance(entry, dict):
            codes = entry.get("FaultCode")
            code = ",".join(map(str, codes)) if isinstance(codes, list) else str(codes or "")
            faults.append(
                f"{entry.get('DeviceType', '?')} {entry.get('DeviceId', '?')}: {code} ({entry.get('FaultLevel', '?')})"
            )
    return NodeHealth(node=node, status=str(info.get("NodeStatus") or HEALTHY), faults=tuple(faults))
