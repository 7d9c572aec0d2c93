"""The API server's semantics, independent of HTTP: create, update, patch and delete as kube-apiserver does them.

Every write goes through one pipeline: decode checks -> kind-specific preparation (system fields, status
subresource isolation, generation) -> mutating admission -> CRD schema (prune, default, validate), or for built-in
kinds typed pruning and the required and immutable fields (`validation.py`) -> validating
admission -> managedFields -> store. A write that changes nothing is a no-op that keeps the resourceVersion, as
in kube (kopf relies on it to avoid loops). PATCH lives in `patches/patchverb.py`, per-kind rules in
`strategies.py`, deletion and garbage collection in `deletion.py`.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError
from superpod_sandbox.apiserver.patches import managed
from superpod_sandbox.apiserver.registry import (
    custom,
    events,
    metadata,
    plugins,
    resources,
    serviceaccounts,
    strategies,
    typed,
    validation,
)
from superpod_sandbox.apiserver.registry.resources import Resource
from superpod_sandbox.apiserver.storage import store

Object = dict[str, Any]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_PATH_SEGMENT_KINDS = {"rbac.authorization.k8s.io", "events.k8s.io"}


@dataclasses.dataclass(frozen=True)
class Target:
    """What a request addresses."""

    resource: Resource
    version: str
    namespace: str  # "" for cluster-scoped resources and cluster-wide lists
    name: str
    subresource: str = ""

    @property
    def api_version(self) -> str:
        return self.resource.api_version(self.version)


@dataclasses.dataclass(frozen=True)
class Options:
    """Per-write query parameters."""

    manager: str = ""
    field_validation: str = "Warn"  # Strict, Warn, Ignore
    dry_run: bool = False
    force: bool = False
    applying: bool = False  # a server-side apply (unknown fields are reported as apply reports them)
    user: dict[str, Any] | None = (
        None  # the requester's UserInfo (admission's request.userInfo); None: the admin
    )


@dataclasses.dataclass
class Outcome:
    body: Object
    code: int = 200
    warnings: list[str] = dataclasses.field(default_factory=list)


class RaceLost(errors.ApiError):
    """A 409 Conflict because the object changed while this write awaited admission."""


# (operation, target, object, old object, options) -> the object after mutation; raises ApiError to deny.
Admission = Callable[[str, Target, Object | None, Object | None, Options, bool], Awaitable[Object | None]]


def present(obj: Object, target_version: str, resource: Resource) -> Object:
    """The stored object as the requested version (no conversion: versions share one schema)."""
    if resource.stored_as == ("", "events"):
        return events.from_core(obj)
    wanted = resource.api_version(target_version)
    if obj.get("apiVersion") == wanted:
        return obj
    return {**obj, "apiVersion": wanted}


def _spec_of(obj: Object) -> Object:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _without_volatile(obj: Object) -> Object:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": meta}


class State:
    def __init__(self, history_size: int = 10_000, history_seconds: float = 75.0) -> None:
        self.registry = resources.Registry()
        self.store = store.Store(history_size, history_seconds)
        self.schemas = custom.Schemas()
        self.admission: Admission | None = None
        self.changed = asyncio.Event()  # wakes the garbage collector
        self.cluster_ips = strategies.ClusterIPs()
        self.terminating: set[store.ObjectRef] = set()  # objects whose deletion needs server-side work
        self.deleted_owners: list[str] = []  # uids whose dependents the collector must examine
        for name in SYSTEM_NAMESPACES:
            self._bootstrap_namespace(name)
        for priority_class in plugins.system_priority_classes():
            priority_class["metadata"].update(uid=metadata.new_uid(), creationTimestamp=managed.now())
            self.store.create(plugins.PRIORITY_CLASSES, priority_class)

    def _bootstrap_namespace(self, name: str) -> None:
        obj = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": metadata.new_uid(),
                "creationTimestamp": managed.now(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self.store.create(resources.NAMESPACES, obj)
        self._default_service_account(name)

    def _default_service_account(self, namespace: str) -> None:
        """The ServiceAccount controller's `default` account, made with its namespace (serviceaccounts.py)."""
        if self.store.get(serviceaccounts.SERVICE_ACCOUNTS, namespace, serviceaccounts.DEFAULT) is None:
            account = serviceaccounts.default_account(namespace, metadata.new_uid(), managed.now())
            self.store.create(serviceaccounts.SERVICE_ACCOUNTS, account)

    # reads -------------------------------------------------------------------------------------------

    def get(self, target: Target) -> Object:
        obj = self.store.get(target.resource.storage_key, target.namespace, target.name)
        if obj is None:
            raise errors.not_found(target.resource.group, target.resource.plural, target.name)
        return present(obj, target.version, target.resource)

    # create ------------------------------------------------------------------------------------------

    def check_body(self, target: Target, body: Any) -> Object:
        if not isinstance(body, dict):
            raise errors.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
        resource = target.resource
        if not body.get("kind"):
            if resource.custom:  # unstructured decoding needs the kind; typed decoding defaults it
                raise errors.bad_request(
                    f"Object 'Kind' is missing in '{json.dumps(body, separators=(',', ':'))[:1000]}'"
                )
            body["kind"] = resource.kind
            body.setdefault("apiVersion", target.api_version)
        expected_kind = resource.kind if target.subresource != "binding" else "Binding"
        api_version = body.get("apiVersion") or target.api_version
        if (
            target.subresource in ("", "status")
            and api_version != target.api_version
            and (
                resource.version(api_version.rpartition("/")[2]) is None
                or api_version.rpartition("/")[0] != resource.group
            )
        ):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({target.api_version})"
            )
        if target.subresource in ("", "status") and body["kind"] != expected_kind:
            raise errors.bad_request(
                f"the kind in the data ({body['kind']}) does not match the expected kind ({expected_kind})"
            )
        meta = body.get("metadata")
        if meta is None:
            body["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if resource.namespaced:
            if meta.get("namespace") and target.namespace and meta["namespace"] != target.namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = target.namespace or meta.get("namespace", "")
        else:
            meta.pop("namespace", None)
        body["apiVersion"] = resource.api_version(resource.storage_version)
        if resource.stored_as == ("", "events"):
            return events.to_core(body)
        return body

    def _typed_prune(self, resource: Resource, version: str, obj: Object) -> list[str]:
        """Unknown fields of a built-in object (dropped); a value of the wrong type is a 400, as in kube."""
        try:
            return typed.prune(obj, resource.storage_key)
        except typed.Mismatch as mismatch:
            kind = resource.kind
            raise errors.bad_request(
                f'{kind} in version "{version}" cannot be handled as a {kind}: {mismatch}'
            ) from None

    def _check_name(self, resource: Resource, meta: Object) -> None:
        name = meta.get("name", "")
        causes = []
        if resource.group in _PATH_SEGMENT_KINDS:
            if name in (".", "..") or "/" in name or "%" in name:
                causes.append(
                    FieldError(
                        "FieldValueInvalid",
                        f"Invalid value: \"{name}\": may not contain '/'",
                        "metadata.name",
                    )
                )
        else:
            causes = metadata.name_errors(name, dns_label=resource.key == resources.NAMESPACES)
        causes += metadata.label_errors(meta) + metadata.reference_errors(meta)
        if causes:
            raise errors.invalid(resource.group, resource.kind, name, causes)

    def _check_namespace(self, target: Target, name: str) -> None:
        if not target.resource.namespaced:
            return
        namespace = self.store.get(resources.NAMESPACES, "", target.namespace)
        if namespace is None:
            raise errors.not_found("", "namespaces", target.namespace)
        if namespace["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                target.resource.group,
                target.resource.plural,
                name,
                f"unable to create new content in namespace {target.namespace} because it is being terminated",
            )

    async def create(self, target: Target, body: Any, options: Options) -> Outcome:
        resource = target.resource
        obj = self.check_body(target, body)  # the body is ours: freshly decoded by the caller
        meta = obj["metadata"]
        metadata.require_name(resource.kind, resource.group, meta)
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name"):
            meta["name"] = metadata.generated_name(meta["generateName"])
        self._check_name(resource, meta)
        self._check_namespace(target, meta["name"])
        key = resource.key
        if resource.custom:
            crd = self.store.get(resources.CRDS, "", f"{resource.plural}.{resource.group}")
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                raise errors.ApiError(
                    errors.status(
                        405,
                        "MethodNotAllowed",
                        "create not allowed while custom resource definition is terminating",
                        {},
                    )
                )
        if self.store.get(resource.storage_key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(resource.group, resource.plural, meta["name"])
        for field in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = metadata.new_uid()
        meta["creationTimestamp"] = managed.now()
        if resource.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        allocated = strategies.prepare_create(resource, target.version, obj, self.cluster_ips)
        target = dataclasses.replace(target, name=meta["name"], namespace=meta.get("namespace", ""))
        warnings: list[str] = []
        plugins.admit_create(self.store, resource, obj)
        if self.admission is not None:
            obj = await self._mutate("CREATE", target, obj, None, options)
        if resource.custom:
            warnings = self.schemas.process(resource, target.version, obj, None, options)
        else:
            dropped = self._typed_prune(resource, target.version, obj)
            warnings = custom.report_unknown(resource, target.version, dropped, options)
            validation.check(resource, target.version, obj, None, "")
        if self.admission is not None:
            await self.admission("CREATE", target, obj, None, options, False)
        managed.record_update(
            None, obj, options.manager, target.api_version, "", resource.has_status(target.version)
        )
        managed.disown(obj, allocated)
        if options.dry_run:
            return Outcome(present(obj, target.version, resource), 201, warnings)
        if self.store.get(resource.storage_key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(
                resource.group, resource.plural, meta["name"]
            )  # created during admission
        if key == resources.CRDS:
            self._serve_crd(obj)
        stored = self.store.create(resource.storage_key, obj)
        if key == resources.NAMESPACES:
            self._default_service_account(meta["name"])
        return Outcome(present(stored, target.version, resource), 201, warnings)

    def _serve_crd(self, crd: Object) -> None:
        resource = custom.resource_from_crd(crd)
        self.schemas.forget(resource.key)
        if resource.versions:
            self.registry.add(resource)
        else:
            self.registry.remove(resource.key)

    async def _mutate(
        self, operation: str, target: Target, obj: Object, old: Object | None, options: Options
    ) -> Object:
        assert self.admission is not None
        mutated = await self.admission(operation, target, obj, old, options, True)
        return obj if mutated is None else mutated

    # update ------------------------------------------------------------------------------------------

    async def update(self, target: Target, body: Any, options: Options) -> Outcome:
        obj = self.check_body(target, body)  # the body is ours: freshly decoded by the caller
        name = obj["metadata"].get("name")
        if name != target.name:
            raise errors.bad_request(
                f"the name of the object ({name}) does not match the name on the URL ({target.name})"
            )
        old = self.store.get(target.resource.storage_key, target.namespace, target.name)
        if old is None:
            if target.resource.create_on_update and not target.subresource:
                return await self.create(target, body, options)
            raise errors.not_found(target.resource.group, target.resource.plural, target.name)
        version = obj["metadata"].get("resourceVersion")
        if version and version != old["metadata"]["resourceVersion"]:
            raise errors.stale(target.resource.group, target.resource.plural, target.name)
        if not version and target.resource.custom:
            raise errors.invalid(
                target.resource.group, target.resource.kind, target.name,
                [FieldError("FieldValueInvalid", "Invalid value: 0x0: must be specified for an update", "metadata.resourceVersion")],
            )  # fmt: skip
        return await self.write_update(target, old, obj, options)

    async def write_update(
        self,
        target: Target,
        old: Object,
        new: Object,
        options: Options,
        keep_managed_fields: bool = False,
        admit: bool = True,
    ) -> Outcome:
        """The shared tail of PUT, PATCH and apply: isolation, generation, schema, admission, store.

        `admit` False: the write was admitted as another object (a pods/binding is admitted as its Binding).
        """
        resource = target.resource
        new = self._prepare_update(target, old, new)
        warnings: list[str] = []
        if self.admission is not None and admit:
            new = await self._mutate("UPDATE", target, new, old, options)
        if resource.custom:
            warnings = self.schemas.process(resource, target.version, new, old, options)
        else:
            dropped = self._typed_prune(resource, target.version, new)
            warnings = custom.report_unknown(resource, target.version, dropped, options)
            validation.check(resource, target.version, new, old, target.subresource)
        new_entries = new["metadata"].get("managedFields")
        old_entries = old["metadata"].get("managedFields")
        client_entries = not keep_managed_fields and new_entries != old_entries
        unchanged = _without_volatile(new) == _without_volatile(old)
        if unchanged and managed.without_times(new_entries) == managed.without_times(old_entries):
            return Outcome(present(old, target.version, resource), 200, warnings)
        if self.admission is not None and admit:
            await self.admission("UPDATE", target, new, old, options, False)
        if not keep_managed_fields:
            managed.record_update(
                old,
                new,
                options.manager,
                target.api_version,
                target.subresource,
                resource.has_status(target.version),
                list(new_entries or []) if client_entries else None,
            )
        if options.dry_run:
            return Outcome(present(new, target.version, resource), 200, warnings)
        if self.store.get(resource.storage_key, target.namespace, target.name) is not old:
            # Another write landed while admission webhooks were being called: kube's storage-level
            # optimistic concurrency refuses this one (PATCH retries it on the new state).
            raise RaceLost(errors.stale(resource.group, resource.plural, target.name).status)
        meta = new["metadata"]
        if resource.key == resources.CRDS and not target.subresource and not meta.get("deletionTimestamp"):
            self._serve_crd(new)
        held_by_namespace = resource.key == resources.NAMESPACES and (new.get("spec") or {}).get("finalizers")
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not held_by_namespace:
            final = self.store.delete(resource.storage_key, new)
            self.deleted_owners.append(meta["uid"])
            self.changed.set()
            return Outcome(present(final, target.version, resource), 200, warnings)
        stored = self.store.update(resource.storage_key, old, new)
        if meta.get("deletionTimestamp"):
            self.changed.set()
        return Outcome(present(stored, target.version, resource), 200, warnings)

    def _prepare_update(self, target: Target, old: Object, new: Object) -> Object:
        resource = target.resource
        old_meta = old["metadata"]
        meta = new.setdefault("metadata", {})
        for field in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "managedFields",
        ):
            if field in old_meta and field != "managedFields":
                meta[field] = old_meta[field]
            elif field == "managedFields":
                if "managedFields" not in meta and "managedFields" in old_meta:
                    meta["managedFields"] = old_meta["managedFields"]
            else:
                meta.pop(field, None)
        meta["name"] = old_meta["name"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if target.subresource == "status":
            status = new.get("status")
            isolated = copy.deepcopy(old)
            isolated["metadata"]["managedFields"] = meta.get("managedFields", old_meta.get("managedFields"))
            if not resource.custom:
                for field in ("labels", "annotations"):
                    if field in meta:
                        isolated["metadata"][field] = meta[field]
            if status is None:
                isolated.pop("status", None)
            else:
                isolated["status"] = status
            new = isolated
            if not isolated["metadata"].get("managedFields"):
                isolated["metadata"].pop("managedFields", None)
        elif not target.subresource and (
            resource.has_status(target.version) or resource.key == resources.NAMESPACES
        ):
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        strategies.prepare_update(resource, target.subresource, old, new)
        plugins.admit_update(self.store, resource, old, new)
        self._check_name(resource, meta)
        if old_meta.get("deletionTimestamp"):
            added = [f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])]
            if added:
                quoted = ", ".join(f'"{f}"' for f in added)
                raise errors.invalid(
                    resource.group, resource.kind, meta["name"],
                    [FieldError("FieldValueForbidden", f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{quoted}}}", "metadata.finalizers")],
                )  # fmt: skip
        if resource.generation and _spec_of(new) != _spec_of(old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return new
