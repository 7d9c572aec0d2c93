"""`superpod defrag plan SUPERPOD --kubeconfig F` reads the live SuperPod: partitions' allocations, and a
slot with a pod bound counts as a running pod."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json

from superpod import cli

from tests.integration.operator.conftest import SPOD, SPP, add_a3_nodes, manifest, partition


def run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue()


async def test_the_live_form_moves_the_unbound_partition_and_leaves_the_running_one(cluster):
    sandbox, api = cluster
    await add_a3_nodes(api, 4)  # cloudmatrix-384 keeps the last two in reserve: a3-0-00 and a3-0-01 remain
    await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
    # neither usable node is whole: 'idle' (no pod) holds a pair of a3-0-00, 'busy' (a pod bound) one die
    # of a3-0-01; moving busy would be cheaper, but it runs
    holdings = (
        ("idle", 2, "a3-0-00", ["Ascend910-0", "Ascend910-1"], None),
        ("busy", 1, "a3-0-01", ["Ascend910-0"], "busy-0"),
    )
    for name, npus, node, devices, pod in holdings:
        await api.create(SPP, partition(name, npus))
        slot = {"rank": 0, "node": node, "devices": devices, **({"pod": pod} if pod else {})}
        await api.patch(f"{SPP}/{name}/status", {"status": {"phase": "Allocated", "allocation": [slot]}})
    argv = ["defrag", "plan", "cm384-a", "--kubeconfig", str(sandbox.kubeconfig), "--json"]
    code, out = await asyncio.to_thread(run_cli, argv)
    assert code == 0
    node = next(tier for tier in json.loads(out)["tiers"] if tier["tier"] == "node")
    assert node["status"] == "Moves" and node["domain"] == "a3-0-00"
    assert [(move["partition"], move["devicesMoved"]) for move in node["moves"]] == [("team-a/idle", 2)]
    assert node["moves"][0]["slots"][0]["to"].startswith("a3-0-01/")
    code, out = await asyncio.to_thread(run_cli, [*argv, "--policy", "Never"])
    node = next(tier for tier in json.loads(out)["tiers"] if tier["tier"] == "node")
    assert node["status"] == "NoMoves"
