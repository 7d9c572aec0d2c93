"""Fixtures of the e2e scenarios: the target (one per module of journeys) with its SuperPod, and a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from superpod.api import common
from superpod.api import superpod as api_superpod
from superpod.cluster import client

from e2e import environment
from tests.integration.operator.conftest import eventually

SUPERPODS = client.resource_path(common.API_VERSION, api_superpod.PLURAL)


def superpod_manifest() -> dict:
    return {
        "apiVersion": common.API_VERSION,
        "kind": api_superpod.KIND,
        "metadata": {"name": environment.SUPERPOD},
        "spec": {"profile": environment.PROFILE, "superPodID": 0},
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target() -> AsyncIterator[environment.Target]:
    """The cluster of this run with a Ready SuperPod over the simulated fleet (applied with kubectl)."""
    async with environment.target() as found:
        await found.apply(superpod_manifest())

        async def ready() -> dict | None:
            superpod = await found.api.get(f"{SUPERPODS}/{environment.SUPERPOD}")
            conditions = {
                c["type"]: c["status"] for c in (superpod.get("status") or {}).get("conditions") or []
            }
            return superpod if conditions.get("Ready") == "True" else None

        await eventually(ready, timeout=60)
        yield found


@pytest_asyncio.fixture(loop_scope="module")
async def namespace(target: environment.Target) -> AsyncIterator[str]:
    """A fresh namespace for one scenario, deleted after it (with its partitions, so their devices are free
    again for the next scenario)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await target.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    await target.api.delete(f"/api/v1/namespaces/{name}")
    await eventually(lambda: _gone(target.api, f"/api/v1/namespaces/{name}"), timeout=60)


async def _gone(api: client.KubeClient, path: str) -> bool:
    return await api.get_or_none(path) is None
