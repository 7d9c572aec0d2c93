"""Admission webhooks are selected, called over verified TLS, and obeyed as kube-apiserver does it."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from superpod_sandbox.apiserver.admission import dispatcher


@dataclasses.dataclass
class WebhookServer:
    base: str  # https://127.0.0.1:<port>
    ca_bundle: str  # base64 PEM, as in clientConfig.caBundle
    calls: list[tuple[str, dict[str, Any]]]  # (path, AdmissionReview) in arrival order
    port: int


def review_response(review: dict[str, Any], **response: Any) -> web.Response:
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], **response},
    }
    return web.json_response(body)


def json_patch(*operations: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(list(operations)).encode()).decode()


@pytest.fixture
async def webhooks() -> AsyncIterator[WebhookServer]:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "hooks.webhooks.svc")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    calls: list[tuple[str, dict[str, Any]]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        review = await request.json()
        calls.append((request.path, review))
        kind = request.match_info["kind"]
        if kind == "label":
            obj = review["request"]["object"]
            has_labels = "labels" in obj["metadata"]
            operation = {
                "op": "add",
                "path": "/metadata/labels/step" if has_labels else "/metadata/labels",
                "value": "one" if has_labels else {"step": "zero"},
            }
            return review_response(review, allowed=True, patchType="JSONPatch", patch=json_patch(operation))
        if kind == "count":
            labels = review["request"]["object"]["metadata"].get("labels", {})
            patch = json_patch(
                {"op": "add", "path": "/metadata/annotations", "value": {"labels-seen": str(len(labels))}}
            )
            return review_response(
                review, allowed=True, patch=patch, patchType="JSONPatch", warnings=["counted"]
            )
        if kind == "allow":
            return review_response(review, allowed=True, warnings=["looked at it"])
        if kind == "deny":
            return review_response(
                review,
                allowed=False,
                status={"code": 403, "reason": "Forbidden", "message": "partitions need a superPod"},
            )
        if kind == "deny-bare":
            return review_response(review, allowed=False)
        if kind == "slow":
            await asyncio.sleep(3)
            return review_response(review, allowed=True)
        if kind == "wrong-uid":
            return web.json_response(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {"uid": "other", "allowed": True},
                }
            )
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_post("/{kind}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    ca_bundle = base64.b64encode(authority.cert_pem.bytes()).decode()
    try:
        yield WebhookServer(f"https://127.0.0.1:{port}", ca_bundle, calls, port)
    finally:
        await runner.cleanup()


def hook(server: WebhookServer, name: str, path: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": {"url": f"{server.base}/{path}", "caBundle": server.ca_bundle},
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": ["superpod.dev"],
                "apiVersions": ["v1alpha1"],
                "resources": ["superpodpartitions"],
                "scope": "Namespaced",
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 2,
        **extra,
    }


def configuration(name: str, *hooks: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }


def partition_request(**overrides: Any) -> dispatcher.AdmissionRequestInfo:
    obj = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": "p1", "namespace": "team-a"},
        "spec": {"npus": 16},
    }
    values: dict[str, Any] = {
        "operation": "CREATE",
        "group": "superpod.dev",
        "version": "v1alpha1",
        "kind": "SuperPodPartition",
        "resource": "superpodpartitions",
        "name": "p1",
        "namespace": "team-a",
        "object": obj,
        "namespace_labels": {"tenant": "a"},
    }
    values.update(overrides)
    return dispatcher.AdmissionRequestInfo(**values)


def no_services(namespace: str, name: str, port: int, path: str) -> str:
    raise AssertionError("no service expected")


async def test_mutations_apply_in_configuration_name_order_then_validation_runs(
    webhooks: WebhookServer,
) -> None:
    outcome = await dispatcher.admit(
        mutating=[
            configuration("b-count", hook(webhooks, "count.example.dev", "count")),
            configuration(
                "a-label",
                hook(webhooks, "label.example.dev", "label"),
                hook(webhooks, "label-again.example.dev", "label"),
            ),
        ],
        validating=[configuration("v", hook(webhooks, "allow.example.dev", "allow"))],
        request=partition_request(),
        service_resolver=no_services,
    )
    assert outcome.allowed and outcome.patched and outcome.status is None
    assert outcome.obj is not None
    assert outcome.obj["metadata"]["labels"] == {"step": "one"}
    assert outcome.obj["metadata"]["annotations"] == {"labels-seen": "1"}
    assert outcome.warnings == ["counted", "looked at it"]
    assert [path for path, _ in webhooks.calls] == ["/label", "/label", "/count", "/allow"]
    sent = webhooks.calls[-1][1]
    assert sent["apiVersion"] == "admission.k8s.io/v1" and sent["kind"] == "AdmissionReview"
    assert sent["request"]["object"]["metadata"]["labels"] == {
        "step": "one"
    }  # validators see the mutated object
    assert sent["request"]["resource"] == {
        "group": "superpod.dev",
        "version": "v1alpha1",
        "resource": "superpodpartitions",
    }


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        pytest.param(
            "deny",
            403,
            'admission webhook "check.example.dev" denied the request: partitions need a superPod',
            id="the webhook's code and message",
        ),
        pytest.param(
            "deny-bare",
            400,
            'admission webhook "check.example.dev" denied the request without explanation',
            id="no status gives 400 without explanation",
        ),
    ],
)
async def test_denials_become_the_clients_status(
    webhooks: WebhookServer, path: str, code: int, message: str
) -> None:
    outcome = await dispatcher.admit(
        mutating=[],
        validating=[configuration("v", hook(webhooks, "check.example.dev", path))],
        request=partition_request(),
        service_resolver=no_services,
    )
    assert not outcome.allowed
    assert outcome.status is not None
    assert (outcome.status["kind"], outcome.status["status"], outcome.status["code"]) == (
        "Status",
        "Failure",
        code,
    )
    assert outcome.status["message"] == message


@pytest.mark.parametrize(
    ("path", "policy", "ca_bundle", "allowed"),
    [
        pytest.param("slow", "Fail", None, False, id="a timeout under Fail refuses"),
        pytest.param("slow", "Ignore", None, True, id="a timeout under Ignore is skipped"),
        pytest.param("wrong-uid", "Fail", None, False, id="a response for another request refuses"),
        pytest.param("broken", "Fail", None, False, id="an HTTP 500 refuses"),
        pytest.param(
            "allow",
            "Fail",
            base64.b64encode(trustme.CA().cert_pem.bytes()).decode(),
            False,
            id="a certificate from another CA refuses",
        ),
    ],
)
async def test_failed_calls_follow_the_failure_policy(
    webhooks: WebhookServer, path: str, policy: str, ca_bundle: str | None, allowed: bool
) -> None:
    webhook = hook(webhooks, "flaky.example.dev", path, failurePolicy=policy, timeoutSeconds=1)
    if ca_bundle is not None:
        webhook["clientConfig"]["caBundle"] = ca_bundle
    outcome = await dispatcher.admit(
        mutating=[configuration("m", webhook)],
        validating=[],
        request=partition_request(),
        service_resolver=no_services,
    )
    assert outcome.allowed is allowed
    if not allowed:
        assert outcome.status is not None
        assert (outcome.status["code"], outcome.status["reason"]) == (500, "InternalError")
        assert outcome.status["message"].startswith(
            'Internal error occurred: failed calling webhook "flaky.example.dev": '
        )


async def test_a_service_reference_is_resolved_and_its_certificate_checked(webhooks: WebhookServer) -> None:
    asked: list[tuple[str, str, int, str]] = []

    def resolve(namespace: str, name: str, port: int, path: str) -> str:
        asked.append((namespace, name, port, path))
        return f"https://127.0.0.1:{webhooks.port}{path}"

    webhook = hook(webhooks, "svc.example.dev", "allow")
    webhook["clientConfig"] = {
        "service": {"namespace": "webhooks", "name": "hooks", "path": "/allow", "port": 8443},
        "caBundle": webhooks.ca_bundle,
    }
    outcome = await dispatcher.admit(
        mutating=[],
        validating=[configuration("v", webhook)],
        request=partition_request(),
        service_resolver=resolve,
    )
    assert outcome.allowed
    assert asked == [("webhooks", "hooks", 8443, "/allow")]


async def test_a_shared_session_is_reused(webhooks: WebhookServer) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            outcome = await dispatcher.admit(
                mutating=[],
                validating=[configuration("v", hook(webhooks, "a", "allow"))],
                request=partition_request(),
                service_resolver=no_services,
                session=session,
            )
            assert outcome.allowed
    assert len(webhooks.calls) == 3


SELECTION_CASES = [
    pytest.param({}, {}, True, id="the rule matches"),
    pytest.param(
        {"rules": [{"operations": ["DELETE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]},
        {},
        False,
        id="another operation",
    ),
    pytest.param(
        {"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]},
        {"subresource": "status"},
        False,
        id="a star resource matches no subresource",
    ),
    pytest.param(
        {
            "rules": [
                {
                    "operations": ["*"],
                    "apiGroups": ["*"],
                    "apiVersions": ["*"],
                    "resources": ["superpodpartitions/*"],
                }
            ]
        },
        {"subresource": "status"},
        True,
        id="a resource slash star matches its subresources",
    ),
    pytest.param(
        {
            "rules": [
                {
                    "operations": ["*"],
                    "apiGroups": ["*"],
                    "apiVersions": ["*"],
                    "resources": ["superpodpartitions/*"],
                }
            ]
        },
        {},
        True,
        id="a resource slash star also matches the resource itself as kube matches it",
    ),
    pytest.param(
        {
            "rules": [
                {
                    "operations": ["*"],
                    "apiGroups": ["*"],
                    "apiVersions": ["*"],
                    "resources": ["*/*"],
                    "scope": "Cluster",
                }
            ]
        },
        {},
        False,
        id="a cluster scope skips namespaced objects",
    ),
    pytest.param(
        {"namespaceSelector": {"matchLabels": {"tenant": "b"}}}, {}, False, id="another namespace label"
    ),
    pytest.param(
        {"namespaceSelector": {"matchExpressions": [{"key": "tenant", "operator": "In", "values": ["a"]}]}},
        {},
        True,
        id="a namespace label in a set",
    ),
    pytest.param(
        {"objectSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}},
        {},
        True,
        id="an object selector on absent labels",
    ),
    pytest.param(
        {"objectSelector": {"matchLabels": {"team": "x"}}}, {}, False, id="an object without the label"
    ),
    pytest.param(
        {"matchConditions": [{"name": "big", "expression": "object.spec.npus > 8"}]},
        {},
        True,
        id="a true match condition",
    ),
    pytest.param(
        {"matchConditions": [{"name": "small", "expression": "object.spec.npus < 8"}]},
        {},
        False,
        id="a false match condition",
    ),
]


@pytest.mark.parametrize(("overrides", "request_overrides", "called"), SELECTION_CASES)
async def test_webhook_selection(
    webhooks: WebhookServer, overrides: dict[str, Any], request_overrides: dict[str, Any], called: bool
) -> None:
    webhook = {**hook(webhooks, "seen.example.dev", "allow"), **overrides}
    outcome = await dispatcher.admit(
        mutating=[],
        validating=[configuration("v", webhook)],
        request=partition_request(**request_overrides),
        service_resolver=no_services,
    )
    assert outcome.allowed
    assert bool(webhooks.calls) is called


async def test_a_namespace_is_matched_by_its_own_labels(webhooks: WebhookServer) -> None:
    webhook = {
        **hook(webhooks, "ns.example.dev", "deny"),
        "namespaceSelector": {"matchLabels": {"env": "prod"}},
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["namespaces"]}
        ],
    }
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "prod", "labels": {"env": "prod"}},
    }
    request = dispatcher.AdmissionRequestInfo(
        operation="CREATE",
        group="",
        version="v1",
        kind="Namespace",
        resource="namespaces",
        name="prod",
        namespace="",
        object=namespace,
    )
    outcome = await dispatcher.admit(
        mutating=[], validating=[configuration("v", webhook)], request=request, service_resolver=no_services
    )
    assert not outcome.allowed


async def test_dry_run_is_refused_by_webhooks_with_side_effects(webhooks: WebhookServer) -> None:
    webhook = hook(webhooks, "effects.example.dev", "allow", sideEffects="Some")
    outcome = await dispatcher.admit(
        mutating=[configuration("m", webhook)],
        validating=[],
        request=partition_request(dry_run=True),
        service_resolver=no_services,
    )
    assert not outcome.allowed and outcome.status is not None
    assert (outcome.status["code"], outcome.status["message"]) == (
        400,
        'admission webhook "effects.example.dev" does not support dry run',
    )
    assert webhooks.calls == []


async def test_an_unpatched_object_is_returned_as_given(webhooks: WebhookServer) -> None:
    request = partition_request()
    outcome = await dispatcher.admit(
        mutating=[configuration("m", hook(webhooks, "a", "allow"))],
        validating=[],
        request=request,
        service_resolver=no_services,
    )
    assert outcome.allowed and not outcome.patched
    assert outcome.obj == request.object
