"""What a partition's HCCL rank table ConfigMap is: its name, whose it is, and its text (pure).

The name is `rings-config-<partition>` as MindCluster names it, or the value of the partition's annotation
`superpod.dev/rank-table-name` when that is a valid ConfigMap name (`name_problem` says why not, else).
A ConfigMap carries the operator's mark for a partition (`foreign` says why one does not): the label
`superpod.dev/partition: <partition>` and no controller but a partition of that name. The text (`hccl_json`)
is the rank table of the version the SuperPod's profile has (`superpod.ranktable.versions`), built from the
partition's slots and what their pods tell (the device plugin's configuration annotation, the pod IP); a pod
whose annotation cannot be used counts as not allocated. `ranktables` writes it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.ranktable import configuration, render, slots, tables, versions

JSON = common.JSON
PREFIX = "rings-config-"
NAME_ANNOTATION = "superpod.dev/rank-table-name"
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
logger = logging.getLogger(__name__)


def name_problem(partition: JSON) -> str | None:
    """Why the partition's rank-table-name annotation cannot be used (None: it can, or there is none)."""
    annotations = partition["metadata"].get("annotations") or {}
    value = annotations.get(NAME_ANNOTATION)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        return (
            f"annotation {NAME_ANNOTATION}={value!r} is not a ConfigMap name (at most 253 lowercase letters, "
            f"digits, '-' and '.', starting and ending with a letter or digit); the rank table is "
            f"{PREFIX}{partition['metadata']['name']}"
        )
    return None


def configmap_name(partition: JSON) -> str:
    """The rank table ConfigMap's name: the annotation's when it is a valid name, else `rings-config-<name>`."""
    annotations = partition["metadata"].get("annotations") or {}
    value = annotations.get(NAME_ANNOTATION)
    if value and name_problem(partition) is None:
        return str(value)
    return PREFIX + str(partition["metadata"]["name"])


def foreign(configmap: JSON, partition: JSON) -> str | None:
    """Why an existing ConfigMap is not the partition's to write (None: it carries the operator's mark for it).

    The mark: the label `superpod.dev/partition: <partition>`, and no controller but a partition of that name
    (an earlier partition of the same name made it, or a user made it for the operator to fill).
    """
    metadata = configmap.get("metadata") or {}
    name = partition["metadata"]["name"]
    where = f"ConfigMap {metadata.get('namespace', partition['metadata'].get('namespace'))}/{metadata.get('name')}"
    controller = next((ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller")), None)
    if controller is not None and not (
        controller.get("kind") == api_partition.KIND
        and str(controller.get("apiVersion", "")).startswith(f"{common.GROUP}/")
        and controller.get("name") == name
    ):
        return f"{where} belongs to {controller.get('kind')} {controller.get('name')}; it is left untouched"
    if (metadata.get("labels") or {}).get(common.PARTITION_LABEL) != name:
        return (
            f"{where} exists and was not made for this partition (no label {common.PARTITION_LABEL}={name}); "
            f"it is left untouched: delete it, label it for the partition, or name another ConfigMap with the "
            f"annotation {NAME_ANNOTATION}"
        )
    return None


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
