"""The workload controllers on the sandbox with the simulated kubelet: Deployments roll out (and `kubectl rollout
status` sees it), ReplicaSets scale, Indexed Jobs complete index by index, and a Job over its backoff limit
fails."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest_asyncio
from superpod_sandbox.sim import lifecycle, simulator

from tests.conftest import TOOLS_BIN
from tests.integration.sim.conftest import FAST, eventually

DEPLOYMENTS = "/apis/apps/v1/namespaces/train/deployments"
REPLICASETS = "/apis/apps/v1/namespaces/train/replicasets"
JOBS = "/apis/batch/v1/namespaces/train/jobs"
PODS = "/api/v1/namespaces/train/pods"


@pytest_asyncio.fixture
async def fleet(sandbox, api) -> AsyncIterator[simulator.Fleet]:
    options = dataclasses.replace(FAST, controllers=True, metrics_port=None)
    async with simulator.Fleet(
        "cloudmatrix-384", kubeconfig=sandbox.kubeconfig, nodes=2, options=options
    ) as sim:
        yield sim


def deployment(image: str, replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "train"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def job(name: str, *, exit_code: int = 0, **spec) -> dict:
    annotations = {lifecycle.EXIT_AFTER: "0.2", lifecycle.EXIT_CODE: str(exit_code)}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "train"},
        "spec": {
            **spec,
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "train", "image": "trainer:1"}]},
            },
        },
    }


async def _condition(api, path: str, kind: str) -> dict | None:
    current = await api.get(path)
    conditions = (current.get("status") or {}).get("conditions") or []
    return current if any(c["type"] == kind and c["status"] == "True" for c in conditions) else None


async def _rolled_out(api, replicas: int) -> dict | None:
    current = await api.get(f"{DEPLOYMENTS}/web")
    status = current.get("status") or {}
    done = (
        status.get("observedGeneration") == current["metadata"]["generation"]
        and status.get("updatedReplicas")
        == status.get("availableReplicas")
        == status.get("replicas")
        == replicas
        and any(c["reason"] == "NewReplicaSetAvailable" for c in status.get("conditions") or [])
    )
    return current if done else None


async def test_a_deployment_rolls_out_through_its_replica_set_and_rolls_over_to_a_new_template(
    fleet, api, sandbox
):
    await api.create(DEPLOYMENTS, deployment("nginx:1"))
    first = await eventually(lambda: _rolled_out(api, 2), timeout=30)
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (replicaset,) = await api.list(REPLICASETS)
    digest = replicaset["metadata"]["labels"]["pod-template-hash"]
    assert replicaset["metadata"]["name"] == f"web-{digest}"
    assert replicaset["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
    pods = await api.list(PODS, labelSelector=f"pod-template-hash={digest}")
    assert len(pods) == 2 and all(pod["status"]["phase"] == "Running" for pod in pods)
    assert all(pod["spec"]["nodeName"] in fleet.node_names for pod in pods)

    await api.patch(
        f"{DEPLOYMENTS}/web",
        {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}},
    )
    kubectl = await asyncio.create_subprocess_exec(
        str(TOOLS_BIN / "kubectl"), "--kubeconfig", sandbox.kubeconfig, "-n", "train",
        "rollout", "status", "deployment/web", "--timeout=60s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(kubectl.communicate(), timeout=90)
    assert kubectl.returncode == 0, err.decode()
    assert 'deployment "web" successfully rolled out' in out.decode()
    second = await eventually(lambda: _rolled_out(api, 2), timeout=30)
    assert second["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    replicasets = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in await api.list(REPLICASETS)}
    assert sorted(replicasets.values()) == [0, 2] and len(replicasets) == 2

    async def old_pods_gone():
        images = {
            pod["spec"]["containers"][0]["image"]
            for pod in await api.list(PODS)
            if pod["status"].get("phase") == "Running"
        }
        return images == {"nginx:2"}

    await eventually(old_pods_gone, timeout=30)


async def test_a_replica_set_scales_down_and_up(fleet, api):
    await api.create(DEPLOYMENTS, deployment("nginx:1", replicas=3))
    await eventually(lambda: _rolled_out(api, 3), timeout=30)
    await api.patch(f"{DEPLOYMENTS}/web", {"spec": {"replicas": 1}})
    await eventually(lambda: _rolled_out(api, 1), timeout=30)

    async def running() -> int:
        pods = await api.list(PODS)
        return sum(
            1
            for pod in pods
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
        )

    await eventually(lambda: _equals(running, 1), timeout=30)


async def _equals(probe, expected) -> bool:
    return await probe() == expected


async def test_an_indexed_job_completes_each_index_once(fleet, api):
    await api.create(JOBS, job("train", completions=3, parallelism=2, completionMode="Indexed"))
    done = await eventually(lambda: _condition(api, f"{JOBS}/train", "Complete"), timeout=30)
    status = done["status"]
    assert status["succeeded"] == 3 and status["completedIndexes"] == "0-2" and status["active"] == 0
    assert status["failed"] == 0 and status["completionTime"] and status["startTime"]
    assert {c["type"] for c in status["conditions"]} == {"SuccessCriteriaMet", "Complete"}
    pods = await api.list(PODS, labelSelector="batch.kubernetes.io/job-name=train")
    indexes = sorted(
        int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for pod in pods
    )
    assert indexes == [0, 1, 2]
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["spec"]["hostname"] == f"train-{index}" and pod["metadata"]["name"].startswith(
            f"train-{index}-"
        )
        assert pod["status"]["phase"] == "Succeeded"
        env = {item["name"]: item for item in pod["spec"]["containers"][0]["env"]}
        assert "job-completion-index" in env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]


async def test_a_job_whose_pods_fail_stops_at_its_backoff_limit(fleet, api):
    await api.create(JOBS, job("broken", exit_code=3, backoffLimit=1))
    failed = await eventually(lambda: _condition(api, f"{JOBS}/broken", "Failed"), timeout=30)
    status = failed["status"]
    assert status["failed"] == 2 and status["succeeded"] == 0 and status["active"] == 0
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    pods = await api.list(PODS, labelSelector="batch.kubernetes.io/job-name=broken")
    assert len(pods) == 2 and {pod["status"]["phase"] for pod in pods} == {"Failed"}
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
