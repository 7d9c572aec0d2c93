"""The chart's RBAC against the API requests the real operator makes, in both modes.

`superpod run` runs with the chart's own flags and environment (operator-managed webhook, Leases; serving
every namespace, or only `operator.watchNamespace` with the namespaced Role; localised: loopback, free ports, URL
webhook with the operator's certificate) behind a recording proxy, while
a SuperPod is placed, a partition allocated, a labelled pod admitted and given the device plugin's answer
(the rank table is rewritten), the webhook configuration changed and restored by a restarted operator, the
secure /metrics scraped with a token (TokenReview and SubjectAccessReview), and the partition deleted with
deletionPolicy EvictPods (its pod evicted, its rank table deleted). Every request must be allowed by the roles
the chart binds to the operator's
ServiceAccount, and every permission the chart grants must be used: a new API call in the operator fails
here until the chart grants it, a call the operator drops fails here until the chart stops granting it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp
import pytest
from superpod.cluster import client
from superpod_sandbox.apiserver import server

from tests.chart import cases, rbac, recording_proxy
from tests.chart import helm as chart_helm
from tests.integration.admission import conftest as admission
from tests.integration.operator import conftest as operator_harness
from tests.integration.operator import forked

FULLNAME = "superpod-superpod-operator"
SANDBOX_TOKEN = "sandbox"  # the sandbox's static token of system:admin (its kubeconfig's)

# Seconds to wait for each step: generous, the machine is shared and a restarted replica may wait for kopf
# peering to settle.
PATIENCE = 60.0

# Requests the chart denies on purpose, with the reason; the operator handles the 403.
NEEDED_ON_RARE_PATHS: dict[tuple[str, str, str], str] = {
    ("get", "", "configmaps"): (
        "controller/ranktables.py reads a rank-table ConfigMap that already exists (made before a restart, or by "
        "the user) when its create answers 409; whether one cycle takes that path depends on timing"
    ),
    ("get", "", "pods"): (
        "controller/partitionpods.py reads a pod that holds a slot but left the watch without a seen deletion (an "
        "unscheduled pod deleted at once, a removed label), and controller/validation.py a pod bound to an "
        "isolated node that it has not seen; in this cycle the partition may go before the read is due"
    ),
    ("get", "superpod.dev", "superpodpartitions"): (
        "controller/admission.py and controller/binder.py read a partition this replica's memory does not show "
        "placed (another replica placed it, or the watch lags its write); here the one replica placed it itself"
    ),
    ("create", "", "pods/eviction"): (
        "controller/eviction.py evicts the pods of a preempted partition; this cycle preempts nothing"
    ),
    ("get", "", "namespaces"): (
        "controller/clusterfacts.py reads a namespace's labels only for quotas with a namespaceSelector; this "
        "cycle's SuperPod has no quotas"
    ),
}

DENIED_ON_PURPOSE: dict[tuple[str, str, str], str] = {
    ("create", "kopf.dev", "clusterkopfpeerings"): (
        "the operator creates its peering object when nobody did (controller/operator.py ensure_peering); the "
        "chart creates it, so the operator needs no create and takes the 403 as 'it exists'"
    ),
    ("create", "kopf.dev", "kopfpeerings"): "the same, for the KopfPeering of a namespaced operator",
    ("list", "", "namespaces"): (
        "kopf serving named namespaces lists all namespaces to see which exist; denied, it logs a warning and "
        "assumes the named one exists (kopf's observation.py): nothing is lost, no cluster-wide read is granted"
    ),
    ("watch", "", "namespaces"): "the same: kopf then reads the named namespace list only at startup",
}

# The two modes: the operator serves every namespace, or only team-a (its Role there, nothing of the others).
MODES: dict[str, dict[str, Any]] = {
    "cluster-wide": cases.VALUE_SETS["the operator manages its webhook configuration"],
    "namespaced": {"webhook": {"configManagedBy": "operator"}, "operator": {"watchNamespace": "team-a"}},
}
# Where the operator lists and watches ConfigMaps (the ClusterRole's comment promises these only).
CONFIGMAP_MIRRORS = {"kube-system", "mindx-dl"}


def test_request_attributes_follow_kube_apiserver_rules():
    attributes = recording_proxy.request_attributes
    assert attributes("GET", "/api/v1/namespaces/team-a/pods", {"watch": "true"}) == rbac.Call(
        "watch", "", "pods", "", "team-a"
    )
    assert attributes(
        "PATCH", "/apis/superpod.dev/v1alpha1/namespaces/t/superpodpartitions/p/status", {}
    ) == (rbac.Call("patch", "superpod.dev", "superpodpartitions", "status", "t", "p"))
    assert attributes("GET", "/api/v1/namespaces/team-a", {}) == rbac.Call(
        "get", "", "namespaces", "", "", "team-a"
    )
    assert attributes("GET", "/apis/kopf.dev/v1/clusterkopfpeerings", {}) == rbac.Call(
        "list", "kopf.dev", "clusterkopfpeerings"
    )
    assert attributes("DELETE", "/api/v1/namespaces/a/configmaps", {}).verb == "deletecollection"
    for discovery in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/version", "/openapi/v3"):
        assert attributes("GET", discovery, {}) is None


def _localised(
    args: list[str], *, kubeconfig: str, health_port: int, webhook_port: int, metrics_port: int
) -> list[str]:
    """The chart's flags for a process on this machine: loopback only, free ports, and a webhook the sandbox
    can call by URL with the operator's own certificate (no Service, no mounted Secret here)."""
    dropped = ("--tls-cert-file", "--tls-key-file", "--webhook-service", "--health-port", "--webhook-port")
    kept = [arg for arg in args if arg.split("=")[0] not in dropped and arg.split("=")[0] != "--webhook-host"]
    return [
        *kept,
        f"--kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--webhook-host=127.0.0.1",
        f"--health-port={health_port}",
        f"--webhook-port={webhook_port}",
        f"--metrics-port={metrics_port}",
        "--status-interval=0.05",
        "--inventory-debounce=0.02",
    ]


