"""CustomResourceDefinitions generated from the pydantic models.

The models are the single source of the API: field docstrings become `description`s (what `kubectl explain`
shows), pydantic constraints become bounds and patterns, and the CEL rules kept beside each kind become
`x-kubernetes-validations`. pydantic's JSON Schema is turned into a *structural* schema as apiextensions/v1
requires: references inlined, `anyOf [X, null]` collapsed to X, titles dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from superpod.api import common, partition, superpod

JSON = common.JSON

_DROP_KEYS = {"title"}


def _structural(node: Any, defs: JSON) -> Any:
    """Inline `$ref`s and collapse nullable unions, recursively."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**_structural(options[0], defs), **rest}
            if merged.get("default", ...) is None:
                del merged["default"]
            return _structural(merged, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP_KEYS or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _structural(prop, defs) for name, prop in value.items()}
        elif key == "description":
            out[key] = " ".join(value.split())  # docstrings wrap lines; kubectl explain re-wraps
        else:
            out[key] = _structural(value, defs)
    if out.get("default", ...) is None:
        del out["default"]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" in out:
        # Structural schemas forbid properties together with additionalProperties; unknown fields are
        # pruned by the API server instead.
        del out["additionalProperties"]
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    # description and type first, so the YAML reads like hand-written CRDs
    ordered = {key: out[key] for key in ("description", "type") if key in out}
    return ordered | {key: value for key, value in out.items() if key not in ordered}


def model_schema(model: type[BaseModel]) -> JSON:
    """The structural openAPIV3Schema of one pydantic model (by alias, descriptions from docstrings)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: JSON = _structural(raw, defs)
    return schema


def _conditions_list(schema: JSON) -> None:
    """Mark `conditions` as a map list keyed by type, as Kubernetes API conventions ask."""
    conditions = schema.get("properties", {}).get("conditions")
    if conditions is not None:
        conditions["x-kubernetes-list-type"] = "map"
        conditions["x-kubernetes-list-map-keys"] = ["type"]
        conditions["items"]["required"] = sorted(set(conditions["items"].get("required", [])) | {"type"})


def _immutable_rules(spec: JSON, fields: list[str]) -> list[dict[str, str]]:
    """Transition rules that keep placement-deciding fields fixed after creation."""
    required = set(spec.get("required", []))
    rules = []
    for name in fields:
        if name in required or "default" in spec["properties"][name]:
            rule = f"self.{name} == oldSelf.{name}"
        else:
            rule = f"has(self.{name}) == has(oldSelf.{name}) && (!has(self.{name}) || self.{name} == oldSelf.{name})"
        rules.append({"rule": rule, "message": f"{name} {partition.IMMUTABLE_MESSAGE}"})
    return rules


def _root(kind_model: type[BaseModel], spec: JSON, status: JSON) -> JSON:
    return {
        "type": "object",
        "description": (kind_model.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this object represents.",
            },
            "metadata": {"type": "object", "description": "Standard object metadata."},
            "spec": spec,
            "status": status,
        },
    }


def _crd(
    *,
    plural: str,
    singular: str,
    kind: str,
    short_names: list[str],
    scope: str,
    schema: JSON,
    columns: list[JSON],
) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{common.GROUP}"},
        "spec": {
            "group": common.GROUP,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": singular,
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short_names,
                "categories": [common.CATEGORY],
            },
            "versions": [
                {
                    "name": common.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _age() -> JSON:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def superpod_crd() -> JSON:
    spec = model_schema(superpod.SuperPodSpec)
    spec["x-kubernetes-validations"] = superpod.CEL_RULES
    spec["properties"]["quotas"]["items"]["x-kubernetes-validations"] = superpod.QUOTA_RULES
    status = model_schema(superpod.SuperPodStatus)
    _conditions_list(status)
    return _crd(
        plural=superpod.PLURAL,
        singular=superpod.SINGULAR,
        kind=superpod.KIND,
        short_names=superpod.SHORT_NAMES,
        scope="Cluster",
        schema=_root(superpod.SuperPod, spec, status),
        columns=[
            {"name": "Profile", "type": "string", "jsonPath": ".spec.profile"},
            {"name": "Devices", "type": "integer", "jsonPath": ".status.devices.total"},
            {"name": "Free", "type": "integer", "jsonPath": ".status.devices.free"},
            {"name": "Unhealthy", "type": "integer", "jsonPath": ".status.devices.unhealthy"},
            {"name": "Partitions", "type": "integer", "jsonPath": ".status.partitions"},
            {
                "name": "Fragmentation",
                "type": "number",
                "jsonPath": ".status.fragmentation",
                "priority": 1,
            },
            _age(),
        ],
    )


def partition_crd() -> JSON:
    spec = model_schema(partition.PartitionSpec)
    spec["x-kubernetes-validations"] = partition.CEL_RULES + _immutable_rules(
        spec, partition.IMMUTABLE_FIELDS
    )
    status = model_schema(partition.PartitionStatus)
    _conditions_list(status)
    schema = _root(partition.SuperPodPartition, spec, status)
    schema["x-kubernetes-validations"] = partition.NAME_RULES
    return _crd(
        plural=partition.PLURAL,
        singular=partition.SINGULAR,
        kind=partition.KIND,
        short_names=partition.SHORT_NAMES,
        scope="Namespaced",
        schema=schema,
        columns=[
            {"name": "SuperPod", "type": "string", "jsonPath": ".spec.superPod"},
            {"name": "NPUs", "type": "integer", "jsonPath": ".spec.npus"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Tier", "type": "string", "jsonPath": ".status.tierSpan"},
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodeCount"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
            {"name": "Priority", "type": "integer", "jsonPath": ".status.priority", "priority": 1},
            {"name": "Quota", "type": "string", "jsonPath": ".status.quota", "priority": 1},
            {"name": "Borrowing", "type": "boolean", "jsonPath": ".status.borrowing", "priority": 1},
            _age(),
        ],
    )


def kopf_peering_crd(*, cluster_scoped: bool) -> JSON:
    """kopf's peering resource (kopf.dev/v1), through which replicas agree that exactly one is active."""
    kind = "ClusterKopfPeering" if cluster_scoped else "KopfPeering"
    plural = kind.lower() + "s"
    crd = _crd(
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        short_names=[],
        scope="Cluster" if cluster_scoped else "Namespaced",
        schema={
            "type": "object",
            "description": "Presence of kopf-based operator replicas, used for leader selection (written by kopf).",
            "properties": {
                "status": {
                    "type": "object",
                    "description": "Operator replicas by identity: priority, lifetime and last heartbeat.",
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            },
        },
        columns=[],
    )
    crd["metadata"]["name"] = f"{plural}.kopf.dev"
    crd["spec"]["group"] = "kopf.dev"
    del crd["spec"]["names"]["categories"], crd["spec"]["names"]["shortNames"]
    version = crd["spec"]["versions"][0]
    version["name"] = "v1"
    del version["subresources"], version["additionalPrinterColumns"]
    return crd


def all_crds() -> dict[str, JSON]:
    """File name under crds/ -> CRD object."""
    return {
        f"{common.GROUP}_{superpod.PLURAL}.yaml": superpod_crd(),
        f"{common.GROUP}_{partition.PLURAL}.yaml": partition_crd(),
        "kopf.dev_clusterkopfpeerings.yaml": kopf_peering_crd(cluster_scoped=True),
        "kopf.dev_kopfpeerings.yaml": kopf_peering_crd(cluster_scoped=False),
    }
