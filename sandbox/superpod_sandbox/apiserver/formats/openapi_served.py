"""GET /openapi/v3 and /openapi/v3/<api/v1 | apis/<g>/<v>>: the served kinds handed to `openapi.py`.

Documents are rebuilt only when the registry changes (a CRD is created, changed or removed), and the index
carries each document's hash so kubectl's cache notices the change.
"""

from __future__ import annotations

from typing import Any

from superpod_sandbox.apiserver.formats import openapi
from superpod_sandbox.apiserver.registry.resources import Registry

Object = dict[str, Any]


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._documents: dict[str, Object] = {}  # index key (api/v1, apis/g/v) -> document
        self._index: Object = {}

    def _refresh(self) -> None:
        if self._generation == self._registry.generation:
            return
        served: dict[tuple[str, str], list[openapi.ServedResource]] = {}
        for resource in self._registry:
            for version in resource.versions:
                subresources = ["status"] if version.status else []
                subresources += ["scale"] if version.scale else []
                subresources += [s for s in resource.extra_subresources if s != "finalize"]
                served.setdefault((resource.group, version.name), []).append(
                    openapi.ServedResource(
                        kind=resource.kind,
                        plural=resource.plural,
                        namespaced=resource.namespaced,
                        schema=version.schema if resource.custom else None,
                        verbs=resource.verbs,
                        subresources=tuple(subresources),
                    )
                )
        self._documents = {
            openapi.group_version_path(group, version): openapi.document(group, version, resources)
            for (group, version), resources in served.items()
        }
        hashes = {key: openapi.document_hash(doc) for key, doc in self._documents.items()}
        self._index = openapi.index(list(self._documents), hashes)
        self._generation = self._registry.generation

    def answer(self, parts: list[str]) -> Object | None:
        """The document for the path after /openapi, or None (404) when not served."""
        if not parts or parts[0] != "v3":
            return None
        self._refresh()
        if len(parts) == 1:
            return self._index
        return self._documents.get("/".join(parts[1:]))
