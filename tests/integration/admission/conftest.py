"""The operator with its admission webhook (HTTPS, managed configuration) against a sandbox, and pod builders.

The sandbox calls the webhook as kube-apiserver does: it reads the MutatingWebhookConfiguration the operator
wrote, selects pods by its objectSelector, and POSTs AdmissionReviews over TLS checked against the caBundle.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest_asyncio
from superpod.cluster import client
from superpod_sandbox.apiserver import server
from superpod_sandbox.apiserver.admission import dispatcher
from superpod_sandbox.sim import simulator

from tests.integration.operator.conftest import (  # noqa: F401  (fixtures are used by name)
    Operator,
    add_a3_nodes,
    cluster,
    eventually,
    free_port,
    manifest,
)
from tests.integration.sim.conftest import FAST

JSON = dict[str, Any]
SPOD = "/apis/superpod.dev/v1alpha1/superpods"
WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
RESOURCE = "huawei.com/Ascend910"


def partitions_path(namespace: str = "team-a") -> str:
    return f"/apis/superpod.dev/v1alpha1/namespaces/{namespace}/superpodpartitions"


def pods_path(namespace: str = "team-a") -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def partition(
    name: str, npus: int, superpod: str = "cm384-a", namespace: str = "team-a", **spec: Any
) -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"superPod": superpod, "npus": npus, **spec},
    }


def pod(
    name: str | None,
    partition_name: str | None,
    *,
    devices: int | None = None,
    labels: dict[str, str] | None = None,
    namespace: str = "team-a",
    resource: str = RESOURCE,
) -> JSON:
    """A training pod; `name` None makes it use generateName; `partition_name` None leaves it unlabelled."""
    metadata: JSON = {"namespace": namespace, "labels": dict(labels or {})}
    if name is None:
        metadata["generateName"] = "worker-"
    else:
        metadata["name"] = name
    if partition_name is not None:
        metadata["labels"]["superpod.dev/partition"] = partition_name
    container: JSON = {"name": "main", "image": "busybox"}
    if devices is not None:
        container["resources"] = {"limits": {resource: str(devices)}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [container]}}


async def allocated(api: client.KubeClient, name: str, namespace: str = "team-a") -> JSON:
    async def check() -> JSON | None:
        obj = await api.get_or_none(f"{partitions_path(namespace)}/{name}")
        status = (obj or {}).get("status") or {}
        return obj if status.get("phase") == "Allocated" else None

    result: JSON = await eventually(check, timeout=15)
    return result


def simulated(
    sandbox: server.Sandbox, nodes: int = 4, profile: str = "cloudmatrix-384", superpod_id: int = 0
) -> simulator.Fleet:
    """A simulated fleet of `nodes` nodes of SuperPoD `superpod_id` against the sandbox, its device plugins and
    NPU-Exporters quick (`FAST`): pods get devices and `huawei.com/AscendReal` says which they really use."""
    return simulator.Fleet(
        profile, kubeconfig=sandbox.kubeconfig, superpod_id=superpod_id, nodes=nodes, options=FAST
    )


async def a3_superpod(api: client.KubeClient, nodes: int = 4) -> None:
    """`nodes` A3 nodes of 16 devices and the SuperPod cm384-a over them."""
    await add_a3_nodes(api, nodes)
    await api.create(SPOD, cm384())


async def placed_partition(
    api: client.KubeClient, name: str = "train", npus: int = 16, nodes: int = 4, **spec: Any
) -> JSON:
    """The partition `name` on a fresh cm384-a of `nodes` A3 nodes (`a3_superpod`), once it is Allocated."""
    await a3_superpod(api, nodes)
    await api.create(partitions_path(), partition(name, npus, **spec))
    return await allocated(api, name)


class WebhookOperator(Operator):
    """`superpod run` with its webhook on a free port of 127.0.0.1 and a managed webhook configuration."""

    def __init__(self, kubeconfig: str, *extra: str, standalone: bool = True) -> None:
        self.webhook_port = free_port()
        super().__init__(
            kubeconfig,
            "--webhook-port", str(self.webhook_port),
            "--webhook-host", "127.0.0.1",
            "--webhook-config", "managed",
            *extra,
            standalone=standalone,
        )  # fmt: skip


async def webhook_configuration(api: client.KubeClient) -> JSON:
    async def check() -> JSON | None:
        return await api.get_or_none(f"{WEBHOOKS}/superpod-operator")

    result: JSON = await eventually(check, timeout=15)
    return result


@pytest_asyncio.fixture
async def operator(cluster: tuple[server.Sandbox, client.KubeClient]) -> AsyncIterator[WebhookOperator]:  # noqa: F811
    sandbox, api = cluster
    await api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}
    )
    op = WebhookOperator(sandbox.kubeconfig)
    await op.start()
    await webhook_configuration(api)
    yield op
    await op.stop()


def cm384(name: str = "cm384-a") -> JSON:
    body = copy.deepcopy(manifest("superpod-cloudmatrix-384.yaml"))
    body["metadata"]["name"] = name
    return body


async def admission_review(
    session: aiohttp.ClientSession, configuration: JSON, obj: JSON
) -> dispatcher.AdmissionOutcome:
    """The pod's admission as kube-apiserver runs it against `configuration` (a URL one), without creating it."""
    request = dispatcher.AdmissionRequestInfo(
        operation="CREATE",
        group="",
        version="v1",
        kind="Pod",
        resource="pods",
        name=obj["metadata"]["name"],
        namespace=obj["metadata"]["namespace"],
        object=obj,
        namespace_labels={},
    )
    return await dispatcher.admit(
        mutating=[configuration],
        validating=[],
        request=request,
        service_resolver=lambda *_: "unused: the configuration has a URL",
        session=session,
    )


# ---- the guarantee, judged by what running pods really use ----------------------------------------------


async def no_device_used_twice(api: client.KubeClient) -> None:
    """What every live pod really uses (AscendReal) is held by its own partition only, and no two pods use
    one device."""
    held: dict[tuple[str, str], str] = {}
    for item in await api.list("/apis/superpod.dev/v1alpha1/superpodpartitions"):
        key = f"{item['metadata']['namespace']}/{item['metadata']['name']}"
        for slot in (item.get("status") or {}).get("allocation") or []:
            for device in slot["devices"]:
                assert (slot["node"], device) not in held, f"{device} of {slot['node']} held twice"
                held[(slot["node"], device)] = key
    used: dict[tuple[str, str], str] = {}
    for item in await api.list("/api/v1/pods"):
        metadata, pod_status = item["metadata"], item.get("status") or {}
        real = (metadata.get("annotations") or {}).get("huawei.com/AscendReal")
        if not real or pod_status.get("phase") not in ("Pending", "Running"):
            continue
        own = f"{metadata['namespace']}/{(metadata.get('labels') or {}).get('superpod.dev/partition')}"
        for device in real.split(","):
            place = (item["spec"]["nodeName"], device)
            assert place not in used, (
                f"{device} of {place[0]} used by {used.get(place)} and {metadata['name']}"
            )
            used[place] = metadata["name"]
            holder = held.get(place)
            assert holder in (None, own), f"pod {metadata['name']} ({own}) uses {device} held by {holder}"


Check = Callable[[client.KubeClient], Awaitable[None]]


@contextlib.asynccontextmanager
async def watching(api: client.KubeClient, *extra: Check, flaky_api: bool = False) -> AsyncIterator[None]:
    """Check the guarantee (`no_device_used_twice`, then each of `extra`) over and over while the body runs
    (a preemption or a move in flight included); the first check that fails fails the test. With `flaky_api`,
    a bad API answer (an operator restarted meanwhile, a connection reset) is passed over and the checks are
    made again; without it, it fails the test too."""
    failure: list[BaseException] = []

    async def loop() -> None:
        while True:
            try:
                for check in (no_device_used_twice, *extra):
                    await check(api)
            except AssertionError as error:
                failure.append(error)
                return
            except (client.ApiError, OSError):
                if not flaky_api:
                    raise
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if failure:
        raise failure[0]
