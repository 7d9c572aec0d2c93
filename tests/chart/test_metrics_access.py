"""Secure /metrics as the chart deploys it: only clients the API server authenticates and authorizes are served.

`superpod run --metrics-secure` (the chart's default) against the sandbox, whose TokenReview and
SubjectAccessReview answer from its own ServiceAccount tokens and RBAC. The chart's metrics-reader ClusterRole and
its binding (to a `prometheus` ServiceAccount) are applied as rendered. Then: no token, a forged token, an
expired-audience token, and the token of a ServiceAccount without the role are refused with nothing of the fleet
in the answer; Prometheus' token is served. A real Prometheus scrapes it with the ServiceMonitor's settings
(HTTPS checked against the CA, the ServiceAccount token presented).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from superpod.cluster import certificates, client

from tests.chart import helm as chart_helm
from tests.integration.operator.conftest import (
    SPOD,
    Operator,
    add_a3_nodes,
    free_port,
    manifest,
    sandbox_cluster,
)
from tests.monitoring import prometheus

VALUES = {"metrics": {"reader": {"serviceAccounts": [{"name": "prometheus", "namespace": "monitoring"}]}}}
MONITORING = "/api/v1/namespaces/monitoring"


async def token_of(api: client.KubeClient, account: str, audiences: list[str] | None = None) -> str:
    """A TokenRequest for a ServiceAccount of `monitoring` (`kubectl create token`)."""
    body: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    if audiences:
        body["spec"]["audiences"] = audiences
    answer = await api.create(f"{MONITORING}/serviceaccounts/{account}/token", body)
    return str(answer["status"]["token"])


async def apply_reader_role(api: client.KubeClient, manifests: list[dict[str, Any]]) -> None:
    """The chart's metrics-reader ClusterRole and its binding, as rendered."""
    for manifest_ in manifests:
        if manifest_["metadata"]["name"].endswith("-metrics-reader"):
            plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[
                manifest_["kind"]
            ]
            await api.create(f"/apis/rbac.authorization.k8s.io/v1/{plural}", manifest_)


@pytest_asyncio.fixture
async def secure(helm, tmp_path: Path) -> AsyncIterator[tuple[client.KubeClient, str, Path, Path]]:
    manifests = helm.template(VALUES)
    (container,) = chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--metrics-secure" in container["args"]
    files = certificates.self_signed(["127.0.0.1"], str(tmp_path))
    ca = tmp_path / "ca.crt"
    ca.write_bytes(files.ca_pem)
    async with sandbox_cluster() as (sandbox, api):
        await api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        )
        for account in ("prometheus", "stranger"):
            await api.create(
                f"{MONITORING}/serviceaccounts",
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
            )
        await apply_reader_role(api, manifests)
        await add_a3_nodes(api, 4)
        await api.create(SPOD, manifest("superpod-cloudmatrix-384.yaml"))
        port = free_port()
        running = Operator(
            sandbox.kubeconfig,
            "--metrics-secure", "--metrics-port", str(port),
            "--tls-cert-file", files.cert_file, "--tls-key-file", files.key_file,
        )  # fmt: skip
        await running.start()
        try:
            token = tmp_path / "token"
            token.write_text(await token_of(api, "prometheus"))
            yield api, f"https://127.0.0.1:{port}/metrics", ca, token
        finally:
            await running.stop()


async def get(url: str, ca: Path, token: str | None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context, headers=headers) as response:
        return response.status, await response.text()


async def test_only_an_authenticated_and_authorized_client_reads_the_metrics(secure):
    api, url, ca, token_file = secure
    refused = {
        "anonymous": (None, 401),
        "a forged token": ("not-a-token", 401),
        "a forged ServiceAccount token": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", 401),
        "a token for another audience": (await token_of(api, "prometheus", ["vault"]), 401),
        "a ServiceAccount without the reader role": (await token_of(api, "stranger"), 403),
    }
    for who, (token, expected) in refused.items():
        status, body = await get(url, ca, token)
        assert status == expected, who
        assert "superpod_" not in body, f"{who} was shown metrics"
    assert (
        "system:serviceaccount:monitoring:stranger may not get"
        in (await get(url, ca, refused["a ServiceAccount without the reader role"][0]))[1]
    )
    status, body = await get(url, ca, token_file.read_text())
    assert status == 200
    assert "superpod_reconcile_errors_total" in body

    async def plain_http_refused() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url.replace("https", "http")) as response,
            ):
                return (
                    response.status >= 400
                )  # a TLS port answers plain HTTP with an error, never the metrics
        except aiohttp.ClientError:
            return True

    assert await plain_http_refused()


async def test_prometheus_scrapes_with_the_service_monitor_settings(secure):
    """The ServiceMonitor's endpoint as a Prometheus scrape config: HTTPS against the CA, the token presented."""
    _, url, ca, token_file = secure
    target = url.removeprefix("https://").removesuffix("/metrics")
    scrape = {
        "job_name": "superpod-operator",
        "scrape_interval": "1s",
        "scheme": "https",
        "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
        "tls_config": {"ca_file": str(ca), "server_name": "127.0.0.1"},
        "static_configs": [{"targets": [target]}],
    }

    def scraped() -> list[dict[str, Any]]:  # in a thread: the sandbox answers the reviews on this event loop
        with prometheus.Prometheus([scrape]) as server:
            server.wait_for('up{job="superpod-operator"} == 1', timeout=60)
            return server.wait_for("superpod_reconcile_errors_total", timeout=60)

    assert await asyncio.to_thread(scraped)
