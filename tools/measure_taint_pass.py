"""The isolation taint loop's cost at SuperCluster scale: CPU of one pass per owned SuperPod, every node tainted.

A membership view of `--superpods` isolating SuperPods of `--nodes` nodes each (every node already carries its
SuperPod's taint, as a SuperCluster registers its nodes), then one `NodeTaints.reconcile` for each of the
`--owned` SuperPods a replica holds, against an API that takes no write (none is needed): the CPU time of
those passes, which a replica spends at each 30 s idle recheck and each time a node's labels or taints change.

    PYTHONPATH=. .venv/bin/python tools/measure_taint_pass.py [--superpods 64 --nodes 1024 --owned 32]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from superpod.api import superpod as api_superpod
from superpod.controller import membership, nodetaints

JSON = dict[str, Any]


class NoWrites:
    async def patch(self, path: str, body: JSON) -> JSON:
        raise AssertionError(f"a write where none is needed: {path}")


def tainted_node(name: str, pool: str, superpod: str) -> JSON:
    taint = {"key": api_superpod.ISOLATION_TAINT, "value": superpod, "effect": nodetaints.EFFECT}
    return {
        "metadata": {"name": name, "labels": {"pool": pool}, "resourceVersion": "1"},
        "spec": {"taints": [taint]},
    }


async def measure(superpods: int, nodes: int, owned: int) -> float:
    view = membership.Membership()
    for index in range(superpods):
        spec = {"profile": "atlas-950", "nodeSelector": {"matchLabels": {"pool": f"p{index}"}}}
        view.on_superpod(f"sp-{index}", api_superpod.SuperPodSpec.model_validate(spec), "huawei.com/npu")
        for number in range(nodes):
            name = f"n-{index}-{number}"
            view.on_node(name, None, tainted_node(name, f"p{index}", f"sp-{index}"))
    taints = nodetaints.NodeTaints(NoWrites(), view)  # type: ignore[arg-type]
    began = time.process_time()
    for index in range(owned):
        assert await taints.reconcile(f"sp-{index}")
    return time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--superpods", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=1024, help="nodes per SuperPod")
    parser.add_argument("--owned", type=int, default=32, help="SuperPods the replica holds")
    args = parser.parse_args()
    used = asyncio.run(measure(args.superpods, args.nodes, args.owned))
    print(
        f"{args.owned} SuperPods' taint passes among {args.superpods * args.nodes:,} nodes: "
        f"{used * 1000:.0f} ms of CPU ({used / args.owned * 1000:.1f} ms per SuperPod)"
    )


if __name__ == "__main__":
    main()
