"""The HCCL rank table ConfigMap of a partition: `rings-config-<partition>`, key `hccl.json`.

Made as soon as the partition is Allocated (its pods mount it at admission, so it must exist before they start)
and rewritten when what it says changes: `initializing` and the slots whose pods the device plugin has
allocated, then `completed` once every slot's pod carries the device plugin's configuration annotation
(`ascend.kubectl.kubernetes.io/ascend-910-configuration`, or `...-npu-configuration` on the 950). The version
follows the SuperPod's profile (`superpod.ranktable.versions`); profiles without a rank table (GB200, custom)
get no ConfigMap. The ConfigMap is owned by the partition (ownerReferences), so deleting the partition deletes
it; `status.rankTable` names it. The name is `rings-config-<partition>` as MindCluster names it, or the value of
the partition's annotation `superpod.dev/rank-table-name`.

A pod whose annotation cannot be used (unparseable, or devices other than its slot pinned) counts as not
allocated, so the table stays `initializing` rather than give HCCL wrong addresses; the problem is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.cluster import client, writer
from superpod.ranktable import configuration, render, slots, tables, versions

JSON = dict[str, Any]
PREFIX = "rings-config-"
NAME_ANNOTATION = "superpod.dev/rank-table-name"
logger = logging.getLogger(__name__)


def configmap_name(partition: JSON) -> str:
    annotations = partition["metadata"].get("annotations") or {}
    return str(annotations.get(NAME_ANNOTATION) or PREFIX + partition["metadata"]["name"])


def _configuration(pod: JSON) -> configuration.AscendPodConfiguration | None:
    annotations = pod["metadata"].get("annotations") or {}
    raw = annotations.get(configuration.ANNOTATION) or annotations.get(configuration.NPU_ANNOTATION)
    if not raw:
        return None
    try:
        return configuration.parse_ascend_configuration(raw)
    except configuration.ConfigurationError as error:
        logger.warning("pod %s: %s", pod["metadata"]["name"], error)
        return None


def rank_slots(allocation: list[JSON], pods: Mapping[str, JSON]) -> list[slots.RankSlot]:
    """The partition's slots with what their pods (by name) tell: the device plugin's answer and the pod IP."""
    out = []
    for slot in allocation:
        pod = pods.get(slot.get("pod") or "")
        config = _configuration(pod) if pod is not None else None
        rank_slot = slots.RankSlot(
            rank=int(slot["rank"]),
            node_name=str(slot["node"]),
            device_names=tuple(slot["devices"]),
            configuration=config,
            pod_ip=((pod or {}).get("status") or {}).get("podIP") or None,
        )
        if config is not None:
            try:
                slots.ranked_devices(rank_slot)
            except slots.SlotError as error:
                logger.warning("partition slot at rank %s: %s", slot["rank"], error)
                rank_slot = slots.RankSlot(rank_slot.rank, rank_slot.node_name, rank_slot.device_names)
        out.append(rank_slot)
    return out


def hccl_json(partition: JSON, profile: str, pods: Mapping[str, JSON]) -> str | None:
    """The `hccl.json` text for the partition, or None when it has no slots or its profile no rank table."""
    version = versions.version_for_profile(profile)
    allocation = (partition.get("status") or {}).get("allocation") or []
    if version is None or not allocation:
        return None
    block_size = (partition.get("spec") or {}).get("blockSize")
    table = versions.build(version, rank_slots(allocation, pods), block_size=block_size)
    return render.render(table)


def table_status(text: str) -> tables.Status:
    return tables.Status.COMPLETED if text.startswith('{"status":"completed"') else tables.Status.INITIALIZING


def configmap(partition: JSON, name: str, text: str) -> JSON:
    metadata = partition["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": {common.PARTITION_LABEL: metadata["name"]},
            "ownerReferences": [
                {
                    "apiVersion": common.API_VERSION,
                    "kind": api_partition.KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                }
            ],
        },
        "data": {render.CONFIGMAP_KEY: text},
    }


class RankTables:
    """Writes each partition's rank table ConfigMap when its text changes."""

    def __init__(self, api: client.KubeClient) -> None:
        self.api = api
        self.writer = writer.Writer(api)
        self._written: dict[tuple[str, str], str] = {}  # (namespace, ConfigMap name) -> hccl.json written

    def forget(self, namespace: str, name: str) -> None:
        self._written.pop((namespace, name), None)

    async def sync(self, partition: JSON, profile: str, pods: Mapping[str, JSON]) -> bool:
        """Write the table if it changed; returns whether a write was made."""
        text = hccl_json(partition, profile, pods)
        if text is None:
            return False
        metadata = partition["metadata"]
        namespace, name = metadata["namespace"], configmap_name(partition)
        wrote = False
        if self._written.get((namespace, name)) != text:
            wrote = await self._write(partition, namespace, name, text)
        if (partition.get("status") or {}).get("rankTable") != name:
            await self.writer.partition_status(namespace, metadata["name"], {"rankTable": name})
        return wrote

    async def _write(self, partition: JSON, namespace: str, name: str, text: str) -> bool:
        """Create the ConfigMap (first time) or patch its text; one call in the usual cases."""
        path = client.resource_path("v1", "configmaps", namespace, name)
        key = (namespace, name)
        try:
            if key not in self._written:
                await self.api.create(
                    client.resource_path("v1", "configmaps", namespace), configmap(partition, name, text)
                )
            else:
                await self.api.patch(path, {"data": {render.CONFIGMAP_KEY: text}})
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise
            current = await self.api.get_or_none(path)  # made before (a restart), or deleted meanwhile
            if current is None:
                self._written.pop(key, None)
                return await self._write(partition, namespace, name, text)
            desired = configmap(partition, name, text)
            owners = desired["metadata"]["ownerReferences"]
            if (current.get("data") or {}).get(render.CONFIGMAP_KEY) == text and (
                current["metadata"].get("ownerReferences") == owners
            ):
                self._written[key] = text
                return False
            # a table left by an earlier partition of the same name is taken over, owner included
            await self.api.patch(path, {"metadata": {"ownerReferences": owners}, "data": desired["data"]})
        self._written[key] = text
        if table_status(text) is tables.Status.COMPLETED:
            await self.writer.event(
                partition, reason="RankTableCompleted", message=f"{name}: every rank known"
            )
        return True
