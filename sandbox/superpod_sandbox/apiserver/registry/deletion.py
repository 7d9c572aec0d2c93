"""DELETE, deletecollection, and the garbage collector that finishes what they start.

An object without finalizers goes at once; one with finalizers gets deletionTimestamp and stays until they are
removed. `propagationPolicy` Foreground adds the `foregroundDeletion` finalizer and Orphan the `orphan` one, as
kube does; the collector then deletes (or orphans) the dependents found through ownerReferences and removes
the finalizer. Deleting a Namespace deletes its contents before the Namespace goes; deleting a CRD deletes its
custom resources before it stops being served. The collector runs as a task, woken by writes, so, as in kube,
clients see dependents disappear shortly after the owner, not in the same request.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import managed
from superpod_sandbox.apiserver.registry import resources, semantics
from superpod_sandbox.apiserver.registry.semantics import Options, Outcome, State, Target
from superpod_sandbox.apiserver.storage import store

Object = dict[str, Any]
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
logger = logging.getLogger(__name__)


async def delete(api: State, target: Target, delete_options: Object, options: Options) -> Outcome:
    resource = target.resource
    old = api.store.get(resource.storage_key, target.namespace, target.name)
    if old is None:
        raise errors.not_found(resource.group, resource.plural, target.name)
    preconditions = delete_options.get("preconditions") or {}
    meta = old["metadata"]
    if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
        raise errors.conflict(resource.group, resource.plural, target.name,
                              f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}")  # fmt: skip
    if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta["resourceVersion"]:
        raise errors.conflict(resource.group, resource.plural, target.name,
                              f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']}, ResourceVersion in object meta: {meta['resourceVersion']}")  # fmt: skip
    policy = delete_options.get("propagationPolicy")
    if policy is None and delete_options.get("orphanDependents") is not None:
        policy = "Orphan" if delete_options["orphanDependents"] else "Background"
    if policy not in (None, "Foreground", "Background", "Orphan"):
        raise errors.invalid(resource.group, resource.kind, target.name, [errors.FieldError(
            "FieldValueNotSupported", f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"', "propagationPolicy")])  # fmt: skip
    if api.admission is not None:
        await api.admission("DELETE", target, None, old, options, False)
        # Webhooks may have taken a while: go on from the object as it is now.
        current = api.store.get(resource.storage_key, target.namespace, target.name)
        if current is None:
            raise errors.not_found(resource.group, resource.plural, target.name)
        old, meta = current, current["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    extra = {"Foreground": FOREGROUND, "Orphan": ORPHAN}.get(policy or "")
    if extra and extra not in finalizers:
        finalizers.append(extra)
    grace = _grace_period(resource, old, delete_options)
    pending = bool(finalizers) or grace > 0 or resource.key in (resources.NAMESPACES, resources.CRDS)
    if not pending:
        if options.dry_run:
            return _deleted_answer(resource, old, target)
        final = api.store.delete(resource.storage_key, old)
        api.deleted_owners.append(meta["uid"])
        api.changed.set()
        return _deleted_answer(resource, final, target)
    shortened = grace < int(meta.get("deletionGracePeriodSeconds") or 0)
    if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []) and not shortened:
        return Outcome(semantics.present(old, target.version, resource), 200)
    new = copy.deepcopy(old)
    new_meta = new["metadata"]
    new_meta["finalizers"] = finalizers
    if resource.key == resources.CRDS and CRD_CLEANUP not in finalizers:
        new_meta["finalizers"].append(CRD_CLEANUP)
        new.setdefault("status", {}).setdefault("conditions", []).append(
            {"type": "Terminating", "status": "True", "lastTransitionTime": managed.now(),
             "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"})  # fmt: skip
    if resource.key == resources.NAMESPACES:
        new["status"] = {"phase": "Terminating"}
    if not new_meta.get("deletionTimestamp") or shortened:
        # A Pod on a node waits for its kubelet (the simulator) for the grace period; others go at once.
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
        new_meta["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        new_meta["deletionGracePeriodSeconds"] = grace
    if options.dry_run:
        return Outcome(semantics.present(new, target.version, resource), 200)
    stored = api.store.update(resource.storage_key, old, new)
    if resource.key in (resources.NAMESPACES, resources.CRDS) or {FOREGROUND, ORPHAN} & set(finalizers):
        # Only deletions the server itself must advance are tracked; others wait for their finalizers' owners.
        api.terminating.add((resource.key, target.namespace, target.name))
    api.changed.set()
    return Outcome(semantics.present(stored, target.version, resource), 200)


def _grace_period(resource: resources.Resource, pod: Object, delete_options: Object) -> int:
    """kube's Pod graceful deletion: the requested or the pod's own grace period, 0 when no kubelet runs it."""
    if resource.key != ("", "pods"):
        return 0
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    requested = delete_options.get("gracePeriodSeconds")
    try:
        grace = (
            int(requested) if requested is not None else int(spec.get("terminationGracePeriodSeconds", 30))
        )
    except (TypeError, ValueError):
        raise errors.bad_request(f"gracePeriodSeconds must be an integer (got {requested!r})") from None
    return max(grace, 0)


def _deleted_answer(resource: resources.Resource, final: Object, target: Target) -> Outcome:
    if resource.returns_deleted_object:
        return Outcome(semantics.present(final, target.version, resource), 200)
    details: Object = {"name": target.name}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    details["uid"] = final["metadata"]["uid"]
    return Outcome(errors.success(details), 200)


async def remove_finalizer(api: State, ref: store.ObjectRef, finalizer: str) -> None:
    key, namespace, name = ref
    current = api.store.get(key, namespace, name)
    if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
        return
    resource = api.registry.get(key)
    if resource is None:
        return
    new = copy.deepcopy(current)
    new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"] if f != finalizer]
    if not new["metadata"]["finalizers"]:
        del new["metadata"]["finalizers"]
    target = Target(resource, resource.storage_version, namespace, name)
    await api.write_update(target, current, new, Options(manager="garbage-collector"))


async def _delete_ref(api: State, ref: store.ObjectRef, policy: str = "Background") -> None:
    key, namespace, name = ref
    resource = api.registry.get(key)
    if resource is None or api.store.get(key, namespace, name) is None:
        return
    target = Target(resource, resource.storage_version, namespace, name)
    try:
        await delete(api, target, {"propagationPolicy": policy}, Options(manager="garbage-collector"))
    except errors.ApiError as failure:
        logger.debug("collector could not delete %s: %s", ref, failure)


async def collect_once(api: State) -> bool:
    """One pass of the collector; True when work remains (an object still waits for something)."""
    waiting = False
    owners, api.deleted_owners = api.deleted_owners, []
    for uid in owners:
        for ref in api.store.dependents(uid):
            dependent = api.store.get(*ref)
            if dependent is None:
                continue
            refs = dependent["metadata"].get("ownerReferences") or []
            alive = [
                r for r in refs if r.get("uid") != uid and api.store.get_by_uid(r.get("uid", "")) is not None
            ]
            if alive:
                await _strip_owner(api, ref, uid)
            else:
                await _delete_ref(api, ref)
    for ref in sorted(api.terminating):
        obj = api.store.get(*ref)
        if obj is None:
            api.terminating.discard(ref)
            continue
        waiting |= await _finish(api, ref, obj)
    return waiting


async def _strip_owner(api: State, ref: store.ObjectRef, uid: str) -> None:
    current = api.store.get(*ref)
    resource = api.registry.get(ref[0])
    if current is None or resource is None:
        return
    new = copy.deepcopy(current)
    new["metadata"]["ownerReferences"] = [
        r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid
    ]
    if not new["metadata"]["ownerReferences"]:
        del new["metadata"]["ownerReferences"]
    target = Target(resource, resource.storage_version, ref[1], ref[2])
    await api.write_update(target, current, new, Options(manager="garbage-collector"))


async def _finish(api: State, ref: store.ObjectRef, obj: Object) -> bool:
    """Advance one terminating object; True while it still waits."""
    meta = obj["metadata"]
    finalizers = meta.get("finalizers") or []
    key = ref[0]
    if key == resources.NAMESPACES:
        name = ref[2]
        contents = api.store.resources_in(name)
        for resource_key in contents:
            for item in api.store.objects(resource_key, name):
                if not item["metadata"].get("deletionTimestamp"):
                    await _delete_ref(api, (resource_key, name, item["metadata"]["name"]))
        if api.store.resources_in(name):
            return True
        current = api.store.get(*ref)
        if current is None:
            return False
        if current.get("spec", {}).get("finalizers"):
            new = copy.deepcopy(current)
            new["spec"]["finalizers"] = []
            resource = api.registry.get(key)
            assert resource is not None
            target = Target(resource, "v1", "", name, "finalize")
            await api.write_update(target, current, new, Options(manager="namespace-controller"))
        return False
    if CRD_CLEANUP in finalizers:
        spec = obj["spec"]
        served = (spec["group"], spec["names"]["plural"])
        for item in api.store.objects(served, None):
            if not item["metadata"].get("deletionTimestamp"):
                await _delete_ref(
                    api, (served, item["metadata"].get("namespace", ""), item["metadata"]["name"])
                )
        if api.store.count(served):
            return True
        api.registry.remove(served)
        api.schemas.forget(served)
        api.store.drop_resource(served)
        await remove_finalizer(api, ref, CRD_CLEANUP)
        return False
    if ORPHAN in finalizers:
        for dependent in api.store.dependents(meta["uid"]):
            await _strip_owner(api, dependent, meta["uid"])
        await remove_finalizer(api, ref, ORPHAN)
        return False
    if FOREGROUND in finalizers:
        blocking = False
        for dependent in api.store.dependents(meta["uid"]):
            found = api.store.get(*dependent)
            if found is None:
                continue
            blocking = True
            if not found["metadata"].get("deletionTimestamp"):
                await _delete_ref(api, dependent, "Foreground")
        if blocking:
            return True
        await remove_finalizer(api, ref, FOREGROUND)
        return False
    return False


async def run_collector(api: State, poll: float = 0.1) -> None:
    """Run until cancelled: a pass after every wake-up, and every `poll` seconds while work waits."""
    waiting = False
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(api.changed.wait(), timeout=poll if waiting else None)
        api.changed.clear()
        try:
            waiting = await collect_once(api)
        except Exception:  # the collector must outlive any single failure, as kube's controllers do
            logger.exception("garbage collector pass failed")
            waiting = True


async def delete_collection(
    api: State, targets: list[Target], delete_options: Object, options: Options
) -> None:
    for target in targets:
        try:
            await delete(api, target, delete_options, options)
        except errors.ApiError as failure:
            if failure.code != 404:
                raise
