"""A small CRD for the fidelity tests: defaults, a CEL rule, a transition rule, printer columns, status."""

from __future__ import annotations

import copy
from typing import Any

GROUP, VERSION, PLURAL, KIND = "example.dev", "v1", "widgets", "Widget"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "widget",
            "kind": KIND,
            "shortNames": ["wd"],
            "categories": ["gadgets"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "description": "How big the widget is.",
                                    },
                                    "color": {"type": "string", "default": "blue"},
                                    "owner": {
                                        "type": "string",
                                        "x-kubernetes-validations": [
                                            {"rule": "self == oldSelf", "message": "owner is immutable"}
                                        ],
                                    },
                                },
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {"rule": "self.size <= 100", "message": "size must be at most 100"}
                                ],
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                                "x-kubernetes-preserve-unknown-fields": True,  # kopf keeps handler results here
                            },
                        },
                    }
                },
            }
        ],
    },
}


def crd() -> dict[str, Any]:
    return copy.deepcopy(CRD)


def widget(name: str, size: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }
