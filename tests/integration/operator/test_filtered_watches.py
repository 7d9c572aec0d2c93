"""The operator asks the API server only for the ConfigMaps it reads: the device plugin's and NodeD's.

Both publish them with the label `mx-consumer-cim: "true"`; the operator's list and watch of kube-system and
mindx-dl carry that label selector (`--configmap-selector`), so the other ConfigMaps there (kube-proxy's,
coredns', an application's 1 MiB index) are never sent to it. Judged by the requests the API server saw and by
what the operator still sees: a labelled device-info change (a fault) reaches the partition.
"""

from __future__ import annotations

from tests.builders import objects
from tests.integration.operator.conftest import (
    SPOD,
    SPP,
    Operator,
    add_a3_nodes,
    eventually,
    manifest,
    partition,
    phase_is,
)

CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps"


async def test_only_the_device_plugins_configmaps_are_listed_and_watched(cluster):
    sandbox, api = cluster
    reads: list[tuple[str, list[str]]] = []

    def record(request) -> None:  # every list and watch of ConfigMaps, with its label selector
        if request.method == "GET" and request.path.endswith("/configmaps"):
            reads.append((request.path, request.query.getall("labelSelector", [])))

    sandbox.request_observers.append(record)
    await add_a3_nodes(api, 4)
    for index in range(20):  # what else lives in kube-system, changing all the time
        await api.create(CONFIGMAPS, {"metadata": {"name": f"other-{index}"}, "data": {"x": "y" * 10_000}})
    operator = Operator(sandbox.kubeconfig)
    await operator.start(timeout=60)
    try:
        await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
        await api.create(SPP, partition("p", 16, repairPolicy="Manual"))
        placed = await eventually(lambda: phase_is(api, "p", "Allocated"), timeout=30)
        for index in range(20):
            await api.patch(f"{CONFIGMAPS}/other-{index}", {"data": {"x": "z" * 10_000}})
        node, device = placed["allocation"][0]["node"], placed["allocation"][0]["devices"][0]
        broken = objects.deviceinfo_configmap(
            node, unhealthy=(int(device.rsplit("-", 1)[1]),), server_index=int(node.rsplit("-", 1)[1])
        )
        await api.patch(f"{CONFIGMAPS}/{broken['metadata']['name']}", {"data": broken["data"]})
        degraded = await eventually(lambda: phase_is(api, "p", "Degraded"), timeout=15)
        assert f"{node}/{device}" in degraded["message"]
    finally:
        await operator.stop()
    namespaces = {path.split("/")[4] for path, _ in reads}
    assert namespaces == {"kube-system", "mindx-dl"}
    for path, selector in reads:
        assert selector == ["mx-consumer-cim=true"], path


async def test_an_empty_selector_reads_every_configmap_as_before(cluster):
    """For a device plugin that does not label its ConfigMaps: `--configmap-selector ""` lists them all."""
    sandbox, api = cluster
    unlabelled = objects.deviceinfo_configmap("a3-0-00", unhealthy=(3,))
    del unlabelled["metadata"]["labels"]
    await add_a3_nodes(api, 4, first=1)
    node = objects.node("a3-0-00").superpod(0, rack=0, server=0).devices(16).ready().obj()
    await api.create("/api/v1/nodes", node)
    await api.create(CONFIGMAPS, unlabelled)
    operator = Operator(sandbox.kubeconfig, "--configmap-selector", "")
    await operator.start(timeout=60)
    try:
        superpod = manifest("superpod-cloudmatrix-384.yaml")
        superpod["spec"]["reserveNodes"] = 0
        await api.create(SPOD, superpod)

        async def unhealthy_counted() -> int:
            superpod = await api.get(f"{SPOD}/cm384-a")
            return int(((superpod.get("status") or {}).get("devices") or {}).get("unhealthy", 0))

        assert await eventually(unhealthy_counted, timeout=30) == 1  # the unlabelled ConfigMap was read
    finally:
        await operator.stop()