class ChartOperator(operator_harness.Operator):
    """`superpod run` with the flags and environment of the chart's Deployment (localised, see above)."""

    def __init__(self, container: dict[str, Any], kubeconfig: str) -> None:
        super().__init__(kubeconfig)
        self.container = container
        self.webhook_port = operator_harness.free_port()
        self.metrics_port = operator_harness.free_port()

    async def start(self, timeout: float = 30.0) -> None:
        self.health_port = operator_harness.free_port()
        args = _localised(
            self.container["args"],
            kubeconfig=self.kubeconfig,
            health_port=self.health_port,
            webhook_port=self.webhook_port,
            metrics_port=self.metrics_port,
        )
        environment = {**os.environ, **{e["name"]: e["value"] for e in self.container["env"] if "value" in e}}
        environment.pop("HOME", None)
        self.process = forked.Process(["run", *args], self.log, environment)
        await self._wait_healthy(timeout)

    async def _wait_healthy(self, timeout: float) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"operator exited: {self.log.read_text()[-3000:]}")
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            try:
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await admission.eventually(healthy, timeout=timeout, interval=0.1)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def recorded(helm, mode) -> list[rbac.Call]:
    """The operator's requests over one placement, admission and deletion cycle, run with the chart's flags
    (operator-managed webhook, Leases, the mode's namespaces) behind the recording proxy."""
    manifests = helm.template(MODES[mode])
    (container,) = chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    async with server.Sandbox() as sandbox, recording_proxy.RecordingProxy(sandbox.url) as proxy:
        async with client.KubeClient(client.credentials_from_kubeconfig(sandbox.kubeconfig)) as api:
            await operator_harness.apply_crds(api)
            namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
            await api.create("/api/v1/namespaces", namespace)
            release = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": chart_helm.NAMESPACE}}
            await api.create("/api/v1/namespaces", release)  # where the Leases are
            await admission.add_a3_nodes(api, 4)
            operator = ChartOperator(container, proxy.kubeconfig)
            await operator.start()
            try:
                await admission.eventually(
                    lambda: _webhook_is_current(api, operator.webhook_port), timeout=PATIENCE
                )
                # Someone changes the configuration: the restarted operator must put its own back (update).
                path = f"{admission.WEBHOOKS}/superpod-operator"
                changed = await api.get(path)
                changed["webhooks"][0]["failurePolicy"] = "Ignore"
                await api.replace(path, changed)
                await operator.restart()
                await admission.eventually(
                    lambda: _webhook_is_current(api, operator.webhook_port), timeout=PATIENCE
                )
                await api.create(admission.SPOD, admission.cm384())
                await api.create(
                    admission.partitions_path(), admission.partition("train", 32, devicesPerPod=16)
                )
                await admission.eventually(lambda: _phase(api, "train", "Allocated"), timeout=PATIENCE)
                admitted = await api.create(admission.pods_path(), admission.pod("worker-0", "train"))
                # The device plugin's answer: the rank table gains the pod's devices (a ConfigMap patch).
                await api.patch(f"{admission.pods_path()}/worker-0", _device_plugin_annotation(admitted))

                async def rank_table_rewritten() -> bool:
                    return any(c.resource == "configmaps" and c.verb == "patch" for c in proxy.calls)

                await admission.eventually(rank_table_rewritten, timeout=PATIENCE)
                # Deleted while its pod is there, with EvictPods: the pod is evicted, then the rank table deleted.
                patch = {"spec": {"deletionPolicy": "EvictPods"}}
                await api.patch(f"{admission.partitions_path()}/train", patch)
                await api.delete(f"{admission.partitions_path()}/train")

                async def partition_gone() -> bool:
                    return await api.get_or_none(f"{admission.partitions_path()}/train") is None

                await admission.eventually(partition_gone, timeout=PATIENCE)
                # Secure /metrics (the chart's default): a scrape's token is reviewed by the API server.
                assert await _scrape(operator.metrics_port) == 200
            finally:
                await operator.stop()
        return list(proxy.calls)


