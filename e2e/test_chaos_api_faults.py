"""Chaos: the API server fails under the operator (5xx answers, writes that land but answer 504, 409 conflicts,
watches cut every few seconds, latency) while partitions are created and deleted. The operator must stay up and
never hand a device to two partitions, not even for a moment, and converge: once the API recovers every
partition is Allocated or Pending with the right reason, and the SuperPod's counts agree with the partitions.

The faults aim at the operator's bearer token only (see superpod_sandbox.apiserver.chaos), so the scenario's own calls
and the simulator's go through. Sandbox only.

The faults last through the churn and a little after it; then the API recovers, and the operator must converge
within 90 s. (With kopf's default 60 s retry backoff and no client retries this took minutes; the operator now
retries transient failures itself and its handlers back off 2 s: see docs/e2e.md.)
"""

from __future__ import annotations

import asyncio

import pytest
from superpod_sandbox.apiserver import chaos

from e2e import churn, environment, scenario
from e2e.conftest import SUPERPODS, superpod_manifest
from tests.integration.operator.conftest import eventually

pytestmark = pytest.mark.skipif(
    environment.cluster_kubeconfig() is not None, reason="injects faults into the sandbox: sandbox only"
)

OPERATOR_TOKEN = "operator"
PLAN = chaos.Plan(
    error_rate=0.05,
    lost_reply_rate=0.03,
    conflict_rate=0.05,
    watch_cut=(1.0, 4.0),
    latency=(0.0, 0.01),
    token=OPERATOR_TOKEN,
    seed=7,
)
FAULTS_AFTER_CHURN = 10.0  # seconds the faults go on after the last create


async def test_the_operator_converges_while_the_api_fails_under_it():
    async with environment.sandbox_target(operator_token=OPERATOR_TOKEN) as target:
        api, operator, sandbox = target.api, target.operator, target.sandbox
        assert operator is not None and operator.process is not None and sandbox is not None
        await api.create(SUPERPODS, superpod_manifest())
        await eventually(lambda: churn.superpod_devices(api), timeout=30)
        namespace = "faults"
        await api.create(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        shared: dict[tuple[str, str], set[str]] = {}

        async def watch_for_shared_devices() -> None:
            while True:  # a device held by two partitions, even for a moment, could go to two pods
                for device, names in scenario.shared_devices(await churn.snapshot(api, namespace)).items():
                    shared.setdefault(device, set()).update(names)
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(watch_for_shared_devices())
        sandbox.faults.set(PLAN)
        work = churn.Churn(api, namespace, creates=150, delete_share=0.3, rate=30.0)
        await work.run()
        await asyncio.sleep(FAULTS_AFTER_CHURN)
        injected = dict(sandbox.faults.injected)
        sandbox.faults.set(None)  # the API recovers
        expected = len(work.created) - len(work.deleted)
        _, wrong = await churn.converge(api, namespace, expected, timeout=90)
        sampler.cancel()

        assert operator.process.returncode is None
        assert wrong == []
        assert shared == {}, "devices held by two partitions at once during the faults"
        for fault in ("error500", "error503", "error504", "lost_reply", "conflict", "watch_cut"):
            assert injected.get(fault, 0) > 0, f"no {fault} was injected: {injected}"
