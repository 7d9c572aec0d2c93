"""The HCCL rank table ConfigMap of a partition: `rings-config-<partition>`, key `hccl.json`.

Made as soon as the partition is Allocated (its pods mount it at admission, so it must exist before they start)
and rewritten when what it says changes: `initializing` and the slots whose pods the device plugin has
allocated, then `completed` once every slot's pod carries the device plugin's configuration annotation
(`ascend.kubectl.kubernetes.io/ascend-910-configuration`, or `...-npu-configuration` on the 950). The version
follows the SuperPod's profile (`superpod.ranktable.versions`); profiles without a rank table (GB200, custom)
get no ConfigMap. The ConfigMap is owned by the partition (ownerReferences), so deleting the partition deletes
it; `status.rankTable` names it. The name is `rings-config-<partition>` as MindCluster names it, or the value of
the partition's annotation `superpod.dev/rank-table-name` when that is a valid ConfigMap name (else the default,
with a warning).

What the ConfigMap's name and text are, and whose a ConfigMap is, is `hcclconfigmap`'s (pure); this module
writes it. The operator writes only ConfigMaps that carry its mark, the label `superpod.dev/partition: <partition>` with no
controller but a partition of that name: the ones it made, and a placeholder a user made for it with that label
(MindCluster's users create `rings-config-<job>` before the job). Any other ConfigMap of that name is left
untouched. What cannot be written (a name taken by a ConfigMap without the mark, an allocation no table can be
built from, a write the API refuses) is reported once, as the partition's condition `RankTableWritten` (False,
with the reason) and a Warning Event, never retried in a loop: a refused write or a ConfigMap without the mark
is looked at again after `RETRY_REFUSED` seconds, an allocation when the partition or its pods change.

A pod whose annotation cannot be used (unparseable, or devices other than its slot pinned) counts as not
allocated, so the table stays `initializing` rather than give HCCL wrong addresses; the problem is logged.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping

from superpod.api import common, reasons
from superpod.cluster import client, writer
from superpod.controller import hcclconfigmap
from superpod.controller import status as derive
from superpod.ranktable import render, tables

JSON = common.JSON
CONDITION = reasons.ConditionType.RANK_TABLE_WRITTEN.value
# seconds before a refused write (403, 422, a quota, a ConfigMap not ours) is tried again
RETRY_REFUSED = 60.0
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Written:
    partition: str  # its name
    uid: str
    text: str
    resource_version: str  # of the ConfigMap after the write: the next patch applies to that version only


@dataclasses.dataclass(frozen=True)
class _Report:
    """What the partition's RankTableWritten condition last said, for one partition object."""

    uid: str
    written: bool
    reason: str
    message: str


