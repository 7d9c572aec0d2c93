"""Client-certificate verification of the webhook's callers (`--webhook-client-ca-file`), with real TLS both
ways: the operator's HTTPS server requires a certificate signed by the configured CA, and the sandbox API server
presents one the way kube-apiserver does when its AdmissionConfiguration gives it a client certificate.

Whoever reaches the webhook port without such a certificate (a tenant's pod, a review posted by hand) fails the
TLS handshake: no slot is claimed, nothing about nodes or devices is answered."""

from __future__ import annotations

import base64
import json
import pathlib
import ssl
import subprocess
import sys

import aiohttp
import pytest
import trustme
from superpod.cluster import client
from superpod_sandbox.apiserver.admission import dispatcher

from tests.integration.admission.conftest import (
    WEBHOOKS,
    WebhookOperator,
    partitions_path,
    placed_partition,
    pod,
    pods_path,
    webhook_configuration,
)

R = "huawei.com/Ascend910"


def _presented(ca: trustme.CA, name: str = "kube-apiserver") -> dispatcher.ClientCertificate:
    leaf = ca.issue_cert(name)
    return dispatcher.ClientCertificate(
        cert_pem=b"".join(blob.bytes() for blob in leaf.cert_chain_pems), key_pem=leaf.private_key_pem.bytes()
    )


async def _post(api, certificate: dispatcher.ClientCertificate | None, folder: pathlib.Path) -> dict:
    """POST a review for a labelled pod to the configured webhook URL, trusting its caBundle."""
    configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
    client_config = configuration["webhooks"][0]["clientConfig"]
    context = ssl.create_default_context(cadata=base64.b64decode(client_config["caBundle"]).decode())
    if certificate is not None:
        (folder / "tls.crt").write_bytes(certificate.cert_pem)
        (folder / "tls.key").write_bytes(certificate.key_pem)
        context.load_cert_chain(folder / "tls.crt", folder / "tls.key")
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": "CREATE", "object": pod("ghost", "train"), "dryRun": False},
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(client_config["url"], data=json.dumps(review), ssl=context) as response,
    ):
        assert response.status == 200
        return dict(await response.json())


@pytest.fixture
async def verified(cluster, tmp_path):
    """The operator requiring client certificates of `ca`; the partition `train` allocated."""
    sandbox, api = cluster
    ca = trustme.CA()
    (tmp_path / "client-ca.crt").write_bytes(ca.cert_pem.bytes())
    operator = WebhookOperator(
        sandbox.kubeconfig, "--webhook-client-ca-file", str(tmp_path / "client-ca.crt")
    )
    await operator.start()
    try:
        await webhook_configuration(api)
        await placed_partition(api)
        yield sandbox, api, ca
    finally:
        await operator.stop()


async def _slots(api) -> list[str | None]:
    return [slot.get("pod") for slot in (await api.get(f"{partitions_path()}/train"))["status"]["allocation"]]


async def test_a_caller_without_a_certificate_of_the_ca_fails_the_handshake(verified, tmp_path):
    _, api, ca = verified
    for certificate in (None, _presented(trustme.CA())):  # none, and one of another CA
        with pytest.raises(aiohttp.ClientError):
            await _post(api, certificate, tmp_path)
    assert await _slots(api) == [None]  # nothing claimed

    answer = await _post(api, _presented(ca), tmp_path)
    assert answer["response"]["allowed"] is True


async def test_the_api_server_presenting_its_certificate_is_served(verified):
    sandbox, api, ca = verified
    # kube-apiserver without a client certificate for the webhook: the call fails, the pod is refused
    with pytest.raises(client.ApiError, match="failed to call webhook"):
        await api.create(pods_path(), pod("worker-0", "train"))
    assert await api.get_or_none(f"{pods_path()}/worker-0") is None
    assert await _slots(api) == [None]

    sandbox.webhooks.client_certificate = _presented(ca)
    created = await api.create(pods_path(), pod("worker-0", "train"))
    assert created["metadata"]["annotations"][R].count(",") == 15
    assert await _slots(api) == ["worker-0"]


def test_a_client_ca_file_that_is_not_a_ca_bundle_stops_the_operator_with_one_line(tmp_path):
    bogus = tmp_path / "ca.crt"
    bogus.write_text("not a certificate")
    result = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "run", "--webhook-client-ca-file", str(bogus)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"superpod run: --webhook-client-ca-file {bogus}: not a readable")
