"""OpenAPI v3 documents for what the sandbox serves: what kubectl reads for explain, apply and create.

`GET /openapi/v3` answers `index(group_versions, hashes)`; `GET /openapi/v3/<api/v1 | apis/<g>/<v>>` answers
`document(group, version, resources)`, where `resources` are the `ServedResource`s of that group-version (a CRD
version's `openAPIV3Schema` as `schema`, or None for built-in kinds). Put `document_hash(doc)` of each document
in `hashes` so the `?hash=` in the index changes with the document: kubectl caches documents by that URL.

What kubectl 1.35 reads (k8s.io/kubectl pkg/explain/v2, pkg/cmd/apply/patcher.go, cli-runtime's
query_param_verifier_v3.go):

- validation (`kubectl apply|create`, `--validate=strict` by default): the PATCH operation of a path whose
  `x-kubernetes-group-version-kind` is the object's GVK must list a `fieldValidation` query parameter; then
  kubectl sends `fieldValidation=Strict` and leaves validation to the server. Without it kubectl falls back to
  client-side validation against `/openapi/v2`, and fails when that is missing. So every served kind gets one.
- client-side `kubectl apply` of a built-in kind computes a strategic merge patch from the v3 schema when the
  PATCH `requestBody` offers `application/strategic-merge-patch+json`: built-in kinds offer it, with kube's
  own schemas (`builtin_schemas`: patch strategies and merge keys), so kubectl computes the patch kube's
  schema gives. Custom resources get JSON merge patches, as on a real cluster.
- `kubectl explain`: finds the GVK on an operation of the resource's path, then the component schema whose
  `x-kubernetes-group-version-kind` list contains it, and walks `properties`, `items`, `additionalProperties`,
  `allOf` and `$ref`s; it prints `type`, `description`, `enum`, `default` and `required`.

Built-in kinds are kube's definitions (`io.k8s.api.core.v1.Pod`, `io.k8s.api.rbac.v1.Role`); a CRD's component
name reverses its group, as kube does: `dev.superpod.v1alpha1.SuperPodPartition`; `metadata` points at
`io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`. Each document holds every schema its kinds refer to.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from superpod_sandbox.apiserver.formats import builtin_schemas

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META_REF = f"#/components/schemas/{META}.ObjectMeta"
API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this from "
    "the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
STRATEGIC = "application/strategic-merge-patch+json"  # offered for built-in kinds only, as kube does


@dataclasses.dataclass(frozen=True)
class ServedResource:
    """One resource of a group-version, as the server serves it."""

    kind: str  # SuperPodPartition
    plural: str  # superpodpartitions
    namespaced: bool
    schema: dict[str, Any] | None  # a CRD version's openAPIV3Schema; None: a permissive schema (built-ins)
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    subresources: tuple[str, ...] = ()  # "status", "scale", ...


def group_version_path(group: str, version: str) -> str:
    """`api/v1` for the core group, `apis/<group>/<version>` otherwise (the index's keys)."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def document_hash(doc: Mapping[str, Any]) -> str:
    """The `?hash=` of a document: SHA-512 of its canonical JSON, upper-case hex as kube writes it."""
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()


def index(group_versions: list[str], hashes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `/openapi/v3` index. `group_versions`: `v1` for core, `<group>/<version>` otherwise (or index keys).

    `hashes` maps the same strings to `document_hash` of their documents; missing ones hash the name.
    """
    paths: dict[str, Any] = {}
    for group_version in group_versions:
        if group_version.startswith(("api/", "apis/")):
            key = group_version
        elif "/" in group_version:
            key = f"apis/{group_version}"
        else:
            key = f"api/{group_version}"
        digest = (hashes or {}).get(group_version) or hashlib.sha512(key.encode()).hexdigest().upper()
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def component_name(group: str, version: str, kind: str) -> str:
    """`dev.superpod.v1alpha1.SuperPodPartition`; core kinds: `io.k8s.api.core.v1.Pod`."""
    if not group:
        return f"io.k8s.api.core.{version}.{kind}"
    if "." not in group:  # built-in groups such as apps or batch
        return f"io.k8s.api.{group}.{version}.{kind}"
    if group.endswith(".k8s.io"):
        return f"io.k8s.api.{group.removesuffix('.k8s.io').replace('.', '_')}.{version}.{kind}"
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def document(group: str, version: str, resources: list[ServedResource]) -> dict[str, Any]:
    """The OpenAPI 3.0 document of one group-version: its kinds' schemas and every schema they refer to."""
    schemas: dict[str, Any] = {}
    roots = [f"{META}.ObjectMeta", f"{META}.ListMeta", f"{META}.Status"]
    paths: dict[str, Any] = {}
    for resource in resources:
        gvk = {"group": group, "version": version, "kind": resource.kind}
        builtin = (
            builtin_schemas.component(group, version, resource.kind) if resource.schema is None else None
        )
        if builtin is not None:
            name, list_name = builtin, builtin_schemas.component(group, version, f"{resource.kind}List")
            roots.append(name)
            if list_name is None:  # kinds served without a list kind of their own (reviews)
                list_name = f"{name}List"
                schemas[list_name] = _list_schema(resource, gvk, name)
            else:
                roots.append(list_name)
        else:
            name = component_name(group, version, resource.kind)
            list_name = f"{name}List"
            schemas[name] = _object_schema(resource, gvk)
            schemas[list_name] = _list_schema(resource, gvk, name)
        patch_types = (*PATCH_TYPES, STRATEGIC) if builtin is not None else PATCH_TYPES
        paths.update(_paths(group, version, resource, gvk, name, list_name, patch_types))
    for root in builtin_schemas.closure(roots):
        schemas.setdefault(root, builtin_schemas.v3(root))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": builtin_schemas.KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# ---------------------------------------------------------------------------------------------------
# schemas


def _object_schema(resource: ServedResource, gvk: dict[str, str]) -> dict[str, Any]:
    if resource.schema is None:
        return {
            "type": "object",
            "description": f"{resource.kind} (the sandbox publishes no field schema for built-in kinds).",
            "properties": _type_meta_properties(),
            "x-kubernetes-preserve-unknown-fields": True,
            "x-kubernetes-group-version-kind": [gvk],
        }
    published = copy.deepcopy(resource.schema)
    properties = published.setdefault("properties", {})
    properties.update(_type_meta_properties())
    published["x-kubernetes-group-version-kind"] = [gvk]
    return published


def _type_meta_properties() -> dict[str, Any]:
    return {
        "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
        "kind": {"type": "string", "description": KIND_DESCRIPTION},
        "metadata": {
            "allOf": [{"$ref": OBJECT_META_REF}],
            "default": {},
            "description": METADATA_DESCRIPTION,
        },
    }


def _list_schema(resource: ServedResource, gvk: dict[str, str], item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"{resource.kind}List is a list of {resource.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
            "items": {
                "type": "array",
                "description": f"List of {resource.plural}.",
                "items": {"allOf": [{"$ref": f"#/components/schemas/{item}"}], "default": {}},
            },
            "kind": {"type": "string", "description": KIND_DESCRIPTION},
            "metadata": {"allOf": [{"$ref": f"#/components/schemas/{META}.ListMeta"}], "default": {}},
        },
        "x-kubernetes-group-version-kind": [{**gvk, "kind": f"{resource.kind}List"}],
    }


# ---------------------------------------------------------------------------------------------------
# paths


def _parameter(name: str, description: str, where: str = "query", kind: str = "string") -> dict[str, Any]:
    parameter: dict[str, Any] = {
        "name": name,
        "in": where,
        "description": description,
        "schema": {"type": kind},
    }
    if where == "path":
        parameter["required"] = True
    return parameter


_PRETTY = _parameter("pretty", "If 'true', then the output is pretty printed.")
_DRY_RUN = _parameter("dryRun", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _parameter(
    "fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."
)
_FIELD_VALIDATION = _parameter(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
)
_FORCE = _parameter("force", 'Force is going to "force" Apply requests.', kind="boolean")
_LIST_PARAMETERS = [
    _parameter(
        "allowWatchBookmarks",
        'allowWatchBookmarks requests watch events with type "BOOKMARK".',
        kind="boolean",
    ),
    _parameter("continue", "The continue option should be set when retrieving more results from the server."),
    _parameter("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _parameter("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _parameter("limit", "limit is a maximum number of responses to return for a list call.", kind="integer"),
    _parameter(
        "resourceVersion",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    _parameter(
        "resourceVersionMatch",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    _parameter(
        "sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`.", kind="boolean"
    ),
    _parameter("timeoutSeconds", "Timeout for the list/watch call.", kind="integer"),
    _parameter(
        "watch", "Watch for changes to the described resources and return them as a stream.", kind="boolean"
    ),
]


def _json_content(ref: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ref}"}
    return {mime: {"schema": schema} for mime in ("application/json", "application/yaml")}


def _operation(
    action: str,
    verb: str,
    gvk: dict[str, str],
    component: str,
    params: list[dict[str, Any]],
    body: tuple[str, ...] = (),
) -> dict[str, Any]:
    group_words = "".join(word.capitalize() for word in gvk["group"].replace("-", ".").split(".")) or "Core"
    operation: dict[str, Any] = {
        "tags": [f"{gvk['group'] or 'core'}_{gvk['version']}"],
        "description": f"{action} {gvk['kind']}",
        "operationId": f"{verb}{group_words}{gvk['version'].capitalize()}{gvk['kind']}",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": _json_content(component)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body:
        schema = (
            {"$ref": f"#/components/schemas/{component}"}
            if body == ("application/json",)
            else {"type": "object"}
        )
        operation["requestBody"] = {"content": {mime: {"schema": schema} for mime in body}, "required": True}
    return operation


def _paths(
    group: str,
    version: str,
    resource: ServedResource,
    gvk: dict[str, str],
    component: str,
    list_component: str,
    patch_types: tuple[str, ...],
) -> dict[str, Any]:
    prefix = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if resource.namespaced else prefix
    collection = f"{scope}/{resource.plural}"
    item = f"{collection}/{{name}}"
    scope_params = (
        [_parameter("namespace", "object name and auth scope, such as for teams and projects", "path")]
        if resource.namespaced
        else []
    )
    name_param = [_parameter("name", f"name of the {resource.kind}", "path")]
    verbs = set(resource.verbs)
    writes = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, Any] = {}

    listing: dict[str, Any] = {"parameters": [*scope_params, _PRETTY]}
    if "list" in verbs:
        listing["get"] = _operation("list", "list", gvk, list_component, list(_LIST_PARAMETERS))
    if "create" in verbs:
        listing["post"] = _operation("create", "post", gvk, component, list(writes), ("application/json",))
    if "deletecollection" in verbs:
        listing["delete"] = _operation(
            "delete collection of", "deletecollection", gvk, f"{META}.Status", [*_LIST_PARAMETERS, _DRY_RUN]
        )
    paths[collection] = listing

    single: dict[str, Any] = {"parameters": [*name_param, *scope_params, _PRETTY]}
    if "get" in verbs:
        single["get"] = _operation("read the specified", "get", gvk, component, [])
    if "update" in verbs:
        single["put"] = _operation(
            "replace the specified", "put", gvk, component, list(writes), ("application/json",)
        )
    if "patch" in verbs:
        single["patch"] = _operation(
            "partially update the specified", "patch", gvk, component, [*writes, _FORCE], patch_types
        )
    if "delete" in verbs:
        single["delete"] = _operation("delete", "delete", gvk, f"{META}.Status", [_DRY_RUN])
    paths[item] = single

    for subresource in resource.subresources:
        sub: dict[str, Any] = {
            "parameters": [*name_param, *scope_params, _PRETTY],
            "get": _operation(f"read {subresource} of the specified", "get", gvk, component, []),
        }
        sub["put"] = _operation(
            f"replace {subresource} of the specified",
            "put",
            gvk,
            component,
            list(writes),
            ("application/json",),
        )
        sub["patch"] = _operation(
            f"partially update {subresource} of the specified",
            "patch",
            gvk,
            component,
            [*writes, _FORCE],
            patch_types,
        )
        paths[f"{item}/{subresource}"] = sub

    if resource.namespaced and "list" in verbs:
        paths[f"{prefix}/{resource.plural}"] = {
            "parameters": [_PRETTY],
            "get": _operation("list objects of kind", "list", gvk, list_component, list(_LIST_PARAMETERS)),
        }
    return paths
