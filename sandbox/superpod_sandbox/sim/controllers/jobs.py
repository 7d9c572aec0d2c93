"""The Job controller: Pods until the completions succeed or the backoff limit is reached, and the status.

As kube's (pkg/controller/job), for what training jobs use:

- NonIndexed: up to `parallelism` active Pods `<job>-<5 characters>` while fewer than `completions` succeeded
  (no `completions`: a work queue, done once one Pod succeeded and none is active);
- Indexed: one active Pod per index not yet completed, lowest first, `<job>-<index>-<5 characters>`, with the
  `batch.kubernetes.io/job-completion-index` annotation and label, the hostname `<job>-<index>` and the
  `JOB_COMPLETION_INDEX` variable in each container; `status.completedIndexes` as kube writes it ("0-2,5");
- `status`: startTime, active, ready, succeeded, failed, terminating, completionTime, and the conditions
  `SuccessCriteriaMet` then `Complete`, or `FailureTarget` then `Failed` (`BackoffLimitExceeded` once more
  Pods failed than `backoffLimit`; the active ones are deleted); `suspend: true` deletes the active Pods.

Simplified: failed Pods are replaced at once (no exponential backoff delay), activeDeadlineSeconds, pod failure
and success policies and backoffLimitPerIndex are not applied, and counting needs no Pod finalizer: a finished
Pod counts while it exists, and counts already in the status are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from superpod.cluster import client

from superpod_sandbox.sim import publisher
from superpod_sandbox.sim.controllers import common

JSON = dict[str, Any]
API_VERSION = "batch/v1"
PLURAL = "jobs"
INDEX = "batch.kubernetes.io/job-completion-index"
BURST = 100


class JobController:
    def __init__(self, api: client.KubeClient) -> None:
        self.api = api
        self.expectations = common.Expectations()

    async def sync(self, job: JSON, pods: Iterable[JSON]) -> None:
        if common.deleting(job):
            return
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        mine = common.owned(pods, job)
        active = [pod for pod in mine if common.is_active(pod)]
        if not self.expectations.satisfied(common.uid(job), len(mine), len(active)):
            return  # Pods created or deleted in an earlier pass are not all seen yet
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        succeeded_pods = [pod for pod in mine if common.phase(pod) == "Succeeded"]
        failed = max(int(status.get("failed") or 0), sum(1 for pod in mine if common.phase(pod) == "Failed"))
        done_indexes = _parse_indexes(status.get("completedIndexes", "")) | {
            index for pod in succeeded_pods if (index := _index(pod)) is not None
        }
        if indexed:
            done_indexes = {i for i in done_indexes if completions is None or i < int(completions)}
            succeeded = len(done_indexes)
        else:
            succeeded = max(int(status.get("succeeded") or 0), len(succeeded_pods))
        conditions = list(status.get("conditions") or [])
        finished = _finished(conditions)
        if finished is None:
            if failed > int(spec.get("backoffLimit", 6)):
                finished = "Failed"
            elif _succeeded(spec, succeeded, active):
                finished = "Complete"
        if finished is not None or spec.get("suspend"):
            for pod in active:
                await self.api.delete(common.path("v1", "pods", pod))
            if active:
                self.expectations.expect(common.uid(job), at_most_active=0)
            active = []
        else:
            created = await self._create(job, spec, active, succeeded, done_indexes)
            if created:
                self.expectations.expect(common.uid(job), at_least_owned=len(mine) + created)
        wanted = self._status(
            job, status, active, succeeded, failed, done_indexes if indexed else None, finished
        )
        await common.write_status(self.api, API_VERSION, PLURAL, job, wanted)

    async def _create(self, job: JSON, spec: JSON, active: list[JSON], succeeded: int, done: set[int]) -> int:
        """Create the Pods the Job lacks; how many were created."""
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        meta = job["metadata"]
        template = spec.get("template") or {}
        owner = common.owner_reference(job, API_VERSION, "Job")
        collection = common.collection("v1", "pods", meta["namespace"])
        if spec.get("completionMode") == "Indexed":
            running = {index for pod in active if (index := _index(pod)) is not None}
            total = int(completions if completions is not None else parallelism)
            missing = [i for i in range(total) if i not in done and i not in running]
            created = 0
            for index in missing[: max(0, min(parallelism - len(active), BURST))]:
                pod = common.new_pod(template, owner, f"{meta['name']}-{index}-")
                _set_index(pod, meta["name"], index)
                created += await self._submit(job, collection, pod)
            return created
        if completions is None:
            remaining = parallelism if succeeded == 0 else 0
        else:
            remaining = int(completions) - succeeded
        created = 0
        for _ in range(max(0, min(parallelism, remaining, BURST) - len(active))):
            created += await self._submit(
                job, collection, common.new_pod(template, owner, f"{meta['name']}-")
            )
        return created

    async def _submit(self, job: JSON, collection: str, pod: JSON) -> int:
        try:
            await self.api.create(collection, pod)
        except client.ApiError as error:
            message = str((error.body or {}).get("message", error))
            await common.event(self.api, job, "Job", "FailedCreate", f"Error creating: {message}", True)
            return 0
        return 1

    def _status(
        self,
        job: JSON,
        previous: JSON,
        active: list[JSON],
        succeeded: int,
        failed: int,
        indexes: set[int] | None,
        finished: str | None,
    ) -> JSON:
        now = publisher.now_rfc3339()
        old_conditions = previous.get("conditions") or []
        status: JSON = {
            "active": len(active),
            "ready": sum(1 for pod in active if common.is_ready(pod)),
            "succeeded": succeeded,
            "failed": failed,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if previous.get("startTime") or active or succeeded or failed:
            status["startTime"] = previous.get("startTime") or now
        if indexes is not None:
            status["completedIndexes"] = _format_indexes(indexes)
        conditions = [
            c
            for c in old_conditions
            if c.get("type") not in ("SuccessCriteriaMet", "Complete", "FailureTarget", "Failed")
        ]
        if finished == "Complete":
            message = "Reached expected number of succeeded pods"
            conditions += [
                common.condition(
                    "SuccessCriteriaMet",
                    True,
                    "CompletionsReached",
                    message,
                    old_conditions,
                    lastProbeTime="",
                ),
                common.condition(
                    "Complete", True, "CompletionsReached", message, old_conditions, lastProbeTime=""
                ),
            ]
            status["completionTime"] = previous.get("completionTime") or now
        elif finished == "Failed":
            message = "Job has reached the specified backoff limit"
            conditions += [
                common.condition(
                    "FailureTarget", True, "BackoffLimitExceeded", message, old_conditions, lastProbeTime=""
                ),
                common.condition(
                    "Failed", True, "BackoffLimitExceeded", message, old_conditions, lastProbeTime=""
                ),
            ]
        if conditions:
            status["conditions"] = conditions
        return status


def _finished(conditions: list[JSON]) -> str | None:
    for condition in conditions:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"])
    return None


def _succeeded(spec: JSON, succeeded: int, active: list[JSON]) -> bool:
    completions = spec.get("completions")
    if completions is None:
        return succeeded > 0 and not active
    return succeeded >= int(completions)


def _index(pod: JSON) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _set_index(pod: JSON, job_name: str, index: int) -> None:
    meta = pod["metadata"]
    meta.setdefault("annotations", {})[INDEX] = str(index)
    meta.setdefault("labels", {})[INDEX] = str(index)
    spec = pod["spec"] = json.loads(json.dumps(pod["spec"]))
    spec["hostname"] = f"{job_name}-{index}"
    variable = {
        "name": "JOB_COMPLETION_INDEX",
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
    }
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            env = container.setdefault("env", [])
            if not any(item.get("name") == "JOB_COMPLETION_INDEX" for item in env):
                env.append(variable)


def _parse_indexes(text: str) -> set[int]:
    indexes: set[int] = set()
    for part in filter(None, (text or "").split(",")):
        first, _, last = part.partition("-")
        indexes.update(range(int(first), int(last or first) + 1))
    return indexes


def _format_indexes(indexes: set[int]) -> str:
    """kube's interval list: sorted, consecutive runs as `a-b`, separated by commas."""
    runs: list[str] = []
    ordered = sorted(indexes)
    start = 0
    while start < len(ordered):
        end = start
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        runs.append(str(ordered[start]) if start == end else f"{ordered[start]}-{ordered[end]}")
        start = end + 1
    return ",".join(runs)
