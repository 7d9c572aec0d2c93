"""The real kubectl (v1.35) against the sandbox: every command the project's users and docs rely on."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import yaml

from tests.conftest import TOOLS_BIN
from tests.integration.sandbox import widgets

KUBECTL = str(TOOLS_BIN / "kubectl")
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: IMAGE, env: [{name: A, value: "1"}], ports: [{containerPort: 80}]}
"""


def deployment(replicas=2, image="nginx:1"):
    return DEPLOYMENT.replace("REPLICAS", str(replicas)).replace("IMAGE", image)


def get_json(kubectl, *args):
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def test_api_resources_lists_built_in_and_custom_kinds(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    out = kubectl("api-resources").stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"pods", "configmaps", "deployments", "leases", "customresourcedefinitions", "widgets"} <= set(
        rows
    )
    assert "wd" in rows["widgets"] and "example.dev/v1" in rows["widgets"]


def test_create_namespace_and_configmap_send_protobuf_and_succeed(kubectl):
    kubectl("create", "namespace", "team")
    kubectl("create", "configmap", "settings", "-n", "team", "--from-literal=level=high")
    assert get_json(kubectl, "configmap", "settings", "-n", "team")["data"] == {"level": "high"}


def test_client_side_apply_creates_then_merges_changes(kubectl):
    kubectl("apply", "-f", "-", stdin=deployment())
    kubectl("apply", "-f", "-", stdin=deployment(replicas=3, image="nginx:2"))
    web = get_json(kubectl, "deployment", "web")
    assert web["spec"]["replicas"] == 3
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    assert web["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in web["metadata"]["annotations"]


def test_server_side_apply_reports_conflicts_and_forces(kubectl):
    kubectl("apply", "--server-side", "-f", "-", stdin=deployment())
    refused = kubectl(
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-f",
        "-",
        stdin=deployment(replicas=5),
        check=False,
    )
    assert refused.returncode != 0
    assert 'conflict with "kubectl" using apps/v1: .spec.replicas' in refused.stderr
    kubectl(
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        "-",
        stdin=deployment(replicas=5),
    )
    assert get_json(kubectl, "deployment", "web")["spec"]["replicas"] == 5


def test_get_prints_a_crd_s_printer_columns(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.widget("w1", size=7)))
    kubectl(
        "patch",
        "widget",
        "w1",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        '{"status":{"phase":"Ready"}}',
    )
    lines = kubectl("get", "widgets").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PHASE"]
    assert lines[1].split() == ["w1", "7", "Ready"]
    assert kubectl("get", "gadgets").stdout.splitlines()[1].split()[0] == "w1"


def test_get_watch_prints_objects_as_they_come(kubectl, sandbox_thread, tmp_path):
    command = [
        KUBECTL,
        "--kubeconfig",
        sandbox_thread.kubeconfig,
        "--cache-dir",
        str(tmp_path / "cache"),
        "get",
        "configmaps",
        "-w",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as watcher:
        try:
            time.sleep(0.5)
            kubectl("create", "configmap", "late", "--from-literal=a=b")
            assert watcher.stdout is not None
            lines: queue.Queue[str] = queue.Queue()
            stdout = watcher.stdout
            threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
            deadline = time.monotonic() + 20
            line = ""
            while not line.startswith("late"):
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line.split()[:2] == ["late", "1"]
        finally:
            watcher.kill()


def test_describe_shows_the_object_and_its_events(kubectl):
    kubectl("create", "configmap", "described", "--from-literal=a=b")
    cm = get_json(kubectl, "configmap", "described")
    event = {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "described.1"},
        "involvedObject": {"kind": "ConfigMap", "name": "described", "namespace": "default", "uid": cm["metadata"]["uid"]},
        "reason": "Checked", "message": "looked at it", "type": "Normal", "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "source": {"component": "test"},
    }  # fmt: skip
    kubectl("create", "-f", "-", stdin=json.dumps(event))
    out = kubectl("describe", "configmap", "described").stdout
    assert "Name:         described" in out
    assert "Checked" in out and "looked at it" in out


