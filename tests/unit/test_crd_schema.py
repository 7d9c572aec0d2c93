"""The generated CRDs are structural, valid for the newest Kubernetes, fully described, and their CEL compiles.

Inputs are the committed files in crds/ (written by `superpod crds` from operator/superpod/api). Structural
means what kube-apiserver demands of an apiextensions.k8s.io/v1 schema: a type on every node (unless it is
int-or-string or preserves unknown fields), no `additionalProperties` beside `properties`, `items` on arrays,
nothing but `name`/`generateName` restricted under the root `metadata`, no `$ref`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from superpod_sandbox.apiserver.schema import structural

from tests.conftest import ROOT

CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))
OUR_GROUP = "superpod.dev"


def versions(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        yield version["name"], version["schema"]["openAPIV3Schema"]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path: properties `.a`, array items `[]`, map values `{}`."""
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def structural_problems(root: dict[str, Any]) -> list[str]:
    problems = []
    if root.get("type") != "object":
        problems.append("<root>: type must be object")
    for path, node in nodes(root):
        where = path or "<root>"
        exempt = node.get("x-kubernetes-int-or-string") or (
            path and node.get("x-kubernetes-preserve-unknown-fields")
        )
        if "type" not in node and not exempt:
            problems.append(f"{where}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: additionalProperties beside properties")
        if ("properties" in node or "additionalProperties" in node) and node.get("type") not in (
            None,
            "object",
        ):
            problems.append(f"{where}: properties on a non-object")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        if "$ref" in node:
            problems.append(f"{where}: $ref is not allowed")
    metadata = (root.get("properties") or {}).get("metadata") or {}
    extra = set(metadata.get("properties") or {}) - {"name", "generateName"}
    if extra:
        problems.append(f".metadata: may only restrict name and generateName, not {sorted(extra)}")
    return problems


CASES = [
    pytest.param(path, name, root, id=f"{path.stem} {name}")
    for path in CRD_FILES
    for name, root in versions(path)
]


def test_the_crds_are_there() -> None:
    kinds = {yaml.safe_load(path.read_text())["spec"]["names"]["kind"] for path in CRD_FILES}
    assert {"SuperPod", "SuperPodPartition"} <= kinds


@pytest.mark.parametrize(("path", "version", "root"), CASES)
def test_each_schema_is_structural(path: Path, version: str, root: dict[str, Any]) -> None:
    assert structural_problems(root) == []


@pytest.mark.parametrize("path", CRD_FILES, ids=[path.stem for path in CRD_FILES])
def test_kubernetes_validate_accepts_each_crd_strictly(path: Path) -> None:
    newest = kubernetes_validate.latest_version()
    validated = kubernetes_validate.validate(
        yaml.safe_load(path.read_text()), newest, strict=True
    )  # raises when invalid
    assert newest.startswith(validated)


@pytest.mark.parametrize(
    ("path", "version", "root"), [c for c in CASES if c.values[0].stem.startswith(OUR_GROUP)]
)
def test_every_field_has_a_description(path: Path, version: str, root: dict[str, Any]) -> None:
    missing = [
        path_ or "<root>" for path_, node in nodes(root) if not str(node.get("description", "")).strip()
    ]
    assert missing == []


def test_the_description_walk_reaches_list_items_and_map_values() -> None:
    root = {
        "type": "object",
        "description": "r",
        "properties": {
            "list": {
                "type": "array",
                "description": "l",
                "items": {"type": "object", "properties": {"x": {"type": "string"}}},
            },
            "map": {"type": "object", "description": "m", "additionalProperties": {"type": "object"}},
        },
    }
    assert [path for path, node in nodes(root) if not node.get("description")] == [
        ".list[]",
        ".list[].x",
        ".map{}",
    ]


@pytest.mark.parametrize(
    ("root", "problem"),
    [
        pytest.param({"type": "object", "properties": {"a": {}}}, ".a: no type", id="a node without type"),
        pytest.param(
            {
                "type": "object",
                "properties": {
                    "a": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}
                },
            },
            ".a: additionalProperties beside properties",
            id="properties and additionalProperties",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
            },
            ".metadata: may only restrict name and generateName, not ['labels']",
            id="restricted metadata",
        ),
    ],
)
def test_structural_check_catches(root: dict[str, Any], problem: str) -> None:
    assert problem in structural_problems(root)


@pytest.mark.parametrize(("path", "version", "root"), CASES)
def test_cel_rules_compile(path: Path, version: str, root: dict[str, Any]) -> None:
    compiled = structural.StructuralSchema(root)
    assert compiled.compile_errors == []
