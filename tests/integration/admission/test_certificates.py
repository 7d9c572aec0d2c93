"""A mounted certificate (a kubernetes.io/tls Secret, as cert-manager writes it) with a chart-owned webhook
configuration (`--webhook-config external`); dry runs claim nothing."""

from __future__ import annotations

import asyncio

from superpod.cluster import certificates, webhookconfig

from tests.integration.admission.conftest import (
    WEBHOOKS,
    WebhookOperator,
    partitions_path,
    placed_partition,
    pod,
    pods_path,
)


async def test_a_mounted_certificate_serves_a_configuration_the_chart_owns(cluster, tmp_path):
    sandbox, api = cluster
    files = certificates.self_signed(["127.0.0.1"], str(tmp_path))
    (tmp_path / "ca.crt").write_bytes(files.ca_pem)
    operator = WebhookOperator(
        sandbox.kubeconfig,
        "--webhook-config", "external",
        "--tls-cert-file", files.cert_file,
        "--tls-key-file", files.key_file,
    )  # fmt: skip
    client_config = webhookconfig.client_config(ca_pem=files.ca_pem, port=operator.webhook_port)
    chart_owned = webhookconfig.configuration(client_config)
    chart_owned["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "Helm"}
    chart_owned["webhooks"][0]["timeoutSeconds"] = (
        10  # unlike the operator's own: it must stay as the chart set it
    )
    await api.create(WEBHOOKS, chart_owned)
    await operator.start()
    try:
        await placed_partition(api)

        created = await api.create(pods_path(), pod("worker-0", "train"))

        assert created["metadata"]["annotations"]["huawei.com/Ascend910"].count(",") == 15
        await asyncio.sleep(0.5)  # the operator would have rewritten a configuration it managed by now
        current = await api.get(f"{WEBHOOKS}/superpod-operator")
        assert current["webhooks"][0]["timeoutSeconds"] == 10
        assert current["webhooks"][0]["clientConfig"] == client_config
    finally:
        await operator.stop()


async def test_a_dry_run_is_answered_and_claims_no_slot(cluster, operator):
    _, api = cluster
    await placed_partition(api)

    answered = await api.request("POST", pods_path(), body=pod("trial", "train"), params={"dryRun": "All"})

    assert answered["spec"]["containers"][0]["env"][0] == {"name": "RANK", "value": "0"}
    status = (await api.get(f"{partitions_path()}/train"))["status"]
    assert "pod" not in status["allocation"][0]
    assert await api.get_or_none(f"{pods_path()}/trial") is None
