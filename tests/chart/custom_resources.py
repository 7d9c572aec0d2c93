"""Minimal shape checks for the custom resources the chart renders, which kubernetes-validate has no
schema for: the fields the chart sets, with their types, and nothing else (cert-manager, Prometheus
Operator), or the object's own CRD schema when the chart ships that CRD (kopf's ClusterKopfPeering)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema

Schema = dict[str, Any]


def _closed(properties: dict[str, Schema], required: Sequence[str] = ()) -> Schema:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


_STRING: Schema = {"type": "string", "minLength": 1}
_LABELS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION: Schema = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"}
_METADATA = _closed(
    {"name": _STRING, "namespace": _STRING, "labels": _LABELS, "annotations": _LABELS}, required=["name"]
)


def _resource(api_version: str, kind: str, spec: Schema, namespaced: bool = True) -> Schema:
    metadata = dict(_METADATA, required=["name", "namespace"] if namespaced else ["name"])
    return _closed(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": metadata, "spec": spec},
        required=["apiVersion", "kind", "metadata", "spec"],
    )


_RULE = _closed(
    {
        "alert": _STRING,
        "record": _STRING,
        "expr": _STRING,
        "for": _DURATION,
        "labels": _LABELS,
        "annotations": _LABELS,
    },
    required=["expr"],
)

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _resource(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        _closed(
            {
                "jobLabel": _STRING,
                "selector": _closed({"matchLabels": _LABELS}, required=["matchLabels"]),
                "namespaceSelector": _closed({"matchNames": {"type": "array", "items": _STRING}}),
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {
                            "port": _STRING,
                            "path": _STRING,
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "bearerTokenFile": _STRING,
                            "tlsConfig": _closed(
                                {
                                    "serverName": _STRING,
                                    "ca": _closed(
                                        {
                                            "secret": _closed(
                                                {"name": _STRING, "key": _STRING}, required=["name", "key"]
                                            )
                                        }
                                    ),
                                }
                            ),
                        },
                        required=["port"],
                    ),
                },
            },
            required=["selector", "endpoints"],
        ),
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): _resource(
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        _closed(
            {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {"name": _STRING, "interval": _DURATION, "rules": {"type": "array", "items": _RULE}},
                        required=["name", "rules"],
                    ),
                }
            },
            required=["groups"],
        ),
    ),
    ("cert-manager.io/v1", "Issuer"): _resource(
        "cert-manager.io/v1",
        "Issuer",
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {"selfSigned": {"type": "object"}},
        },
    ),
    ("cert-manager.io/v1", "Certificate"): _resource(
        "cert-manager.io/v1",
        "Certificate",
        _closed(
            {
                "secretName": _STRING,
                "commonName": _STRING,
                "dnsNames": {"type": "array", "minItems": 1, "items": _STRING},
                "duration": _DURATION,
                "renewBefore": _DURATION,
                "privateKey": _closed(
                    {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    }
                ),
                "issuerRef": _closed(
                    {"name": _STRING, "kind": {"enum": ["Issuer", "ClusterIssuer"]}, "group": _STRING},
                    required=["name"],
                ),
            },
            required=["secretName", "dnsNames", "issuerRef"],
        ),
    ),
}


def check(manifest: dict[str, Any], crds: Sequence[dict[str, Any]]) -> None:
    """Raise jsonschema.ValidationError when the manifest does not have its expected shape, LookupError when
    neither a shape above nor a rendered CRD describes it."""
    key = (manifest["apiVersion"], manifest["kind"])
    if key in SCHEMAS:
        jsonschema.validate(manifest, SCHEMAS[key])
        return
    group, _, served_version = manifest["apiVersion"].partition("/")
    for crd in crds:
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != manifest["kind"]:
            continue
        for crd_version in spec["versions"]:
            if crd_version["name"] == served_version and crd_version["served"]:
                jsonschema.validate(manifest, crd_version["schema"]["openAPIV3Schema"])
                return
    raise LookupError(f"no schema for {manifest['apiVersion']} {manifest['kind']}")