def test_label_and_the_three_patch_types_change_the_object(kubectl):
    kubectl("apply", "-f", "-", stdin=deployment())
    kubectl("label", "deployment", "web", "tier=gold")
    kubectl("patch", "deployment", "web", "--type", "merge", "-p", '{"spec":{"replicas":3}}')
    kubectl(
        "patch",
        "deployment",
        "web",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":4}]',
    )
    kubectl(
        "patch",
        "deployment",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}',
    )
    web = get_json(kubectl, "deployment", "web")
    assert web["metadata"]["labels"] == {"app": "web", "tier": "gold"}
    assert web["spec"]["replicas"] == 4
    assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == ["web", "side"]
    assert web["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_a_failed_json_patch_test_is_refused(kubectl):
    kubectl("create", "configmap", "guarded", "--from-literal=a=b")
    failed = kubectl(
        "patch",
        "configmap",
        "guarded",
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/data/a","value":"zzz"}]',
        check=False,
    )
    assert failed.returncode != 0 and "the server rejected our request" in failed.stderr


def test_replace_puts_the_whole_object(kubectl):
    kubectl("create", "configmap", "swapped", "--from-literal=a=b")
    cm = get_json(kubectl, "configmap", "swapped")
    cm["data"] = {"c": "d"}
    kubectl("replace", "-f", "-", stdin=json.dumps(cm))
    assert get_json(kubectl, "configmap", "swapped")["data"] == {"c": "d"}


def test_delete_wait_returns_once_the_finalizer_is_removed(kubectl):
    kubectl("create", "configmap", "held", "--from-literal=a=b")
    kubectl("patch", "configmap", "held", "-p", '{"metadata":{"finalizers":["example.dev/hold"]}}')

    def release():
        time.sleep(1.0)
        kubectl(
            "patch",
            "configmap",
            "held",
            "--type",
            "json",
            "-p",
            '[{"op":"remove","path":"/metadata/finalizers"}]',
        )

    releaser = threading.Thread(target=release)
    releaser.start()
    started = time.monotonic()
    kubectl("delete", "configmap", "held", "--wait", "--timeout=20s")
    elapsed = time.monotonic() - started
    releaser.join()
    assert elapsed >= 0.9
    assert kubectl("get", "configmap", "held", check=False).returncode != 0


def test_get_all_lists_the_all_category(kubectl):
    kubectl("apply", "-f", "-", stdin=deployment())
    out = kubectl("get", "all").stdout
    assert "deployment.apps/web" in out


def test_explain_describes_a_crd_field(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    out = kubectl("explain", "widgets.spec.size").stdout
    assert "KIND:       Widget" in out and "FIELD: size <integer>" in out and "How big the widget is." in out


def test_apply_with_strict_validation_refuses_unknown_fields(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    body = widgets.widget("w1")
    body["spec"]["bogus"] = 1
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.bogus"' in refused.stderr


def test_scale_writes_spec_replicas_through_the_scale_subresource(kubectl):
    kubectl("apply", "-f", "-", stdin=deployment())
    kubectl("scale", "deployment", "web", "--replicas=4")
    web = get_json(kubectl, "deployment", "web")
    assert (web["spec"]["replicas"], web["metadata"]["generation"]) == (4, 2)
    scale = json.loads(
        kubectl("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale").stdout
    )
    assert scale["spec"] == {"replicas": 4} and scale["status"]["selector"] == "app=web"


def test_server_side_apply_refuses_unknown_fields_as_kube_words_it(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    body = widgets.widget("w1")
    body["spec"]["bogus"] = 1
    refused = kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(body), check=False)
    assert refused.returncode != 0
    assert (
        "failed to create typed patch object (example.dev/v1, Kind=Widget): .spec.bogus: field not declared in schema"
        in refused.stderr
    )


def test_apply_refuses_unknown_fields_of_built_in_kinds(kubectl):
    typo = deployment().replace("replicas: 2", "replicaz: 2")
    refused = kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert refused.returncode != 0
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz"'
        in refused.stderr
    )
    kubectl("apply", "--validate=false", "-f", "-", stdin=typo)
    assert "replicaz" not in get_json(kubectl, "deployment", "web")["spec"], "unknown fields are dropped"


def test_drain_evicts_pods_as_their_disruption_budget_allows(kubectl, sandbox_thread):
    kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    )
    for name in ("p1", "p2"):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "x"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}  # fmt: skip
        kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        kubectl("patch", "pod", name, "--subresource", "status", "--type", "merge", "-p", json.dumps(ready))
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"},
              "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "x"}}}}  # fmt: skip
    kubectl("apply", "-f", "-", stdin=json.dumps(budget))
    refused = kubectl("drain", "n1", "--force", "--timeout=3s", check=False)
    assert refused.returncode != 0 and "disruption budget" in refused.stderr
    assert len(get_json(kubectl, "pods")["items"]) == 2
    assert get_json(kubectl, "node", "n1")["spec"]["unschedulable"] is True

    stop = threading.Event()

    def kubelet():  # finishes graceful deletions, as the simulator's kubelet does
        while not stop.is_set():
            for pod in get_json(kubectl, "pods")["items"]:
                if pod["metadata"].get("deletionTimestamp"):
                    kubectl(
                        "delete",
                        "pod",
                        pod["metadata"]["name"],
                        "--grace-period=0",
                        "--force",
                        "--wait=false",
                        check=False,
                    )
            time.sleep(0.2)

    budget["spec"]["minAvailable"] = 0
    kubectl("apply", "-f", "-", stdin=json.dumps(budget))
    finisher = threading.Thread(target=kubelet)
    finisher.start()
    try:
        kubectl("drain", "n1", "--force", "--timeout=30s")
    finally:
        stop.set()
        finisher.join()
    assert get_json(kubectl, "pods")["items"] == []


def test_a_deprecated_crd_version_warns_on_every_request(kubectl):
    crd = widgets.crd()
    crd["spec"]["versions"][0]["deprecated"] = True
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(crd))
    listed = kubectl("get", "widgets")
    assert "Warning: example.dev/v1 Widget is deprecated" in listed.stderr
