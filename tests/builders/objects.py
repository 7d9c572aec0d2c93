"""Builders of Nodes and device-plugin ConfigMaps, shaped as the Ascend device plugin and kubelet write them."""

from __future__ import annotations

import copy
import json
from typing import Any, Self

JSON = dict[str, Any]
RESOURCE = "huawei.com/Ascend910"


class NodeBuilder:
    def __init__(self, name: str) -> None:
        self._obj: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {}, "annotations": {}},
            "status": {"conditions": [], "allocatable": {}, "capacity": {}},
        }

    def label(self, key: str, value: str) -> Self:
        self._obj["metadata"]["labels"][key] = value
        return self

    def annotate(self, key: str, value: str) -> Self:
        self._obj["metadata"]["annotations"][key] = value
        return self

    def superpod(self, superpod_id: int, rack: int = 0, server: int = 0) -> Self:
        return (
            self.label("huawei.com/topotree.superpodid", str(superpod_id))
            .label("huawei.com/topotree.rackid", str(rack))
            .label("huawei.com/topotree.serverid", str(server))
            .annotate("superPodID", str(superpod_id))
            .annotate("serverIndex", str(server))
        )

    def devices(self, count: int, resource: str = RESOURCE) -> Self:
        self._obj["status"]["allocatable"][resource] = str(count)
        self._obj["status"]["capacity"][resource] = str(count)
        return self

    def ready(self, status: str = "True") -> Self:
        self._obj["status"]["conditions"] = [{"type": "Ready", "status": status, "reason": "KubeletReady"}]
        return self

    def obj(self) -> JSON:
        return copy.deepcopy(self._obj)


def node(name: str) -> NodeBuilder:
    return NodeBuilder(name)


def deviceinfo_configmap(
    node_name: str,
    *,
    count: int = 16,
    unhealthy: tuple[int, ...] = (),
    network_unhealthy: tuple[int, ...] = (),
    recovering: tuple[int, ...] = (),
    faults: list[JSON] | None = None,
    superpod_id: int = 0,
    server_index: int = 0,
    rack_id: int = 0,
    resource: str = RESOURCE,
) -> JSON:
    """A `mindx-dl-deviceinfo-<node>` ConfigMap in the device plugin's shape."""
    prefix = resource.rsplit("/", 1)[-1]

    def names(indices: tuple[int, ...] | range) -> str:
        return ",".join(f"{prefix}-{i}" for i in indices)

    taken = set(unhealthy) | set(network_unhealthy) | set(recovering)
    document = {
        "DeviceInfo": {
            "DeviceList": {
                resource: names(tuple(i for i in range(count) if i not in taken)),
                f"{resource}-Unhealthy": names(unhealthy),
                f"{resource}-NetworkUnhealthy": names(network_unhealthy),
                f"{resource}-Recovering": names(recovering),
                f"{resource}-Fault": json.dumps(faults or []),
            },
            "UpdateTime": 1795000000,
        },
        "SuperPodID": superpod_id,
        "ServerIndex": server_index,
        "RackID": rack_id,
        "CheckCode": "test",
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"mindx-dl-deviceinfo-{node_name}",
            "namespace": "kube-system",
            "labels": {"mx-consumer-cim": "true"},  # as the device plugin labels it
        },
        "data": {"DeviceInfoCfg": json.dumps(document)},
    }
