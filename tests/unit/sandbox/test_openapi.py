"""The OpenAPI v3 documents give the real kubectl what it needs for explain, apply and create."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from superpod_sandbox.apiserver.formats import openapi

from tests.conftest import ROOT
from tests.unit.sandbox import fake_apiserver

CRD = yaml.safe_load((ROOT / "crds" / "superpod.dev_superpodpartitions.yaml").read_text())
PARTITIONS = openapi.ServedResource(
    kind="SuperPodPartition",
    plural="superpodpartitions",
    namespaced=True,
    schema=CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
    subresources=("status",),
)
CONFIGMAPS = openapi.ServedResource(kind="ConfigMap", plural="configmaps", namespaced=True, schema=None)
NAMESPACES = openapi.ServedResource(kind="Namespace", plural="namespaces", namespaced=False, schema=None)
DISCOVERY = [
    fake_apiserver.Resource(
        "superpod.dev", "v1alpha1", "SuperPodPartition", "superpodpartitions", short_names=("spp",)
    ),
    fake_apiserver.Resource("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    fake_apiserver.Resource("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",)),
]


def documents() -> dict[str, dict[str, Any]]:
    return {
        "apis/superpod.dev/v1alpha1": openapi.document("superpod.dev", "v1alpha1", [PARTITIONS]),
        "api/v1": openapi.document("", "v1", [CONFIGMAPS, NAMESPACES]),
    }


def test_the_index_points_at_each_document_with_its_hash() -> None:
    docs = documents()
    hashes = {"superpod.dev/v1alpha1": openapi.document_hash(docs["apis/superpod.dev/v1alpha1"])}
    index = openapi.index(["superpod.dev/v1alpha1", "v1"], hashes)
    assert set(index["paths"]) == {"apis/superpod.dev/v1alpha1", "api/v1"}
    assert index["paths"]["apis/superpod.dev/v1alpha1"]["serverRelativeURL"] == (
        f"/openapi/v3/apis/superpod.dev/v1alpha1?hash={hashes['superpod.dev/v1alpha1']}"
    )


def test_components_are_named_like_kube_and_carry_their_gvk() -> None:
    schemas = documents()["apis/superpod.dev/v1alpha1"]["components"]["schemas"]
    partition = schemas["dev.superpod.v1alpha1.SuperPodPartition"]
    assert partition["x-kubernetes-group-version-kind"] == [
        {"group": "superpod.dev", "version": "v1alpha1", "kind": "SuperPodPartition"}
    ]
    assert partition["properties"]["metadata"]["allOf"] == [{"$ref": openapi.OBJECT_META_REF}]
    assert "dev.superpod.v1alpha1.SuperPodPartitionList" in schemas
    assert openapi.component_name("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert openapi.component_name("rbac.authorization.k8s.io", "v1", "Role") == (
        "io.k8s.api.rbac_authorization.v1.Role"
    )


def test_every_patch_operation_offers_field_validation_and_built_ins_strategic_merge() -> None:
    for key, doc in documents().items():
        for path in doc["paths"].values():
            if "patch" in path:
                names = [parameter["name"] for parameter in path["patch"]["parameters"]]
                assert "fieldValidation" in names
                strategic = (
                    "application/strategic-merge-patch+json" in path["patch"]["requestBody"]["content"]
                )
                assert strategic == (key == "api/v1")  # custom resources get JSON merge patches, as in kube


def test_built_in_kinds_are_kubes_own_definitions_with_what_they_refer_to() -> None:
    schemas = documents()["api/v1"]["components"]["schemas"]
    config_map = schemas["io.k8s.api.core.v1.ConfigMap"]
    assert config_map["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}
    ]
    assert config_map["properties"]["data"]["additionalProperties"] == {"type": "string"}
    assert config_map["properties"]["metadata"]["allOf"] == [{"$ref": openapi.OBJECT_META_REF}]
    assert "enum" not in config_map["properties"]["kind"]
    owner_references = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "ownerReferences"
    ]
    assert owner_references["x-kubernetes-patch-merge-key"] == "uid"
    for schema in schemas.values():  # every reference resolves within the document
        for ref in re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)):
            assert ref in schemas


class Store:
    """Just enough of an API server for kubectl apply/create: objects by path, merge patches."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    async def read(self, request: web.Request) -> web.Response:
        obj = self.objects.get(request.path)
        if obj is None:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "NotFound",
                "code": 404,
                "message": f"{request.match_info['name']} not found",
                "details": {"name": request.match_info["name"]},
            }
            return web.json_response(status, status=404)
        return web.json_response(obj)

    async def create(self, request: web.Request) -> web.Response:
        obj = json.loads(await request.read())
        obj["metadata"].update(
            {"uid": "u-1", "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}
        )
        self.objects[f"{request.path}/{obj['metadata']['name']}"] = obj
        return web.json_response(obj, status=201)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.content_type == "application/apply-patch+yaml":
            self.objects[request.path] = yaml.safe_load(body)
        else:
            self.objects[request.path] = merge(self.objects[request.path], json.loads(body))
        return web.json_response(self.objects[request.path])


def merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


async def serve(tmp_path: Path) -> tuple[fake_apiserver.FakeApiServer, Store]:
    docs = documents()
    store = Store()
    server = fake_apiserver.FakeApiServer(DISCOVERY, tmp_path)

    async def openapi_index(request: web.Request) -> web.Response:
        hashes = {key: openapi.document_hash(doc) for key, doc in docs.items()}
        return web.json_response(openapi.index(list(docs), hashes))

    async def openapi_document(request: web.Request) -> web.Response:
        return web.json_response(docs[request.path.removeprefix("/openapi/v3/")])

    async def no_v2(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)

    server.route("GET", "/openapi/v3", openapi_index)
    server.route("GET", "/openapi/v3/{path:.+}", openapi_document)
    server.route("GET", "/openapi/v2", no_v2)
    for collection in (
        "/apis/superpod.dev/v1alpha1/namespaces/{ns}/superpodpartitions",
        "/api/v1/namespaces/{ns}/configmaps",
    ):
        server.route("GET", collection + "/{name}", store.read)
        server.route("POST", collection, store.create)
        server.route("PATCH", collection + "/{name}", store.patch)
    return server, store


PARTITION = """
apiVersion: superpod.dev/v1alpha1
kind: SuperPodPartition
metadata: {name: p1, namespace: default}
spec: {superPod: cm384, npus: 16}
"""
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: c1, namespace: default}
data: {a: "1"}
"""


async def test_kubectl_explain_reads_a_crd_field(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path)
    async with server:
        code, out, err = await server.kubectl("explain", "superpodpartitions.spec.npus")
        code_spec, spec, _ = await server.kubectl("explain", "spp.spec")
    assert code == 0, err
    assert "KIND:       SuperPodPartition" in out
    assert "FIELD: npus <integer>" in out
    assert "Number of devices" in out
    assert code_spec == 0
    assert "repairPolicy\t<string>" in spec or "repairPolicy <string>" in " ".join(spec.split())
    assert "superPod\t<string> -required-" in spec or "superPod <string> -required-" in " ".join(spec.split())


async def test_kubectl_apply_and_create_leave_validation_to_the_server(tmp_path: Path) -> None:
    server, store = await serve(tmp_path)
    async with server:
        created = await server.kubectl("apply", "-f", "-", stdin=PARTITION.encode())
        changed = await server.kubectl(
            "apply", "-f", "-", stdin=PARTITION.replace("npus: 16", "npus: 32").encode()
        )
        cm_created = await server.kubectl("create", "-f", "-", stdin=CONFIGMAP.encode())
        server_side = await server.kubectl("apply", "--server-side", "-f", "-", stdin=CONFIGMAP.encode())

    for code, _, err in (created, changed, cm_created, server_side):
        assert code == 0, err
        assert "warning" not in err.lower(), err
    writes = [r for r in server.requests if r.method in ("POST", "PATCH")]
    assert [(r.method, r.headers["Content-Type"].split(";")[0]) for r in writes] == [
        ("POST", "application/json"),
        ("PATCH", "application/merge-patch+json"),
        ("POST", "application/json"),
        ("PATCH", "application/apply-patch+yaml"),
    ]
    assert all(r.query.get("fieldValidation") == "Strict" for r in writes)
    assert (
        store.objects["/apis/superpod.dev/v1alpha1/namespaces/default/superpodpartitions/p1"]["spec"]["npus"]
        == 32
    )


async def test_client_side_apply_of_a_built_in_kind_uses_kubectls_own_types(tmp_path: Path) -> None:
    server, _ = await serve(tmp_path)
    async with server:
        first = await server.kubectl("apply", "-f", "-", stdin=CONFIGMAP.encode())
        second = await server.kubectl("apply", "-f", "-", stdin=CONFIGMAP.replace('"1"', '"2"').encode())
    assert first[0] == 0 and second[0] == 0, (first[2], second[2])
    (patch,) = [r for r in server.requests if r.method == "PATCH"]
    assert patch.headers["Content-Type"].startswith("application/strategic-merge-patch+json")
    assert json.loads(patch.body)["data"] == {"a": "2"}
