"""The worked example of docs/tenancy.md, run for real: two teams share a simulated SuperPoD, one needs its share back.

Run: `.venv/bin/python tools/tenancy_example.py` (a sandbox API server, the operator with its webhook and a
simulated fleet of four CloudMatrix 384 nodes, all on 127.0.0.1, all stopped at the end). It prints what
`kubectl` shows at each step.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from superpod_sandbox.sim import simulator  # noqa: E402

from tests.integration.admission.conftest import WebhookOperator, partition, pod, webhook_configuration  # noqa: E402
from tests.integration.admission.test_sharing import (  # noqa: E402
    no_device_used_twice,
    pods_running,
    quota,
    superpod,
)
from tests.integration.operator.conftest import eventually, sandbox_cluster  # noqa: E402
from tests.integration.sim.conftest import FAST  # noqa: E402

KUBECTL = str(ROOT / ".tools" / "bin" / "kubectl")
SPP = "/apis/superpod.dev/v1alpha1/namespaces/{}/superpodpartitions"


async def kubectl(kubeconfig: str, *args: str) -> None:
    """Run kubectl without blocking the event loop, which serves the sandbox API server it talks to."""
    print("$ kubectl " + " ".join(args))
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        kubeconfig,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    print(out.decode().rstrip() + "\n")


async def phase(api, namespace: str, name: str, wanted: str):
    obj = await api.get_or_none(f"{SPP.format(namespace)}/{name}")
    return obj if ((obj or {}).get("status") or {}).get("phase") == wanted else None


async def waits_again(api, namespace: str, name: str) -> bool:
    """A preempted partition queued again and decided on: its message says what it waits for now."""
    obj = await api.get_or_none(SPP.format(namespace) + f"/{name}")
    return "waits to be placed again: " in str(((obj or {}).get("status") or {}).get("message"))


async def main() -> None:
    async with sandbox_cluster() as (sandbox, api):
        config = sandbox.kubeconfig
        await api.create("/api/v1/namespaces", {"metadata": {"name": "team-b"}})
        operator = WebhookOperator(config)
        await operator.start()
        try:
            await webhook_configuration(api)
            async with simulator.Fleet("cloudmatrix-384", kubeconfig=config, nodes=4, options=FAST):
                body = superpod(quota("team-a", 32, "Allowed"), quota("team-b", 32, "Never"))
                await api.create("/apis/superpod.dev/v1alpha1/superpods", body)
                await eventually(lambda: api.get_or_none("/apis/superpod.dev/v1alpha1/superpods/cm384-a"))
                for namespace, name, npus in (
                    ("team-a", "pretrain", 32),
                    ("team-a", "sweep", 16),
                    ("team-b", "finetune", 16),
                ):
                    await api.create(
                        SPP.format(namespace), partition(name, npus, namespace=namespace, devicesPerPod=16)
                    )
                    await eventually(lambda n=name, ns=namespace: phase(api, ns, n, "Allocated"), timeout=30)
                    for index in range(npus // 16):
                        await api.create(
                            f"/api/v1/namespaces/{namespace}/pods",
                            pod(f"{name}-{index}", name, namespace=namespace),
                        )
                    await eventually(
                        lambda n=name, ns=namespace, c=npus // 16: pods_running(api, n, c, ns), timeout=60
                    )
                await asyncio.sleep(1.0)
                await kubectl(config, "get", "spp", "-A", "-o", "wide")
                await kubectl(config, "get", "spod", "cm384-a", "-o", "jsonpath={.status.quotas}")
                print()
                # team-b's urgent job: within team-b's share, so it takes back what team-a borrowed
                await api.create(
                    SPP.format("team-b"), partition("urgent", 16, namespace="team-b", devicesPerPod=16)
                )
                await eventually(lambda: phase(api, "team-a", "sweep", "Pending"), timeout=30)
                await kubectl(config, "get", "spp", "-A", "-o", "wide")
                await eventually(lambda: phase(api, "team-b", "urgent", "Allocated"), timeout=60)
                await no_device_used_twice(api)
                await eventually(lambda: waits_again(api, "team-a", "sweep"), timeout=30)
                await kubectl(
                    config,
                    "get",
                    "spp",
                    "-n",
                    "team-a",
                    "sweep",
                    "-o",
                    "jsonpath={.status.reason}: {.status.message}",
                )
                print()
                await kubectl(config, "get", "events", "-A", "--field-selector", "reason=Preempted")
                await kubectl(config, "get", "events", "-A", "--field-selector", "reason=Preempting")
                await kubectl(config, "get", "pods", "-n", "team-a")
                # team-b asks for more than its share; it may not borrow
                await api.create(SPP.format("team-b"), partition("extra", 16, namespace="team-b"))
                await eventually(lambda: phase(api, "team-b", "extra", "Pending"), timeout=30)
                await kubectl(
                    config,
                    "get",
                    "spp",
                    "-n",
                    "team-b",
                    "extra",
                    "-o",
                    "jsonpath={.status.reason}: {.status.message}",
                )
                print()
        finally:
            await operator.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
