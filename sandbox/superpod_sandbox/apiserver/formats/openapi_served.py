"""GET /openapi/v2, /openapi/v3 and /openapi/v3/<api/v1 | apis/<g>/<v>>: the served kinds handed to `openapi.py`.

A group-version's document is rebuilt only when what it serves changes (a CRD is created, changed or removed;
the built-in group-versions never do), and the v3 index carries each document's hash so kubectl's cache
notices the change. `/openapi/v2` is JSON, or gnostic's protobuf when the Accept header asks for it, as
kube-apiserver answers.
"""

from __future__ import annotations

import json
from typing import Any

from superpod_sandbox.apiserver.formats import gnostic, openapi, openapi_v2
from superpod_sandbox.apiserver.registry.resources import Registry

Object = dict[str, Any]
Signature = tuple[tuple[Any, ...], ...]


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._documents: dict[str, tuple[Signature, Object, str]] = {}  # index key -> (signature, doc, hash)
        self._index: Object = {}
        self._v2: tuple[int, Object, bytes] | None = None  # (generation, JSON document, protobuf)

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
        documents: dict[str, tuple[Signature, Object, str]] = {}
        for (group, version_name), resources in served.items():
            key = openapi.group_version_path(group, version_name)
            signature = _signature(resources)
            previous = self._documents.get(key)
            if previous is not None and previous[0] == signature:
                documents[key] = previous
                continue
            doc = openapi.document(group, version_name, resources)
            documents[key] = (signature, doc, openapi.document_hash(doc))
        self._documents = documents
        self._index = openapi.index(list(documents), {key: entry[2] for key, entry in documents.items()})
        self._generation = self._registry.generation

    def answer(self, parts: list[str]) -> Object | None:
        """The v3 index or a v3 document for the path after /openapi, or None (404) when not served."""
        if not parts or parts[0] != "v3":
            return None
        self._refresh()
        if len(parts) == 1:
            return self._index
        entry = self._documents.get("/".join(parts[1:]))
        return entry[1] if entry is not None else None

    def v2(self) -> tuple[Object, bytes]:
        """The `/openapi/v2` document, as JSON and as gnostic's protobuf bytes."""
        self._refresh()
        if self._v2 is None or self._v2[0] != self._generation:
            doc = openapi_v2.document(entry[1] for entry in self._documents.values())
            self._v2 = (self._generation, doc, gnostic.encode(doc))
        return self._v2[1], self._v2[2]


def _signature(resources: list[openapi.ServedResource]) -> Signature:
    return tuple(
        (r.kind, r.plural, r.namespaced, r.verbs, r.subresources, json.dumps(r.schema, sort_keys=True))
        for r in resources
    )
