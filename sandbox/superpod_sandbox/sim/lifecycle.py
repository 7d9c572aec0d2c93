"""When a simulated container's process ends: asked for by the Pod, carried out by the simulated kubelet.

Nothing runs in a simulated container, so a Pod says how its containers end through two annotations (on a
Job's pod template, say): `superpod.dev/simulated-exit-after` (seconds after the containers started) and
`superpod.dev/simulated-exit-code` (default 0). Without the first, containers run until the Pod is deleted.
When the time is up the kubelet does what kube's does with the exit code and the Pod's `restartPolicy`:

- exit 0 with `Never` or `OnFailure`, or any exit with `Never`: the Pod is finished, phase `Succeeded` (all
  exits 0) or `Failed`, containers `terminated` with `Completed` or `Error`, and Ready False (`PodCompleted`
  or `PodFailed`);
- otherwise (`Always`, or a failure with `OnFailure`) the containers restart: `restartCount` goes up, the last
  state is the termination, and they run again for the same time.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

JSON = dict[str, Any]
EXIT_AFTER = "superpod.dev/simulated-exit-after"
EXIT_CODE = "superpod.dev/simulated-exit-code"


def _parse(timestamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _format(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_status(pod: Mapping[str, Any], now: datetime.datetime) -> JSON | None:
    """The status to write for a Running Pod whose containers' time is up, or None while they run on."""
    annotations: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    status = pod.get("status") or {}
    if EXIT_AFTER not in annotations or status.get("phase") != "Running":
        return None
    try:
        seconds = float(annotations[EXIT_AFTER])
        code = int(annotations.get(EXIT_CODE, "0"))
    except ValueError:
        return None
    containers = [dict(c) for c in status.get("containerStatuses") or []]
    started = [str(((c.get("state") or {}).get("running") or {}).get("startedAt", "")) for c in containers]
    if (
        not containers
        or not all(started)
        or now < max(_parse(s) for s in started) + datetime.timedelta(seconds=seconds)
    ):
        return None
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    finished = policy == "Never" or (policy == "OnFailure" and code == 0)
    moment = _format(now)
    for container, start in zip(containers, started, strict=True):
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": start,
            "finishedAt": moment,
            "containerID": container.get("containerID", ""),
        }
        if finished:
            container.update(state={"terminated": terminated}, ready=False, started=False)
        else:
            container.update(
                state={"running": {"startedAt": moment}},
                lastState={"terminated": terminated},
                restartCount=int(container.get("restartCount") or 0) + 1,
            )
    if not finished:
        return {"containerStatuses": containers}
    phase = "Succeeded" if code == 0 else "Failed"
    reason = "PodCompleted" if code == 0 else "PodFailed"
    conditions = []
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Ready", "ContainersReady", "PodReadyToStartContainers"):
            condition = {**condition, "status": "False", "reason": reason, "lastTransitionTime": moment}
        conditions.append(condition)
    return {"phase": phase, "conditions": conditions, "containerStatuses": containers}
