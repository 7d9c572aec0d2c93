"""Admission webhooks over HTTPS, configured as in a cluster: a mutation is applied, a denial reaches kubectl."""

from __future__ import annotations

import asyncio
import base64
import json
import socket

import aiohttp
import pytest
from aiohttp import web
from superpod_sandbox.apiserver import tls

from tests.conftest import TOOLS_BIN


async def kubectl(api, *args, stdin=None):
    process = await asyncio.create_subprocess_exec(
        str(TOOLS_BIN / "kubectl"), "--kubeconfig", api.kubeconfig, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode() if stdin else None)
    return process.returncode, out.decode(), err.decode()


async def review(request: web.Request) -> web.Response:
    body = await request.json()
    req = body["request"]
    response = {"uid": req["uid"], "allowed": True}
    if request.path == "/slow":
        await asyncio.sleep(0.3)  # long enough for concurrent writes to overlap
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )
    if request.path == "/mutate":
        patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        response |= {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}
    elif "forbidden" in (req["object"].get("data") or {}):
        response = {
            "uid": req["uid"],
            "allowed": False,
            "status": {"code": 403, "reason": "Forbidden", "message": "no forbidden keys"},
        }
    return web.json_response(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    )


@pytest.fixture
async def webhook_url():
    certificate = tls.generate(("127.0.0.1", "hook.webhooks.svc"))
    app = web.Application()
    app.router.add_post("/mutate", review)
    app.router.add_post("/validate", review)
    app.router.add_post("/slow", review)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=certificate.server_context())
    await site.start()
    yield f"https://127.0.0.1:{sock.getsockname()[1]}", base64.b64encode(certificate.ca_pem).decode()
    await runner.cleanup()


def configuration(kind, name, url, ca_bundle, operations=("CREATE",)):
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": name,
                "clientConfig": {"url": url, "caBundle": ca_bundle},
                "rules": [
                    {
                        "operations": list(operations),
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                    }
                ],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
            }
        ],
    }


async def test_webhooks_mutate_and_deny_as_configured(sandbox, webhook_url):
    base, ca_bundle = webhook_url
    mutating = configuration("MutatingWebhookConfiguration", "label.example.dev", f"{base}/mutate", ca_bundle)
    validating = configuration(
        "ValidatingWebhookConfiguration", "deny.example.dev", f"{base}/validate", ca_bundle
    )
    for config in (mutating, validating):
        code, _, err = await kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(config))
        assert code == 0, err
    code, _, err = await kubectl(sandbox, "create", "configmap", "fine", "--from-literal=a=b")
    assert code == 0, err
    _, out, _ = await kubectl(sandbox, "get", "configmap", "fine", "-o", "json")
    assert json.loads(out)["metadata"]["labels"] == {"mutated": "yes"}
    code, _, err = await kubectl(sandbox, "create", "configmap", "bad", "--from-literal=forbidden=x")
    assert code != 0
    assert 'admission webhook "deny.example.dev" denied the request: no forbidden keys' in err


async def test_concurrent_patches_during_slow_admission_both_land(sandbox, webhook_url):
    base, ca_bundle = webhook_url
    slow = configuration(
        "ValidatingWebhookConfiguration", "slow.example.dev", f"{base}/slow", ca_bundle, ("UPDATE",)
    )
    code, _, err = await kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(slow))
    assert code == 0, err
    code, _, err = await kubectl(sandbox, "create", "configmap", "shared", "--from-literal=a=b")
    assert code == 0, err
    path = f"{sandbox.url}/api/v1/namespaces/default/configmaps/shared"
    headers = {"Content-Type": "application/merge-patch+json"}
    async with aiohttp.ClientSession() as session:

        async def label(key):
            patch = json.dumps({"metadata": {"labels": {key: "1"}}})
            async with session.patch(path, data=patch, headers=headers) as response:
                return response.status

        assert await asyncio.gather(label("first"), label("second")) == [200, 200]
    _, out, _ = await kubectl(sandbox, "get", "configmap", "shared", "-o", "json")
    assert json.loads(out)["metadata"]["labels"] == {"first": "1", "second": "1"}


async def test_a_service_addressed_webhook_is_reached_through_the_endpoint_map(sandbox, webhook_url):
    base, ca_bundle = webhook_url
    sandbox.webhooks.endpoints[("webhooks", "hook")] = base
    config = configuration("MutatingWebhookConfiguration", "label.example.dev", "unused", ca_bundle)
    config["webhooks"][0]["clientConfig"] = {
        "service": {"namespace": "webhooks", "name": "hook", "path": "/mutate", "port": 443},
        "caBundle": ca_bundle,
    }
    code, _, err = await kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(config))
    assert code == 0, err
    code, _, err = await kubectl(sandbox, "create", "configmap", "via-service", "--from-literal=a=b")
    assert code == 0, err
    _, out, _ = await kubectl(sandbox, "get", "configmap", "via-service", "-o", "json")
    assert json.loads(out)["metadata"]["labels"] == {"mutated": "yes"}
