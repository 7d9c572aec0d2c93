"""Table responses carry kube's columns and cells, and the real kubectl prints them."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from superpod_sandbox.apiserver.formats import printers

from tests.conftest import ROOT
from tests.unit.sandbox import fake_apiserver

PARTITION_COLUMNS = yaml.safe_load((ROOT / "crds" / "superpod.dev_superpodpartitions.yaml").read_text())[
    "spec"
]["versions"][0]["additionalPrinterColumns"]


def _ago(**delta: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(**delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def partition(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "uid": "u1",
        },
        "spec": {"superPod": "cm384", "npus": 16},
        "status": status,
    }


def test_crd_columns_put_name_first_and_keep_the_printer_columns() -> None:
    result = printers.table(
        [partition("p1", phase="Allocated", nodeCount=2)], PARTITION_COLUMNS, {"resourceVersion": "7"}
    )

    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "7"}
    assert [c["name"] for c in result["columnDefinitions"]] == [
        "Name",
        "SuperPod",
        "NPUs",
        "Phase",
        "Tier",
        "Nodes",
        "Reason",
        "Priority",
        "Quota",
        "Borrowing",
        "Age",
    ]
    assert result["columnDefinitions"][0]["format"] == "name"
    assert result["columnDefinitions"][6]["priority"] == 1
    assert result["columnDefinitions"][2]["description"] == (
        "Custom resource definition column (in JSONPath format): .spec.npus"
    )
    assert result["rows"][0]["cells"] == [
        "p1",
        "cm384",
        16,
        "Allocated",
        None,
        2,
        None,
        None,
        None,
        None,
        printers.since("2026-01-02T03:04:05Z"),
    ]


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        pytest.param("Metadata", "PartialObjectMetadata", id="metadata by default"),
        pytest.param("Object", "SuperPodPartition", id="the whole object"),
        pytest.param("None", None, id="no object"),
    ],
)
def test_rows_carry_the_object_as_asked(include: str, expected: str | None) -> None:
    row = printers.table([partition("p1")], PARTITION_COLUMNS, {}, include)["rows"][0]
    assert (row["object"]["kind"] if "object" in row else None) == expected


def test_crd_without_columns_gets_age_and_unknown_resources_get_created_at() -> None:
    crd = printers.table([partition("p1")], [], {})
    generic = printers.table([partition("p1")], None, {})
    assert [c["name"] for c in crd["columnDefinitions"]] == ["Name", "Age"]
    assert [c["name"] for c in generic["columnDefinitions"]] == ["Name", "Created At"]
    assert generic["rows"][0]["cells"] == ["p1", "2026-01-02T03:04:05Z"]


@pytest.mark.parametrize(
    ("path", "obj", "expected"),
    [
        pytest.param(".a.b", {"a": {"b": 1}}, [1], id="nested keys"),
        pytest.param(".a[1].b", {"a": [{"b": 1}, {"b": 2}]}, [2], id="an index"),
        pytest.param(
            '.status.conditions[?(@.type=="Ready")].status',
            {
                "status": {
                    "conditions": [{"type": "Other", "status": "x"}, {"type": "Ready", "status": "True"}]
                }
            },
            ["True"],
            id="a filter",
        ),
        pytest.param(
            "{.metadata.labels['app.kubernetes.io/name']}",
            {"metadata": {"labels": {"app.kubernetes.io/name": "n"}}},
            ["n"],
            id="a quoted key in braces",
        ),
        pytest.param(".a.missing", {"a": {}}, [], id="a missing key"),
    ],
)
def test_jsonpath_subset(path: str, obj: Any, expected: list[Any]) -> None:
    assert printers.evaluate(printers.compile_path(path), obj) == expected


@pytest.mark.parametrize(
    ("column_type", "value", "cell"),
    [
        pytest.param("string", {"a": 1}, "map[a:1]", id="a map printed as Go prints it"),
        pytest.param("string", 3, "3", id="a number in a string column"),
        pytest.param("integer", 2.0, 2, id="an integer column"),
        pytest.param("boolean", "yes", None, id="a mistyped boolean is null"),
        pytest.param("date", "not a date", "<invalid>", id="an invalid date"),
        pytest.param(
            "date",
            lambda: _ago(hours=3, minutes=2, seconds=20),  # computed when the test runs, not when collected
            "3h2m",
            id="a date as the age the server computes",
        ),
    ],
)
def test_cells_follow_the_column_type(column_type: str, value: Any, cell: Any) -> None:
    columns = [{"name": "X", "type": column_type, "jsonPath": ".spec.x"}]
    value = value() if callable(value) else value
    result = printers.table([{"metadata": {"name": "n"}, "spec": {"x": value}}], columns, {})
    assert result["rows"][0]["cells"][1] == cell


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (150, "2m30s"),
        (900, "15m"),
        (4 * 3600 + 120, "4h2m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
        (40 * 86400, "40d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert printers.human_duration(seconds) == text


def test_pod_printer_columns() -> None:
    pod = {
        "metadata": {"name": "train-0", "creationTimestamp": _ago(minutes=15)},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"ready": True, "restartCount": 1, "state": {"running": {}}},
                {"ready": False, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        },
    }
    result = printers.table([pod], printers.BUILTIN_COLUMNS[("", "pods")], {})
    assert result["rows"][0]["cells"][:5] == ["train-0", "1/2", "CrashLoopBackOff", "3", "15m"]
    assert result["rows"][0]["cells"][6] == "node-1"


def test_node_printer_columns() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": _ago(minutes=30),
            "labels": {"node-role.kubernetes.io/worker": ""},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.35.0"},
        },
    }
    cells = printers.table([node], printers.BUILTIN_COLUMNS[("", "nodes")], {})["rows"][0]["cells"]
    assert cells[:5] == ["n1", "Ready,SchedulingDisabled", "worker", "30m", "v1.35.0"]


def test_event_printer_has_no_leading_name() -> None:
    event = {
        "metadata": {"name": "e"},
        "type": "Normal",
        "reason": "Allocated",
        "message": "placed",
        "involvedObject": {"kind": "SuperPodPartition", "name": "p1"},
        "lastTimestamp": _ago(minutes=20),
    }
    cells = printers.table([event], printers.BUILTIN_COLUMNS[("", "events")], {})["rows"][0]["cells"]
    assert cells[:4] == ["20m", "Normal", "Allocated", "superpodpartition/p1"]


async def test_kubectl_prints_the_table(tmp_path: Path) -> None:
    resource = fake_apiserver.Resource(
        "superpod.dev", "v1alpha1", "SuperPodPartition", "superpodpartitions", short_names=("spp",)
    )
    objects = [
        partition("small", phase="Allocated", nodeCount=1, reason="Placed"),
        partition("big", phase="Pending"),
    ]
    objects[0]["metadata"]["creationTimestamp"] = _ago(minutes=15)

    async def list_partitions(request: web.Request) -> web.Response:
        assert "as=Table" in request.headers["Accept"]
        return web.json_response(
            printers.table(
                objects,
                PARTITION_COLUMNS,
                {"resourceVersion": "9"},
                request.query.get("includeObject", "Metadata"),
            )
        )

    server = fake_apiserver.FakeApiServer([resource], tmp_path)
    server.route("GET", "/apis/superpod.dev/v1alpha1/namespaces/default/superpodpartitions", list_partitions)
    async with server:
        code, out, err = await server.kubectl("get", "spp")
        wide_code, wide, _ = await server.kubectl("get", "spp", "-o", "wide")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SUPERPOD", "NPUS", "PHASE", "TIER", "NODES", "AGE"]
    assert lines[1].split() == ["small", "cm384", "16", "Allocated", "1", "15m"]  # a null cell prints empty
    assert wide_code == 0
    assert wide.splitlines()[0].split()[-5:] == ["REASON", "PRIORITY", "QUOTA", "BORROWING", "AGE"]
    assert wide.splitlines()[1].split()[-2] == "Placed"  # no priority, quota or borrowing: empty cells


def test_service_printer_columns() -> None:
    service = {
        "metadata": {"name": "web", "creationTimestamp": _ago(minutes=20)},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.0.0.7",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        },
    }
    cells = printers.table([service], printers.BUILTIN_COLUMNS[("", "services")], {})["rows"][0]["cells"]
    assert cells == ["web", "NodePort", "10.0.0.7", "<none>", "80:30080/TCP,53/UDP", "20m", "app=web"]
