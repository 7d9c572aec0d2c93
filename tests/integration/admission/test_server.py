"""The webhook's HTTPS endpoint as kube-apiserver meets it: the operator's own certificate, AdmissionReviews in
and out, a 400 for anything else, and reviews that are not a labelled pod's creation allowed unchanged."""

from __future__ import annotations

import base64
import json
import ssl

import aiohttp
import pytest

from tests.integration.admission.conftest import WEBHOOKS, pod


async def post(api, body: bytes) -> tuple[int, dict | None]:
    """POST `body` to the URL of the operator's webhook configuration, trusting only its caBundle."""
    configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
    client_config = configuration["webhooks"][0]["clientConfig"]
    context = ssl.create_default_context(cadata=base64.b64decode(client_config["caBundle"]).decode())
    async with (
        aiohttp.ClientSession() as session,
        session.post(client_config["url"], data=body, ssl=context) as response,
    ):
        answer = await response.json() if response.status == 200 else None
        return response.status, answer


def review(operation: str, obj: dict) -> bytes:
    request = {"uid": "u-7", "operation": operation, "object": obj, "dryRun": False}
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="a body that is not JSON"),
        pytest.param(b'{"kind": "AdmissionReview"}', id="a review without a request"),
        pytest.param(b"[1, 2]", id="JSON that is not an object"),
    ],
)
async def test_what_is_not_an_admission_review_gets_a_400(cluster, operator, body):
    _, api = cluster
    status, _ = await post(api, body)
    assert status == 400


async def test_an_update_of_a_labelled_pod_is_allowed_unchanged(cluster, operator):
    _, api = cluster
    status, answer = await post(api, review("UPDATE", pod("worker-0", "train")))
    assert status == 200
    assert answer == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-7", "allowed": True},
    }
