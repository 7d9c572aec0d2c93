"""A 1,936-node Atlas 960 fleet on the sandbox: registration, steady write rate and one scrape, measured.

Run with `-s` to see the figures docs/simulator.md quotes. The bounds are loose (this 2-core machine is shared);
they catch a fleet that stops scaling (per-node round trips in series, a pass that is quadratic in pods).
"""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest
from superpod.cluster import deviceinfo
from superpod_sandbox.sim import simulator


@pytest.mark.slow
async def test_an_atlas_960_superpod_registers_and_refreshes_within_bounds(sandbox, api):
    options = simulator.Options(heartbeat_seconds=10.0, refresh_seconds=10.0, metrics_port=0)
    began = time.monotonic()
    async with simulator.Fleet("atlas-960", kubeconfig=sandbox.kubeconfig, options=options) as big:
        started = time.monotonic() - began
        assert len(big.node_names) == 1936
        configmaps = await api.list(
            "/api/v1/namespaces/kube-system/configmaps", labelSelector="mx-consumer-cim=true"
        )
        assert len(configmaps) == 1936
        assert deviceinfo.parse(configmaps[-1], "huawei.com/npu").healthy
        calls_before = sum(sandbox.calls.values())
        writes_before = big.publisher.publishes
        window = time.monotonic()
        await asyncio.sleep(10.0)
        rate = (sum(sandbox.calls.values()) - calls_before) / (time.monotonic() - window)
        refreshed = big.publisher.publishes - writes_before
        scrape_began = time.monotonic()
        async with aiohttp.ClientSession() as session, session.get(big.metrics_url) as response:
            body = await response.read()
        scrape = time.monotonic() - scrape_began
    print(
        f"\natlas-960: 1936 nodes registered in {big.registration_seconds:.1f} s (start {started:.1f} s); "
        f"steady {rate:.0f} API calls/s with 10 s heartbeats and refreshes ({refreshed} ConfigMap writes in 10 s); "
        f"scrape {len(body) / 1e6:.0f} MB in {scrape:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    assert big.registration_seconds < 120
    # sandbox and simulator share one event loop here: about 120 calls/s at load 9; a per-pass blow-up is far below
    assert rate > 40 and refreshed > 200
    assert scrape < 120
