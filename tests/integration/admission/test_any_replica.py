"""Admission is correct on any replica: the API server calls whichever replica the Service picks, and a pod
admitted by a replica that does not own its partition's SuperPod still gets its own partition's devices.

Two replicas share two simulated SuperPods on Leases (one each). The webhook configuration points at one
replica at a time (its URL), and each partition's pods are created through the replica that does NOT own the
partition's SuperPod, right after the owner placed it (the admitting replica's watch may not have brought the
placement yet). The guarantee is judged by what the pods really use: the simulated device plugin's
`huawei.com/AscendReal` annotation and the node they run on, against the slot each partition's status gives them.
"""

from __future__ import annotations

import contextlib

from superpod.cluster import certificates, client, webhookconfig

from tests.integration.admission.conftest import (
    SPOD,
    WEBHOOKS,
    WebhookOperator,
    allocated,
    eventually,
    no_device_used_twice,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
)
from tests.integration.operator.test_sharding import TIMING, owners

SUPERPODS = ("sp0", "sp1")
PODS = 2  # per partition, 16 devices each


def superpod(name: str, superpod_id: int) -> dict:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPod",
        "metadata": {"name": name},
        "spec": {"profile": "cloudmatrix-384", "superPodID": superpod_id, "reserveNodes": 0},
    }


async def point_webhook_at(api: client.KubeClient, replica: WebhookOperator, ca_pem: bytes) -> None:
    """The API server now calls this replica's webhook for every labelled pod."""
    desired = webhookconfig.configuration(
        webhookconfig.client_config(ca_pem=ca_pem, port=replica.webhook_port)
    )
    current = await api.get_or_none(f"{WEBHOOKS}/{desired['metadata']['name']}")
    if current is None:
        await api.create(WEBHOOKS, desired)
    else:
        desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await api.replace(f"{WEBHOOKS}/{desired['metadata']['name']}", desired)


async def one_owner_each(api: client.KubeClient) -> dict[str, str] | None:
    table = await owners(api)
    return table if set(table) == set(SUPERPODS) and set(table.values()) == {"ra", "rb"} else None


async def running(api: client.KubeClient, name: str) -> list[dict] | None:
    items = await api.list(pods_path(), labelSelector=f"superpod.dev/partition={name}")
    done = [i for i in items if (i.get("status") or {}).get("phase") == "Running"]
    return done if len(done) == PODS else None


async def test_a_replica_that_does_not_own_the_superpod_admits_pods_to_their_own_devices(cluster, tmp_path):
    sandbox, api = cluster
    files = certificates.self_signed(["127.0.0.1"], str(tmp_path))
    flags = [
        "--webhook-config",
        "external",
        "--tls-cert-file",
        files.cert_file,
        "--tls-key-file",
        files.key_file,
    ]
    replicas = {
        name: WebhookOperator(sandbox.kubeconfig, "--identity", name, *TIMING, *flags, standalone=False)
        for name in ("ra", "rb")
    }
    async with contextlib.AsyncExitStack() as stack:
        for index in range(len(SUPERPODS)):
            await stack.enter_async_context(simulated(sandbox, superpod_id=index))
        for index, name in enumerate(SUPERPODS):
            await api.create(SPOD, superpod(name, index))
        for replica in replicas.values():
            await replica.start()
            stack.push_async_callback(replica.stop)
        table = await eventually(lambda: one_owner_each(api), timeout=30)
        for name in SUPERPODS:
            admitting = next(r for r in replicas if r != table[name])
            await point_webhook_at(api, replicas[admitting], files.ca_pem)
            await api.create(
                partitions_path(), partition(f"on-{name}", 16 * PODS, superpod=name, devicesPerPod=16)
            )
            await allocated(api, f"on-{name}")
            for index in range(PODS):  # at once: the admitting replica may not have seen the placement yet
                await api.create(pods_path(), pod(f"on-{name}-{index}", f"on-{name}"))
            await eventually(lambda n=name: running(api, f"on-{n}"), timeout=30)
            log = replicas[admitting].log.read_text()
            assert f"placed team-a/on-{name}:" not in log, "the admitting replica placed the partition itself"

        for name in SUPERPODS:
            status = (await api.get(f"{partitions_path()}/on-{name}"))["status"]
            slots = {slot["pod"]: (slot["node"], sorted(slot["devices"])) for slot in status["allocation"]}
            assert sorted(slots) == [f"on-{name}-{index}" for index in range(PODS)], "one slot per pod"
            for item in await running(api, f"on-{name}") or []:
                used = item["metadata"]["annotations"]["huawei.com/AscendReal"].split(",")
                assert (item["spec"]["nodeName"], sorted(used)) == slots[item["metadata"]["name"]]
        await no_device_used_twice(api)