async def _scrape(port: int) -> int:
    """One scrape of the operator's HTTPS /metrics with the sandbox administrator's token."""
    headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
    url = f"https://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, ssl=False) as response:
        return response.status


async def _phase(api: client.KubeClient, name: str, phase: str) -> bool:
    partition = await api.get_or_none(f"{admission.partitions_path()}/{name}")
    return ((partition or {}).get("status") or {}).get("phase") == phase


async def _webhook_is_current(api: client.KubeClient, port: int) -> bool:
    configuration = await api.get_or_none(f"{admission.WEBHOOKS}/superpod-operator")
    webhook = ((configuration or {}).get("webhooks") or [{}])[0]
    return webhook.get("failurePolicy") == "Fail" and f":{port}/" in webhook.get("clientConfig", {}).get(
        "url", ""
    )


def _device_plugin_annotation(pod: dict[str, Any]) -> dict[str, Any]:
    """The annotation the Ascend device plugin writes after Allocate, for the devices the webhook pinned."""
    pinned = pod["metadata"]["annotations"][admission.RESOURCE].split(",")
    ids = [name.removeprefix("Ascend910-") for name in pinned]
    configuration = {
        "pod_name": pod["metadata"]["name"],
        "server_id": "10.0.0.1",
        "host_ip": "10.0.0.1",
        "super_pod_id": 0,
        "devices": [
            {"device_id": i, "device_ip": f"192.168.0.{i}", "super_device_id": str(int(i) + 1000)}
            for i in ids
        ],
        "rack_id": 0,
        "server_index": "0",
    }
    annotation = "ascend.kubectl.kubernetes.io/ascend-910-configuration"
    return {"metadata": {"annotations": {annotation: json.dumps(configuration)}}}


def _grants(helm: chart_helm.Helm, mode: str) -> list[rbac.Grant]:  # the same value set as the run above
    return rbac.grants_of(helm.template(MODES[mode]), FULLNAME, chart_helm.NAMESPACE)


async def test_the_chart_allows_every_request_of_the_operator_and_nothing_more(helm, mode, recorded):
    assert recorded, "the proxy recorded nothing: is the operator using its kubeconfig?"
    grants = _grants(helm, mode)
    mirrored = {c.namespace for c in recorded if c.resource == "configmaps" and c.verb in ("list", "watch")}
    assert mirrored == CONFIGMAP_MIRRORS, (
        "ConfigMaps are listed or watched outside the device-info namespaces"
    )
    written = {c.namespace for c in recorded if c.resource == "configmaps" and c.verb in ("create", "patch")}
    assert written == {"team-a"}, "rank tables are written only in the partition's namespace"
    if mode == "namespaced":
        served = {c.namespace for c in recorded if c.resource in ("pods", "superpodpartitions")}
        assert served == {"team-a"}, (
            "a namespaced operator reaches for pods or partitions of other namespaces"
        )
    denied = [(r.verb, r.group, r.resource) for r in rbac.denied(grants, recorded)]
    unexpected = [request for request in denied if request not in DENIED_ON_PURPOSE]
    assert unexpected == [], "add these to helm/superpod-operator/templates/rbac.yaml"
    unused = [
        (group, resource, verb)
        for group, resource, verb in rbac.unused(grants, recorded)
        if (verb, group, resource) not in NEEDED_ON_RARE_PATHS
    ]
    assert unused == [], "the operator no longer needs these: drop them from the chart"
