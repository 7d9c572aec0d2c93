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


@pytest.fixture
async def recorder():
    """A webhook that records every review it gets and denies bindings to the node `forbidden`."""
    certificate = tls.generate(("127.0.0.1",))
    seen: list[dict] = []

    async def answer(request: web.Request) -> web.Response:
        req = (await request.json())["request"]
        seen.append(req)
        response = {"uid": req["uid"], "allowed": True}
        if (req["object"].get("target") or {}).get("name") == "forbidden":
            response = {"uid": req["uid"], "allowed": False, "status": {"code": 403, "message": "not there"}}
        return web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    app = web.Application()
    app.router.add_post("/review", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=certificate.server_context())
    await site.start()
    url = f"https://127.0.0.1:{sock.getsockname()[1]}/review"
    yield url, base64.b64encode(certificate.ca_pem).decode(), seen
    await runner.cleanup()


def pod_rules_configuration(url, ca_bundle, rules, match_conditions=()):
    config = configuration("ValidatingWebhookConfiguration", "pods.example.dev", url, ca_bundle)
    config["webhooks"][0]["rules"] = rules
    if match_conditions:
        config["webhooks"][0]["matchConditions"] = list(match_conditions)
    return config


async def test_a_binding_is_admitted_as_a_create_of_a_binding_not_as_a_pod_update(sandbox, recorder):
    url, ca_bundle, seen = recorder
    rules = [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/binding"]},
        {"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]},
    ]
    code, _, err = await kubectl(
        sandbox, "apply", "-f", "-", stdin=json.dumps(pod_rules_configuration(url, ca_bundle, rules))
    )
    assert code == 0, err
    base = f"{sandbox.url}/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}}
    async with aiohttp.ClientSession() as session:
        async with session.post(base, json={"apiVersion": "v1", "kind": "Pod", **pod}) as response:
            assert response.status == 201
        refused = {**binding, "target": {"apiVersion": "v1", "kind": "Node", "name": "forbidden"}}
        async with session.post(f"{base}/p/binding", json=refused) as response:
            assert response.status == 403
            assert "not there" in (await response.json())["message"]
        async with session.get(f"{base}/p") as response:
            assert "nodeName" not in (await response.json())["spec"]
        allowed = {**binding, "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
        async with session.post(f"{base}/p/binding", json=allowed) as response:
            assert response.status == 201
        async with session.get(f"{base}/p") as response:
            assert (await response.json())["spec"]["nodeName"] == "n1"

    assert [
        (r["operation"], r["kind"]["kind"], r.get("subResource"), r["object"]["target"]["name"]) for r in seen
    ] == [
        ("CREATE", "Binding", "binding", "forbidden"),
        ("CREATE", "Binding", "binding", "n1"),
    ]
    assert seen[0]["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert seen[0]["name"] == "p" and seen[0]["namespace"] == "default"
    assert seen[0]["oldObject"] is None


async def test_pod_updates_are_sent_with_the_old_object_and_match_conditions_choose_which(sandbox, recorder):
    url, ca_bundle, seen = recorder
    rules = [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
    conditions = [
        {
            "name": "labelled-before",
            "expression": "has(oldObject.metadata.labels) && 'team' in oldObject.metadata.labels",
        }
    ]
    config = pod_rules_configuration(url, ca_bundle, rules, conditions)
    code, _, err = await kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(config))
    assert code == 0, err
    for name, labels in (("plain", {}), ("teamed", {"team": "a"})):
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        code, _, err = await kubectl(sandbox, "create", "-f", "-", stdin=json.dumps(manifest))
        assert code == 0, err
        code, _, err = await kubectl(sandbox, "annotate", "pod", name, "note=changed")
        assert code == 0, err

    assert [(r["operation"], r["name"]) for r in seen] == [("UPDATE", "teamed")]
    assert seen[0]["oldObject"]["metadata"].get("annotations", {}).get("note") is None
    assert seen[0]["object"]["metadata"]["annotations"]["note"] == "changed"