class Refused(Exception):
    """The rank table cannot be written; `reason` and the message go to the partition's condition."""

    def __init__(self, reason: str, message: str, *, retry: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry = retry


class RankTables:
    """Writes each partition's rank table ConfigMap when its text changes, and reports what it cannot write."""

    def __init__(self, api: client.KubeClient) -> None:
        self.api = api
        self.writer = writer.Writer(api)
        self._written: dict[tuple[str, str], _Written] = {}  # (namespace, ConfigMap name) -> what was written
        self._reported: dict[tuple[str, str], _Report] = {}  # (namespace, partition) -> its condition
        # (namespace, partition) -> what was refused (uid, ConfigMap name, text) and when it may be tried again
        self._refused: dict[tuple[str, str], tuple[tuple[str, str, str], float]] = {}
        self.clock = time.monotonic

    def forget(self, namespace: str, name: str) -> None:
        """The partition `name` is gone: drop what was remembered of it."""
        for key in [
            key for key, written in self._written.items() if key[0] == namespace and written.partition == name
        ]:
            del self._written[key]
        self._reported.pop((namespace, name), None)
        self._refused.pop((namespace, name), None)

    async def remove(self, partition: JSON) -> bool:
        """Delete the partition's rank table ConfigMap when it carries the operator's mark for this partition
        (its pods are gone); returns whether one was deleted. A ConfigMap without the mark is left alone."""
        namespace, name = partition["metadata"]["namespace"], partition["metadata"]["name"]
        path = client.resource_path("v1", "configmaps", namespace, hcclconfigmap.configmap_name(partition))
        existing = await self.api.get_or_none(path)
        self.forget(namespace, name)
        if existing is None or hcclconfigmap.foreign(existing, partition) is not None:
            return False
        return await self.api.delete(path) is not None

    def retry_in(self, namespace: str, name: str, now: float | None = None) -> float | None:
        """Seconds until a refused write of the partition's table is tried again; None: nothing waits."""
        refused = self._refused.get((namespace, name))
        if refused is None:
            return None
        return max(0.0, refused[1] - (self.clock() if now is None else now))

    async def sync(self, partition: JSON, profile: str, pods: Mapping[str, JSON]) -> bool:
        """Write the table if it changed; returns whether a write was made."""
        metadata = partition["metadata"]
        namespace = metadata["namespace"]
        try:
            text = hcclconfigmap.hccl_json(partition, profile, pods)
        except ValueError as error:  # SlotError: devices no rank table can name, overlapping ranks, ...
            await self._report(
                partition,
                False,
                reasons.RankTableReason.ALLOCATION_INVALID,
                f"no rank table can be built: {error}",
            )
            return False
        if text is None:
            return False
        name = hcclconfigmap.configmap_name(partition)
        key = (namespace, metadata["name"])
        attempt = (str(metadata.get("uid", "")), name, text)
        refused_before = self._refused.pop(key, None)
        if refused_before is not None and refused_before[0] == attempt and self.clock() < refused_before[1]:
            self._refused[key] = refused_before  # the same write, refused a moment ago: not before its time
            return False
        try:
            wrote = await self._write_if_changed(partition, namespace, name, text)
        except Refused as refused:
            if refused.retry is not None:
                self._refused[key] = (attempt, self.clock() + refused.retry)
            await self._report(partition, False, refused.reason, str(refused))
            return False
        if (partition.get("status") or {}).get("rankTable") != name:
            await self.writer.partition_status(namespace, metadata["name"], {"rankTable": name})
        problem = hcclconfigmap.name_problem(partition)
        if problem is not None:
            await self._report(partition, True, reasons.RankTableReason.ANNOTATION_IGNORED, problem)
        elif (namespace, metadata["name"]) in self._reported or _condition_of(partition) is not None:
            await self._report(
                partition, True, reasons.RankTableReason.WRITTEN, f"hccl.json in ConfigMap {name}"
            )
        return wrote

    async def _write_if_changed(self, partition: JSON, namespace: str, name: str, text: str) -> bool:
        known = self._written.get((namespace, name))
        if known is not None and known.uid == partition["metadata"].get("uid") and known.text == text:
            return False
        return await self._write(partition, namespace, name, text)

    async def _write(self, partition: JSON, namespace: str, name: str, text: str) -> bool:
        """Create the ConfigMap (first time) or patch its text; one call in the usual cases."""
        path = client.resource_path("v1", "configmaps", namespace, name)
        key = (namespace, name)
        uid = str(partition["metadata"].get("uid", ""))
        mine = self._written.get(key)
        try:
            if mine is None or mine.uid != uid:
                answer = await self.api.create(
                    client.resource_path("v1", "configmaps", namespace),
                    hcclconfigmap.configmap(partition, name, text),
                )
            else:
                # guarded by the version written: a ConfigMap someone replaced meanwhile is looked at first
                body = {
                    "metadata": {"resourceVersion": mine.resource_version},
                    "data": {render.CONFIGMAP_KEY: text},
                }
                answer = await self.api.patch(path, body)
        except client.ApiError as error:
            if error.status not in (404, 409):
                if 400 <= error.status < 500 and error.status != 429:
                    raise Refused(
                        reasons.RankTableReason.WRITE_REFUSED,
                        f"the API refused to write ConfigMap {namespace}/{name}: {error}; "
                        f"trying again in {RETRY_REFUSED:g} s",
                        retry=RETRY_REFUSED,
                    ) from error
                raise
            current = await self.api.get_or_none(
                path
            )  # made before (a restart), changed or deleted meanwhile
            if current is None:
                self._written.pop(key, None)
                return await self._write(partition, namespace, name, text)
            problem = hcclconfigmap.foreign(current, partition)
            if problem is not None:  # looked at again later: its owner may delete or label it
                self._written.pop(key, None)
                raise Refused(
                    reasons.RankTableReason.CONFIGMAP_NOT_OWNED, problem, retry=RETRY_REFUSED
                ) from error
            desired = hcclconfigmap.configmap(partition, name, text)
            owners = desired["metadata"]["ownerReferences"]
            version = str(current["metadata"].get("resourceVersion", ""))
            if (current.get("data") or {}).get(render.CONFIGMAP_KEY) == text and (
                current["metadata"].get("ownerReferences") == owners
            ):
                self._written[key] = _Written(partition["metadata"]["name"], uid, text, version)
                return False
            # a table an earlier partition of the same name made, or a placeholder a user labelled for this
            # partition: taken over, owner included (the version read, so it is the one just judged)
            metadata = {"ownerReferences": owners, "resourceVersion": version}
            try:
                answer = await self.api.patch(path, {"metadata": metadata, "data": desired["data"]})
            except client.ApiError as again:
                if again.status != 409:
                    raise
                self._written.pop(key, None)
                return await self._write(partition, namespace, name, text)
        self._written[key] = _Written(
            partition["metadata"]["name"],
            uid,
            text,
            str(answer.get("metadata", {}).get("resourceVersion", "")),
        )
        if hcclconfigmap.table_status(text) is tables.Status.COMPLETED:
            await self.writer.event(
                partition,
                reason=reasons.EventReason.RANK_TABLE_COMPLETED,
                message=f"{name}: every rank known",
            )
        return True

    async def _report(self, partition: JSON, written: bool, reason: str, message: str) -> None:
        """Set the partition's RankTableWritten condition, with a log line and an Event, once per change."""
        metadata = partition["metadata"]
        key = (metadata["namespace"], metadata["name"])
        report = _Report(str(metadata.get("uid", "")), written, reason, message)
        shown = _condition_of(partition)
        if self._reported.get(key) == report or (
            shown is not None
            and (shown.get("status") == ("True" if written else "False"))
            and shown.get("reason") == reason
            and shown.get("message") == message
        ):
            self._reported[key] = report
            return
        previous = (partition.get("status") or {}).get("conditions") or []
        condition = derive.condition(
            previous, CONDITION, written, reason, message, metadata.get("generation"), writer.now()
        )
        conditions = [c for c in previous if c.get("type") != CONDITION] + [condition]
        try:
            # guarded: never write back conditions another writer (a pod's binding) changed meanwhile; the
            # change that moved the version brings this partition back here
            answer = await self.writer.partition_status(
                key[0], key[1], {"conditions": conditions}, resource_version=metadata.get("resourceVersion")
            )
        except client.ApiError as error:
            if error.status == 409:
                return
            # the status cannot carry it (RBAC, a policy): the log line and the Event still do, once
            logger.warning(
                "partition %s/%s: could not write its %s condition: %s", key[0], key[1], CONDITION, error
            )
            answer = {}
        if answer is None:
            return
        self._reported[key] = report
        if written and reason == reasons.RankTableReason.WRITTEN:
            logger.info("partition %s/%s: rank table written again: %s", key[0], key[1], message)
            await self.writer.event(partition, reason=reasons.EventReason.RANK_TABLE_WRITTEN, message=message)
            return
        logger.warning("partition %s/%s: %s: %s", key[0], key[1], reason, message)
        await self.writer.event(partition, reason=f"RankTable{reason}", message=message, warning=True)


def _condition_of(partition: JSON) -> JSON | None:
    conditions = (partition.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == CONDITION), None)
