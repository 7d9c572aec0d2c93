"""CustomResourceDefinitions: what a CRD makes the server serve, its status, and schema processing of CRs.

A created CRD is served at once with its `NamesAccepted` and `Established` conditions True (kube-apiserver
sets them a few milliseconds later from a controller; clients that wait for Established see no difference).
Custom resources are pruned, defaulted and validated with the version's structural schema (`schema/structural.py`),
compiled once per CRD version and cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError
from superpod_sandbox.apiserver.patches import managed
from superpod_sandbox.apiserver.registry import resources
from superpod_sandbox.apiserver.schema import structural

if TYPE_CHECKING:
    from superpod_sandbox.apiserver.registry.semantics import Options

Object = dict[str, Any]


def crd_errors(crd: Object) -> list[FieldError]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found: list[FieldError] = []
    group, plural = spec.get("group", ""), names.get("plural", "")
    if not group:
        found.append(FieldError("FieldValueRequired", "Required value", "spec.group"))
    if not plural:
        found.append(FieldError("FieldValueRequired", "Required value", "spec.names.plural"))
    if not names.get("kind"):
        found.append(FieldError("FieldValueRequired", "Required value", "spec.names.kind"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        found.append(
            FieldError(
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    name = crd["metadata"].get("name", "")
    if group and plural and name != f"{plural}.{group}":
        found.append(
            FieldError(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        found.append(
            FieldError(
                "FieldValueInvalid",
                "Invalid value: null: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    elif sum(1 for version in versions if version.get("storage")) != 1:
        found.append(
            FieldError(
                "FieldValueInvalid",
                f"Invalid value: {len(versions)}: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    for index, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            found.append(
                FieldError(
                    "FieldValueRequired",
                    "Required value: schemas are required",
                    f"spec.versions[{index}].schema.openAPIV3Schema",
                )
            )
    return found


def default_crd(crd: Object) -> None:
    """Fill the defaults kube-apiserver adds to a CRD (singular, listKind, conversion, served flags)."""
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        version.setdefault("served", True)


def crd_status(crd: Object, old_status: Object | None) -> Object:
    spec = crd["spec"]
    names = dict(spec["names"])
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    stored = list((old_status or {}).get("storedVersions") or [])
    if storage not in stored:
        stored.append(storage)
    previous = {c["type"]: c for c in (old_status or {}).get("conditions") or []}
    stamp = managed.now()

    def condition(kind: str, reason: str, message: str) -> Object:
        if kind in previous and previous[kind]["status"] == "True":
            return dict(previous[kind])
        return {
            "type": kind,
            "status": "True",
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        }

    return {
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    }


def resource_from_crd(crd: Object) -> resources.Resource:
    spec = crd["spec"]
    names = spec["names"]
    versions: list[resources.Version] = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        columns = version.get("additionalPrinterColumns")
        versions.append(
            resources.Version(
                name=version["name"],
                status="status" in subresources,
                scale="scale" in subresources,
                scale_paths=_scale_paths(subresources.get("scale") or {}),
                deprecation=_deprecation(spec["group"], version, names["kind"]),
                printer_columns=tuple(columns) if columns else None,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    versions.sort(key=lambda v: not any(x["name"] == v.name and x.get("storage") for x in spec["versions"]))
    return resources.Resource(
        group=spec["group"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced",
        versions=tuple(versions),
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        generation=True,
        custom=True,
        returns_deleted_object=True,
    )


def report_unknown(
    resource: resources.Resource, version: str, dropped: list[str], options: Options
) -> list[str]:
    """What fieldValidation makes of dropped unknown fields: a 400 (Strict), warnings (Warn) or nothing."""
    if not dropped or options.field_validation == "Ignore":
        return []
    if options.field_validation == "Strict":
        if options.applying:
            gvk = f"{resource.api_version(version)}, Kind={resource.kind}"
            listed = ", ".join(f".{path}: field not declared in schema" for path in dropped)
            raise errors.bad_request(f"failed to create typed patch object ({gvk}): {listed}")
        listed = ", ".join(f'unknown field "{path}"' for path in dropped)
        raise errors.bad_request(
            f'{resource.kind} in version "{version}" cannot be handled as a {resource.kind}: strict decoding error: {listed}'
        )
    return [f'unknown field "{path}"' for path in dropped]


def _deprecation(group: str, version: Object, kind: str) -> str | None:
    if not version.get("deprecated"):
        return None
    return str(version.get("deprecationWarning") or f"{group}/{version['name']} {kind} is deprecated")


def _scale_paths(scale: Object) -> tuple[str, str, str]:
    return (
        scale.get("specReplicasPath", ".spec.replicas"),
        scale.get("statusReplicasPath", ".status.replicas"),
        scale.get("labelSelectorPath", ""),
    )


class Schemas:
    """Compiled structural schemas per (resource, version), rebuilt when the CRD changes."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[resources.GroupResource, str], structural.StructuralSchema | None] = {}

    def forget(self, key: resources.GroupResource) -> None:
        for cached in [k for k in self._compiled if k[0] == key]:
            del self._compiled[cached]

    def _get(self, resource: resources.Resource, version: str) -> structural.StructuralSchema | None:
        cache_key = (resource.key, version)
        if cache_key not in self._compiled:
            served = resource.version(version)
            raw = served.schema if served is not None else None
            self._compiled[cache_key] = structural.StructuralSchema(raw) if raw else None
        return self._compiled[cache_key]

    def process(
        self, resource: resources.Resource, version: str, obj: Object, old: Object | None, options: Options
    ) -> list[str]:
        """Prune, default and validate a custom resource in place; returns warnings (unknown fields).

        `options.field_validation` Strict turns unknown fields into a 400 (worded as apply words it for apply).
        """
        compiled = self._get(resource, version)
        if compiled is None:
            return []
        dropped = compiled.prune(obj)
        warnings = report_unknown(resource, version, dropped, options)
        compiled.default(obj)
        causes = compiled.validate(obj, old)
        if causes:
            raise errors.invalid(
                resource.group,
                resource.kind,
                obj["metadata"].get("name", ""),
                [FieldError(c.reason, c.message, c.field) for c in causes],
            )
        return warnings
