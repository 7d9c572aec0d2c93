"""Server-level behaviour: discovery formats, TLS, request counting, Leases and Events, HTTP-level Status codes."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config
from superpod_sandbox.apiserver import routes, server

from tests.conftest import TOOLS_BIN


def http(api, method, path, body=None, content_type="application/json", accept="application/json"):
    request = urllib.request.Request(
        api.url + path, data=body, method=method, headers={"Content-Type": content_type, "Accept": accept}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), json.loads(response.read())
    except urllib.error.HTTPError as failure:
        return failure.code, failure.headers.get("Content-Type"), json.loads(failure.read())


def test_aggregated_discovery_is_served_when_asked_for(sandbox_thread):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    status, content_type, body = http(sandbox_thread, "GET", "/apis", accept=accept)
    assert (
        status == 200
        and content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    apps = next(item for item in body["items"] if item["metadata"]["name"] == "apps")
    deployments = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deployments["scope"] == "Namespaced" and deployments["subresources"][0]["subresource"] == "status"
    status, _, legacy = http(sandbox_thread, "GET", "/apis")
    assert legacy["kind"] == "APIGroupList"


def test_the_version_resource_lists_subresources(sandbox_thread):
    _, _, body = http(sandbox_thread, "GET", "/api/v1")
    names = {r["name"]: r for r in body["resources"]}
    assert names["pods/binding"]["kind"] == "Binding" and names["pods/binding"]["verbs"] == ["create"]
    assert names["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert names["pods"]["categories"] == ["all"]


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "code", "reason"),
    [
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            b"{not json",
            "application/json",
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            b"<xml/>",
            "application/xml",
            415,
            "UnsupportedMediaType",
        ),
        ("PUT", "/api/v1/namespaces/default/configmaps", b"{}", "application/json", 405, "MethodNotAllowed"),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x",
            b"{}",
            "text/plain",
            415,
            "UnsupportedMediaType",
        ),
        ("GET", "/apis/nothing.dev/v1/things", None, "application/json", 404, "NotFound"),
        (
            "GET",
            "/api/v1/namespaces/default/pods/p/binding",
            None,
            "application/json",
            405,
            "MethodNotAllowed",
        ),
    ],
)
def test_malformed_requests_get_kube_status_codes(
    sandbox_thread, method, path, body, content_type, code, reason
):
    status, _, answer = http(sandbox_thread, method, path, body, content_type)
    assert (status, answer["kind"], answer["reason"], answer["code"]) == (code, "Status", reason, code)


def test_leases_and_both_event_apis_work_for_leader_election_and_recording(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    leases = client.CoordinationV1Api(api_client)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    created = leases.create_namespaced_lease("kube-system", lease)
    created.spec.holder_identity = "b"
    assert leases.replace_namespaced_lease("leader", "kube-system", created).spec.holder_identity == "b"
    events = client.EventsV1Api(api_client)
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="e1"), event_time="2026-01-01T00:00:00.000000Z", action="Placed", reason="Placed",
        reporting_controller="superpod.dev/operator", reporting_instance="op-0", type="Normal", note="placed",
        regarding=client.V1ObjectReference(kind="Pod", name="p", namespace="default"),
    )  # fmt: skip
    events.create_namespaced_event("default", event)
    assert [e.note for e in events.list_namespaced_event("default").items] == ["placed"]
    core_view = client.CoreV1Api(api_client).list_namespaced_event(
        "default", field_selector="involvedObject.name=p"
    )
    assert [(e.message, e.reporting_component, e.involved_object.kind) for e in core_view.items] == [
        ("placed", "superpod.dev/operator", "Pod")
    ]
    api_client.close()


def test_every_served_request_is_counted_for_rbac(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
    core.patch_namespaced_config_map("a", "default", {"data": {"x": "y"}})
    core.list_node()
    api_client.close()
    calls = sandbox_thread.calls
    assert calls[routes.Call("create", "", "configmaps", "", "default")] == 1
    assert calls[routes.Call("patch", "", "configmaps", "", "default")] == 1
    assert calls[routes.Call("list", "", "nodes", "", "")] == 1


def test_tls_serving_with_the_ca_in_the_kubeconfig(tmp_path):
    with server.in_thread(use_tls=True) as api:
        assert api.url.startswith("https://127.0.0.1:")
        done = subprocess.run(
            [str(TOOLS_BIN / "kubectl"), "--kubeconfig", api.kubeconfig, "--cache-dir", str(tmp_path), "get", "namespaces", "-o", "name"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "namespace/kube-system" in done.stdout.split()


def test_the_command_serves_until_stopped_and_writes_a_kubeconfig(tmp_path):
    import sys

    kubeconfig = tmp_path / "kc"
    command = [sys.executable, "-m", "superpod.cli", "sandbox", "--kubeconfig", str(kubeconfig), "--tls"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as served:
        try:
            assert served.stdout is not None
            line = served.stdout.readline()
            assert "sandbox API server at https://127.0.0.1:" in line
            done = subprocess.run(
                [str(TOOLS_BIN / "kubectl"), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"), "get", "ns", "default", "-o", "name"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.stdout.strip() == "namespace/default", done.stderr
        finally:
            served.terminate()
            served.wait(timeout=10)


def test_events_expire_after_the_event_ttl():
    import time

    with server.in_thread(event_ttl=2.0) as api:
        api_client = config.new_client_from_config(config_file=api.kubeconfig)
        core = client.CoreV1Api(api_client)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="short-lived"), involved_object=client.V1ObjectReference(kind="Pod", name="p"),
            reason="Test", message="soon gone", type="Normal",
        )  # fmt: skip
        core.create_namespaced_event("default", event)
        assert [e.metadata.name for e in core.list_namespaced_event("default").items] == ["short-lived"]
        deadline = time.monotonic() + 10
        while core.list_namespaced_event("default").items and time.monotonic() < deadline:
            time.sleep(0.2)
        assert core.list_namespaced_event("default").items == []
        api_client.close()
