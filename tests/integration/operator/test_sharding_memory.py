"""A replica holds the inventory of the SuperPods it owns only, takes a SuperPod's over when it moves to it, and
places on it around what its partitions hold.

Real operator processes (`superpod run --coordination leases`) against the sandbox, four SuperPods of four
CloudMatrix 384 nodes each (two usable after the reserve: 32 devices). What a replica models is read from its
/metrics: the per-node series (`superpod_node_devices`) come from a SuperPod's inventory and allocator, so they
show exactly the SuperPods whose model the replica holds; `superpod_info` shows every SuperPod it knows.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import parser
from superpod.cluster import client

from tests.integration.operator.conftest import SPP, Operator, eventually, free_port
from tests.integration.operator.test_sharding import (
    SUPERPODS,
    TIMING,
    all_placed,
    fleet_of_four,
    held_by,
    invariants,
    owners,
    partition,
)


class Replica(Operator):
    def __init__(self, kubeconfig: str, identity: str) -> None:
        self.metrics_port = free_port()
        super().__init__(
            kubeconfig,
            "--identity", identity, *TIMING, "--metrics-port", str(self.metrics_port),
            standalone=False,
        )  # fmt: skip

    async def superpods(self, series: str) -> set[str]:
        """The SuperPods that have samples of `series` on this replica's /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            text = await answer.text()
        return {
            sample.labels["superpod"]
            for family in parser.text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == series
        }


def models_exactly(replica: Replica, api: client.KubeClient, identity: str):
    """A check: the replica holds the nodes of the SuperPods its Leases give it, and of no other."""

    async def check() -> set[str] | None:
        mine = {name for name, holder in (await owners(api)).items() if holder == identity}
        modelled = await replica.superpods("superpod_node_devices")
        return mine if mine and modelled == mine else None

    return check


async def test_a_replica_holds_its_superpods_nodes_only_and_takes_over_a_moved_one(cluster):
    sandbox, api = cluster
    await fleet_of_four(api)
    first, second = Replica(sandbox.kubeconfig, "ra"), Replica(sandbox.kubeconfig, "rb")
    await first.start()
    await second.start()
    try:
        await eventually(lambda: held_by({"ra", "rb"})(api), timeout=30)
        mine_a = await eventually(models_exactly(first, api, "ra"), timeout=30)
        mine_b = await eventually(models_exactly(second, api, "rb"), timeout=30)
        assert mine_a | mine_b == set(SUPERPODS) and not mine_a & mine_b
        for replica in (first, second):  # every replica knows every SuperPod (admission reads their profile)
            assert await replica.superpods("superpod_info") == set(SUPERPODS)

        names = [f"p{i}" for i in range(4)]
        for i, name in enumerate(names):
            await api.create(SPP, partition(name, SUPERPODS[i], npus=16))
        await eventually(lambda: all_placed(api, names), timeout=30)

        await second.stop()  # its SuperPods move to the first, which builds their inventory before placing
        await eventually(lambda: held_by({"ra"})(api), timeout=30)
        await eventually(models_exactly(first, api, "ra"), timeout=30)
        # the rest of every SuperPod: placed only if the new owner holds what the old one placed, devices
        # held twice would be caught below
        rest = [f"q{i}" for i in range(4)]
        for i, name in enumerate(rest):
            await api.create(SPP, partition(name, SUPERPODS[i], npus=16))
        await eventually(lambda: all_placed(api, names + rest), timeout=30)
        await invariants(api)

        await second.start()  # it joins again: the SuperPods it takes leave the first one's memory
        await eventually(lambda: held_by({"ra", "rb"})(api), timeout=30)
        await eventually(models_exactly(first, api, "ra"), timeout=30)
        await eventually(models_exactly(second, api, "rb"), timeout=30)
        await invariants(api)
    finally:
        await first.stop()
        await second.stop()
