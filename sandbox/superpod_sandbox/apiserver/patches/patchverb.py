"""PATCH in its four kinds, each ending in the shared update pipeline (`State.write_update`).

Merge patch and JSON patch apply to the object as the client sees it (the requested version); strategic
merge patch is for built-in kinds only (a CR answers 415, as in kube); apply
(`application/apply-patch+yaml`) merges the applied configuration under field ownership (`managed.py`) and
creates the object when it is missing. A patch carrying a resourceVersion is a precondition (409 when stale).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import yaml

from superpod_sandbox import codec
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import jsonpatch as patches
from superpod_sandbox.apiserver.patches import managed, strategic
from superpod_sandbox.apiserver.registry import events, semantics
from superpod_sandbox.apiserver.registry.semantics import Options, Outcome, State, Target

Object = dict[str, Any]
_ATTEMPTS = 5


async def patch(api: State, target: Target, content_type: str, body: bytes, options: Options) -> Outcome:
    """PATCH: merge, JSON, strategic merge (built-in kinds only, 415 for CRs as in kube) or apply.

    A patch is applied again to the new state when another write won the race during admission, as kube's
    GuaranteedUpdate retries it.
    """
    for _ in range(_ATTEMPTS - 1):
        try:
            return await _patch_once(api, target, content_type, body, options)
        except semantics.RaceLost:
            continue
    return await _patch_once(api, target, content_type, body, options)


async def _patch_once(
    api: State, target: Target, content_type: str, body: bytes, options: Options
) -> Outcome:
    resource = target.resource
    old = api.store.get(resource.storage_key, target.namespace, target.name)
    if content_type == "application/apply-patch+yaml":
        return await _apply(api, target, old, body, options)
    if old is None:
        raise errors.not_found(resource.group, resource.plural, target.name)
    try:
        document = codec.loads(body)
    except ValueError as failure:
        raise errors.bad_request(f"error decoding patch: {failure}") from None
    current = semantics.present(old, target.version, resource)
    if content_type == "application/json-patch+json":
        patched = patches.json_patch(current, document)
    elif not isinstance(document, dict):
        raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    elif content_type == "application/merge-patch+json":
        patched = patches.merge(current, document)
    elif content_type == "application/strategic-merge-patch+json" and not resource.custom:
        patched = strategic.apply(current, document)
    else:
        raise errors.unsupported_media_type(
            content_type,
            [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
            + ([] if resource.custom else ["application/strategic-merge-patch+json"]),
        )
    if not isinstance(patched, dict):
        raise errors.bad_request("the patch did not produce an object")
    meta = patched.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
        raise errors.stale(resource.group, resource.plural, target.name)
    if meta.get("name") != target.name or (resource.namespaced and meta.get("namespace") != target.namespace):
        raise errors.bad_request("metadata.name and metadata.namespace cannot be changed by a patch")
    patched["apiVersion"] = resource.api_version(resource.storage_version)
    patched["kind"] = resource.kind
    if resource.stored_as == ("", "events"):
        patched = events.to_core(patched)
    return await api.write_update(target, old, patched, options)


async def _apply(api: State, target: Target, old: Object | None, body: bytes, options: Options) -> Outcome:
    """Server-side apply: merge the applied configuration with field ownership; create when missing."""
    options = dataclasses.replace(options, applying=True)
    resource = target.resource
    if not options.manager:
        raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
    try:
        applied = yaml.safe_load(body)
    except yaml.YAMLError as failure:
        raise errors.bad_request(f"error decoding YAML: {failure}") from None
    if not isinstance(applied, dict):
        raise errors.bad_request("error decoding YAML: the applied configuration is not an object")
    applied = api.check_body(target, applied)
    if applied["metadata"].get("name", target.name) != target.name:
        raise errors.bad_request(
            f"the name of the object ({applied['metadata'].get('name')}) does not match the name on the URL ({target.name})"
        )
    applied["metadata"]["name"] = target.name
    status_separate = resource.has_status(target.version)
    merged = managed.apply(
        old,
        applied,
        options.manager,
        target.api_version,
        options.force,
        target.subresource,
        status_separate,
    )
    if old is None:
        if target.subresource:
            raise errors.not_found(resource.group, resource.plural, target.name)
        entries = merged["metadata"].pop("managedFields")
        outcome = await api.create(target, merged, options)
        stored = api.store.get(resource.storage_key, target.namespace, target.name)
        if stored is not None and not options.dry_run:
            # The applier owns what it applied: replace the Update entry create recorded.
            updated = copy.deepcopy(stored)
            updated["metadata"]["managedFields"] = entries
            outcome.body = semantics.present(
                api.store.update(resource.storage_key, stored, updated), target.version, resource
            )
        return outcome
    merged["apiVersion"] = resource.api_version(resource.storage_version)
    return await api.write_update(target, old, merged, options, keep_managed_fields=True)
