"""`/openapi/v2`: one Swagger 2.0 document of the built-in kinds, made from the per-group-version v3 documents.

kubectl 1.35 reads v2 only where v3 cannot answer: client-side validation of a `kind: List` (`kubectl apply -f`
of `kubectl get -o yaml` output), which looks each item's kind up by its `x-kubernetes-group-version-kind`
among the definitions (kube-openapi's pkg/util/proto), and `kubectl explain --output plaintext-openapiv2`.
Both read the protobuf form (`gnostic.encode`). Definitions are kube's (`builtin_schemas.v2`); the paths carry
each operation's group-version-kind and parameters, as kube's do (cli-runtime's v2 query-parameter check reads
the PATCH operations). Custom resources are left out: kubectl then skips their client-side validation and
leaves it to the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from superpod_sandbox.apiserver.formats import builtin_schemas

Object = dict[str, Any]
_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_METHODS = ("get", "put", "post", "delete", "patch")


def document(v3_documents: Iterable[Mapping[str, Any]]) -> Object:
    """The v2 document of the built-in kinds found in `v3_documents` (as `openapi.document` makes them)."""
    paths: Object = {}
    roots: list[str] = []
    for v3 in v3_documents:
        builtin = {name for name in v3["components"]["schemas"] if _is_builtin(name)}
        for path, item in v3["paths"].items():
            operations = {method: item[method] for method in _METHODS if method in item}
            if operations and all(_refers_only_to(op, builtin) for op in operations.values()):
                paths[path] = _path_item(item, operations)
        roots.extend(builtin)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": builtin_schemas.KUBE_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": {name: builtin_schemas.v2(name) for name in builtin_schemas.closure(roots)},
    }


def _is_builtin(name: str) -> bool:
    return name.startswith("io.k8s.")


def _refers_only_to(operation: Mapping[str, Any], builtin: set[str]) -> bool:
    gvk = operation.get("x-kubernetes-group-version-kind", {})
    component = builtin_schemas.component(gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
    return component is not None and component in builtin


def _path_item(item: Mapping[str, Any], operations: Mapping[str, Any]) -> Object:
    converted: Object = {method: _operation(op) for method, op in operations.items()}
    if item.get("parameters"):
        converted["parameters"] = [_parameter(p) for p in item["parameters"]]
    return converted


def _operation(op: Mapping[str, Any]) -> Object:
    converted: Object = {key: op[key] for key in ("tags", "description", "operationId") if key in op}
    body = op.get("requestBody")
    if body:
        converted["consumes"] = sorted(body["content"])
    converted["produces"] = _PRODUCES
    converted["schemes"] = ["https"]
    parameters = [_parameter(p) for p in op.get("parameters", ())]
    if body:
        schema = next(iter(body["content"].values()))["schema"]
        parameters.insert(0, {"name": "body", "in": "body", "required": True, "schema": _v2_ref(schema)})
    if parameters:
        converted["parameters"] = parameters
    responses: Object = {}
    for code, response in op.get("responses", {}).items():
        answer: Object = {"description": response.get("description", "")}
        content = response.get("content")
        if content:
            answer["schema"] = _v2_ref(next(iter(content.values()))["schema"])
        responses[code] = answer
    converted["responses"] = responses
    for key in ("x-kubernetes-action", "x-kubernetes-group-version-kind"):
        if key in op:
            converted[key] = op[key]
    return converted


def _parameter(parameter: Mapping[str, Any]) -> Object:
    converted: Object = {
        "name": parameter["name"],
        "in": parameter["in"],
        "type": parameter.get("schema", {}).get("type", "string"),
        "uniqueItems": True,
    }
    if parameter.get("description"):
        converted["description"] = parameter["description"]
    if parameter.get("required"):
        converted["required"] = True
    return converted


def _v2_ref(schema: Mapping[str, Any]) -> Object:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return {"$ref": builtin_schemas.V2_PREFIX + ref.removeprefix(builtin_schemas.V3_PREFIX)}
    return {"type": schema.get("type", "object")}
