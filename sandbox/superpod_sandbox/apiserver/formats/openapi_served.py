"""GET /openapi/v2, /openapi/v3 and /openapi/v3/<api/v1 | apis/<g>/<v>>: the served kinds handed to `openapi.py`.

A group-version's document is rebuilt only when what it serves changes (a CRD is created, changed or removed),
and the v3 index carries each document's hash so kubectl's cache notices the change. Documents are kept per
process by what they describe, so every sandbox of a test run shares the built-in ones (large: kube's
schemas) instead of building them again. `/openapi/v2` is JSON, or gnostic's protobuf when the Accept header
asks for it, as kube-apiserver answers.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from superpod_sandbox.apiserver.formats import gnostic, openapi, openapi_v2
from superpod_sandbox.apiserver.registry.resources import Registry

Object = dict[str, Any]
Signature = tuple[Any, ...]
_KEPT = 256  # documents kept per process (built-in ones and recent CRD group-versions)
_documents: collections.OrderedDict[Signature, tuple[Object, str]] = collections.OrderedDict()
_v2: dict[Signature, tuple[Object, bytes]] = {}


def _document(
    group: str, version: str, resources: list[openapi.ServedResource]
) -> tuple[Signature, Object, str]:
    signature = (group, version, *_signature(resources))
    found = _documents.get(signature)
    if found is None:
        doc = openapi.document(group, version, resources)
        found = (doc, openapi.document_hash(doc))
        _documents[signature] = found
        while len(_documents) > _KEPT:
            _documents.popitem(last=False)
    else:
        _documents.move_to_end(signature)
    return (signature, *found)


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._generation = -1
        self._documents: dict[str, tuple[Signature, Object, str]] = {}  # index key -> (signature, doc, hash)
        self._builtin: Signature = ()  # the signatures of the group-versions without custom resources
        self._index: Object = {}

    def _refresh(self) -> None:
        if self._generation == self._registry.generation:
            return
        served: dict[tuple[str, str], list[openapi.ServedResource]] = {}
        custom: set[tuple[str, str]] = set()
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
                if resource.custom:
                    custom.add((resource.group, version.name))
        self._documents = {
            openapi.group_version_path(group, version): _document(group, version, resources)
            for (group, version), resources in served.items()
        }
        self._builtin = tuple(
            sorted(
                (openapi.group_version_path(*gv), self._documents[openapi.group_version_path(*gv)][0])
                for gv in served
                if gv not in custom
            )
        )
        self._index = openapi.index(
            list(self._documents), {key: entry[2] for key, entry in self._documents.items()}
        )
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
        """The `/openapi/v2` document (the built-in kinds), as JSON and as gnostic's protobuf bytes."""
        self._refresh()
        found = _v2.get(self._builtin)
        if found is None:
            doc = openapi_v2.document(self._documents[key][1] for key, _ in self._builtin)
            found = _v2[self._builtin] = (doc, gnostic.encode(doc))
            while len(_v2) > 4:
                del _v2[next(iter(_v2))]
        return found


def _signature(resources: list[openapi.ServedResource]) -> Signature:
    return tuple(
        (r.kind, r.plural, r.namespaced, r.verbs, r.subresources, json.dumps(r.schema, sort_keys=True))
        for r in resources
    )
