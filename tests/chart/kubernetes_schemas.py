"""Strict validation against kubernetes-validate's bundled schemas, with the schemas loaded once.

`kubernetes_validate.validate` re-reads 1.5 MB of definitions on every call; the chart tests validate about a
thousand manifests, so this module resolves the schema file the same way it does (`<kind>-<group>-<version>.json`
in `v<version>-local-strict/`) and keeps one validator per schema. A test checks that both agree.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema
from kubernetes_validate import utils


class NoSchema(LookupError):
    """kubernetes-validate has no schema for this kind (a custom resource)."""


def _schema_dir(kubernetes_version: str) -> str:
    minor = utils.major_minor(kubernetes_version)
    bundled = [v for v in utils.all_versions() if utils.major_minor(v) == minor]
    if not bundled:
        raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {kubernetes_version}")
    return f"kubernetes-json-schema/v{bundled[-1]}-local-strict"


@functools.cache
def _registry(schema_dir: str) -> referencing.Registry[Any]:
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", schema_dir)
    return (
        referencing.Resource.from_contents(
            definitions, default_specification=referencing.jsonschema.DRAFT202012
        )
        @ referencing.Registry()
    )


@functools.cache
def _validator(schema_dir: str, kind: str, api_version: str) -> jsonschema.Draft202012Validator:
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", schema_dir)
    except FileNotFoundError:
        raise NoSchema(f"no schema for {api_version} {kind} in {schema_dir}") from None
    return jsonschema.Draft202012Validator(schema, registry=_registry(schema_dir))


def validate(manifest: dict[str, Any], kubernetes_version: str) -> None:
    """Raise jsonschema.ValidationError when the manifest is invalid, NoSchema when the kind is unknown."""
    _validator(_schema_dir(kubernetes_version), manifest["kind"], manifest["apiVersion"]).validate(manifest)
