"""The Deployment controller: one ReplicaSet per pod template, revisions, and the status clients wait on.

As kube's (pkg/controller/deployment): the ReplicaSet of the current template is `<deployment>-<hash>`, the hash
(`pod-template-hash` label, in its selector and template too) being an FNV-32a of the template written with
kube's safe alphabet; each new template gets the next `deployment.kubernetes.io/revision`, on the ReplicaSet
and the Deployment. Status: observedGeneration, replicas, updated/ready/available/unavailable replicas, and the
conditions `Available` (MinimumReplicasAvailable once available >= replicas - maxUnavailable) and
`Progressing` (NewReplicaSetAvailable once the new ReplicaSet has every replica available and no old Pod is
left, ReplicaSetUpdated before), which `kubectl rollout status`, `helm install --wait` and kstatus read.

Simplified: a new template scales the new ReplicaSet to `replicas` and the old ones to 0 at once (no maxSurge
pacing); a paused Deployment is left as it is; progressDeadlineSeconds is never exceeded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from superpod.cluster import client

from superpod_sandbox.sim.controllers import common

JSON = dict[str, Any]
API_VERSION = "apps/v1"
PLURAL = "deployments"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand.SafeEncodeString


def template_hash(template: JSON, collisions: int = 0) -> str:
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    value = 0x811C9DC5
    for byte in data:  # FNV-32a
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in str(value))


class DeploymentController:
    def __init__(self, api: client.KubeClient) -> None:
        self.api = api

    async def sync(self, deployment: JSON, replicasets: Iterable[JSON]) -> None:
        if common.deleting(deployment):
            return
        spec = deployment.get("spec") or {}
        template = spec.get("template") or {}
        wanted = int(spec.get("replicas", 1))
        mine = common.owned(replicasets, deployment)
        digest = template_hash(template)
        new = next((rs for rs in mine if _labels(rs).get(HASH_LABEL) == digest), None)
        old = [rs for rs in mine if rs is not new]
        revision = max((_revision(rs) for rs in mine), default=0)
        if spec.get("paused"):
            await self._write_status(deployment, new, mine, wanted)
            return
        if new is None:
            new = await self._create(deployment, template, digest, wanted, revision + 1)
            if new is None:
                return
        elif int((new.get("spec") or {}).get("replicas", 0)) != wanted:
            await self._scale(new, wanted)
        for replicaset in old:
            if int((replicaset.get("spec") or {}).get("replicas", 0)) != 0:
                await self._scale(replicaset, 0)
        await self._annotate_revision(deployment, str(_revision(new) or revision + 1))
        await self._write_status(deployment, new, mine, wanted)

    async def _create(
        self, deployment: JSON, template: JSON, digest: str, replicas: int, revision: int
    ) -> JSON | None:
        meta = deployment["metadata"]
        spec = deployment.get("spec") or {}
        labelled = json.loads(json.dumps(template))
        labelled.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = digest
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = digest
        body: JSON = {
            "apiVersion": API_VERSION,
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{digest}",
                "namespace": meta["namespace"],
                "labels": {**(labelled["metadata"].get("labels") or {})},
                "annotations": {
                    REVISION: str(revision),
                    DESIRED: str(replicas),
                    MAX_REPLICAS: str(replicas + _max_surge(spec, replicas)),
                },
                "ownerReferences": [common.owner_reference(deployment, API_VERSION, "Deployment")],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": labelled,
            },
        }
        try:
            created = await self.api.create(
                common.collection(API_VERSION, "replicasets", meta["namespace"]), body
            )
        except client.ApiError as error:
            if error.status != 409:
                raise
            return None  # the watch brings the one that exists
        message = f"Scaled up replica set {body['metadata']['name']} from 0 to {replicas}"
        await common.event(self.api, deployment, "Deployment", "ScalingReplicaSet", message, False)
        return created

    async def _scale(self, replicaset: JSON, replicas: int) -> None:
        annotations = {DESIRED: str(replicas)}
        body = {"metadata": {"annotations": annotations}, "spec": {"replicas": replicas}}
        try:
            await self.api.patch(common.path(API_VERSION, "replicasets", replicaset), body)
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise

    async def _annotate_revision(self, deployment: JSON, revision: str) -> None:
        if ((deployment["metadata"].get("annotations") or {}).get(REVISION)) == revision:
            return
        body = {"metadata": {"annotations": {REVISION: revision}}}
        try:
            await self.api.patch(common.path(API_VERSION, PLURAL, deployment), body)
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise

    async def _write_status(self, deployment: JSON, new: JSON | None, mine: list[JSON], wanted: int) -> None:
        def count(replicaset: JSON | None, field: str) -> int:
            return int(((replicaset or {}).get("status") or {}).get(field) or 0)

        replicas = sum(count(rs, "replicas") for rs in mine)
        updated = count(new, "replicas")
        available = sum(count(rs, "availableReplicas") for rs in mine)
        spec = deployment.get("spec") or {}
        previous = (deployment.get("status") or {}).get("conditions") or []
        name = (new or {}).get("metadata", {}).get("name", "")
        minimum = wanted - _max_unavailable(spec, wanted)
        is_available = available >= minimum
        available_condition = common.condition(
            "Available",
            is_available,
            "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if is_available
            else "Deployment does not have minimum availability.",
            previous,
            lastUpdateTime="",
        )
        complete = (
            new is not None and updated == wanted == replicas and count(new, "availableReplicas") == wanted
        )
        progressing = common.condition(
            "Progressing",
            True,
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{name}" is progressing.',
            previous,
            lastUpdateTime="",
        )
        status: JSON = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": sum(count(rs, "readyReplicas") for rs in mine),
            "availableReplicas": available,
            "conditions": [available_condition, progressing],
        }
        if wanted - available > 0:
            status["unavailableReplicas"] = wanted - available
        await common.write_status(self.api, API_VERSION, PLURAL, deployment, status)


def _labels(obj: JSON) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _revision(replicaset: JSON | None) -> int:
    value = ((replicaset or {}).get("metadata", {}).get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def _resolve(value: Any, replicas: int, round_up: bool) -> int:
    """An intstr of the rolling update: a count, or a percentage of `replicas` (surge rounds up)."""
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * int(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def _rolling(spec: JSON) -> JSON | None:
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return strategy.get("rollingUpdate") or {"maxSurge": "25%", "maxUnavailable": "25%"}


def _max_unavailable(spec: JSON, replicas: int) -> int:
    rolling = _rolling(spec)
    if rolling is None:
        return 0
    return min(replicas, _resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False))


def _max_surge(spec: JSON, replicas: int) -> int:
    rolling = _rolling(spec)
    return 0 if rolling is None else _resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
