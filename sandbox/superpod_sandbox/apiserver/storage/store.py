"""The in-memory object store: objects by resource, namespace and name, one global resourceVersion.

Stored objects are never mutated after they are stored: writers build a new dict and hand it over, so readers
and watch events can share references without copying. Every write takes the next resourceVersion and
publishes a watch event. Secondary indexes (uid, owner uid -> dependents) serve the garbage collector; label
indexes (a label's value -> the objects carrying it), made for a label the first time a list selects on it,
serve lists and watches by label selector.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterator
from typing import Any

from superpod_sandbox.apiserver.registry.resources import GroupResource
from superpod_sandbox.apiserver.storage import watchhub

Object = dict[str, Any]
ObjectRef = tuple[GroupResource, str, str]  # (resource, namespace or "", name)


def _owner_uids(obj: Object) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or () if "uid" in ref}


class Store:
    def __init__(self, history_size: int = 10_000, history_seconds: float = 75.0) -> None:
        self.resource_version = 0
        self.hub = watchhub.Hub(history_size, history_seconds)
        self._objects: dict[GroupResource, dict[str, dict[str, Object]]] = {}
        self._by_uid: dict[str, ObjectRef] = {}
        self._dependents: dict[str, set[ObjectRef]] = {}
        # names in order, per (resource, namespace), kept until one is created or deleted there: a list of
        # 65,536 Nodes sorts them once, not at every request
        self._sorted: dict[tuple[GroupResource, str], list[str]] = {}
        # resource -> label key -> value -> namespace -> names (`labelled`)
        self._labels: dict[GroupResource, dict[str, dict[str, dict[str, set[str]]]]] = {}

    def get(self, resource: GroupResource, namespace: str, name: str) -> Object | None:
        return self._objects.get(resource, {}).get(namespace, {}).get(name)

    def get_by_uid(self, uid: str) -> tuple[ObjectRef, Object] | None:
        ref = self._by_uid.get(uid)
        if ref is None:
            return None
        obj = self.get(*ref)
        return None if obj is None else (ref, obj)

    def objects(self, resource: GroupResource, namespace: str | None) -> list[Object]:
        """Objects in (namespace, name) order, the order kube-apiserver lists them in."""
        by_namespace = self._objects.get(resource, {})
        if namespace is not None:
            names = by_namespace.get(namespace, {})
            return [names[name] for name in self._names(resource, namespace, names)]
        return [
            by_namespace[ns][name]
            for ns in sorted(by_namespace)
            for name in self._names(resource, ns, by_namespace[ns])
        ]

    def objects_after(
        self, resource: GroupResource, namespace: str | None, after: tuple[str, str]
    ) -> Iterator[Object]:
        """`objects(resource, namespace)` from the first whose (namespace, name) is above `after`, lazily:
        the next page of a list starts where the last ended instead of passing over everything before it."""
        by_namespace = self._objects.get(resource, {})
        spaces = [namespace] if namespace is not None else sorted(by_namespace)
        for space in spaces:
            if space < after[0]:
                continue
            names = by_namespace.get(space, {})
            ordered = self._names(resource, space, names)
            start = bisect.bisect_right(ordered, after[1]) if space == after[0] else 0
            for name in ordered[start:]:
                yield names[name]

    def labelled(
        self, resource: GroupResource, namespace: str | None, key: str, values: Collection[str]
    ) -> list[Object]:
        """The objects of `objects(resource, namespace)`, in its order, whose label `key` has one of `values`.

        The first call for a label indexes it over the resource's objects; every write keeps the index from
        then on. A simulated SuperPoD's list of its 1,024 Nodes among a SuperCluster's 65,536 then looks at
        its own, where a scan evaluated the selector on all of them (and again for each page).
        """
        chosen = self._chosen(resource, namespace, key, values)
        by_namespace = self._objects.get(resource, {})
        return [by_namespace[space][name] for space in sorted(chosen) for name in sorted(chosen[space])]

    def labelled_count(
        self, resource: GroupResource, namespace: str | None, key: str, values: Collection[str]
    ) -> int:
        """How many objects `labelled` would give, without ordering them."""
        return sum(len(names) for names in self._chosen(resource, namespace, key, values).values())

    def _chosen(
        self, resource: GroupResource, namespace: str | None, key: str, values: Collection[str]
    ) -> dict[str, set[str]]:
        indexed = self._labels.setdefault(resource, {})
        by_value = indexed.get(key)
        if by_value is None:
            by_value = indexed[key] = {}
            for space, objects in self._objects.get(resource, {}).items():
                for name, obj in objects.items():
                    value = (obj["metadata"].get("labels") or {}).get(key)
                    if value is not None:
                        by_value.setdefault(value, {}).setdefault(space, set()).add(name)
        if len(values) == 1:
            (value,) = values
            found = by_value.get(value, {})
            return found if namespace is None else {namespace: found[namespace]} if namespace in found else {}
        chosen: dict[str, set[str]] = {}
        for value in values:
            for space, names in by_value.get(value, {}).items():
                if namespace is None or space == namespace:
                    chosen.setdefault(space, set()).update(names)
        return chosen

    def _relabel(
        self, resource: GroupResource, namespace: str, name: str, old: Object | None, new: Object | None
    ) -> None:
        """Keep the label indexes of `resource` when an object is written (None: created, or deleted)."""
        indexed = self._labels.get(resource)
        if not indexed:
            return
        before = (old["metadata"].get("labels") or {}) if old is not None else {}
        after = (new["metadata"].get("labels") or {}) if new is not None else {}
        for key, by_value in indexed.items():
            was, now = before.get(key), after.get(key)
            if was == now:
                continue
            if was is not None:
                names = by_value[was][namespace]
                names.discard(name)
                if not names:
                    del by_value[was][namespace]
                    if not by_value[was]:
                        del by_value[was]
            if now is not None:
                by_value.setdefault(now, {}).setdefault(namespace, set()).add(name)

    def count_after(self, resource: GroupResource, namespace: str | None, after: tuple[str, str]) -> int:
        """How many of `objects(resource, namespace)` come after (namespace, name) `after`."""
        by_namespace = self._objects.get(resource, {})
        spaces = [namespace] if namespace is not None else list(by_namespace)
        total = 0
        for space in spaces:
            names = by_namespace.get(space, {})
            if space > after[0]:
                total += len(names)
            elif space == after[0]:
                total += len(names) - bisect.bisect_right(self._names(resource, space, names), after[1])
        return total

    def _names(self, resource: GroupResource, namespace: str, names: dict[str, Object]) -> list[str]:
        ordered = self._sorted.get((resource, namespace))
        if ordered is None:
            ordered = self._sorted[(resource, namespace)] = sorted(names)
        return ordered

    def count(self, resource: GroupResource, namespace: str | None = None) -> int:
        by_namespace = self._objects.get(resource, {})
        if namespace is not None:
            return len(by_namespace.get(namespace, {}))
        return sum(len(names) for names in by_namespace.values())

    def resources_in(self, namespace: str) -> list[GroupResource]:
        return [resource for resource, by_ns in self._objects.items() if by_ns.get(namespace)]

    def dependents(self, owner_uid: str) -> list[ObjectRef]:
        return sorted(self._dependents.get(owner_uid, ()))

    def _stamp(self, obj: Object) -> int:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        return self.resource_version

    def _index(self, ref: ObjectRef, old: Object | None, new: Object | None) -> None:
        old_owners = _owner_uids(old) if old else set()
        new_owners = _owner_uids(new) if new else set()
        for uid in old_owners - new_owners:
            dependents = self._dependents.get(uid)
            if dependents is not None:
                dependents.discard(ref)
                if not dependents:
                    del self._dependents[uid]
        for uid in new_owners - old_owners:
            self._dependents.setdefault(uid, set()).add(ref)
        if new is None and old is not None:
            self._by_uid.pop(old["metadata"].get("uid", ""), None)
        elif new is not None:
            self._by_uid[new["metadata"]["uid"]] = ref

    def create(self, resource: GroupResource, obj: Object) -> Object:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        rv = self._stamp(obj)
        self._objects.setdefault(resource, {}).setdefault(namespace, {})[name] = obj
        self._sorted.pop((resource, namespace), None)
        self._index((resource, namespace, name), None, obj)
        self._relabel(resource, namespace, name, None, obj)
        self.hub.publish(resource, watchhub.Event(rv, "ADDED", obj))
        return obj

    def update(self, resource: GroupResource, old: Object, new: Object) -> Object:
        meta = new["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        rv = self._stamp(new)
        self._objects[resource][namespace][name] = new
        self._index((resource, namespace, name), old, new)
        self._relabel(resource, namespace, name, old, new)
        self.hub.publish(resource, watchhub.Event(rv, "MODIFIED", new, old))
        return new

    def delete(self, resource: GroupResource, obj: Object) -> Object:
        """Remove the object; the DELETED event carries it with the deletion's resourceVersion."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        names = self._objects[resource][namespace]
        del names[name]
        self._sorted.pop((resource, namespace), None)
        if not names:
            del self._objects[resource][namespace]
        self._index((resource, namespace, name), obj, None)
        self._relabel(resource, namespace, name, obj, None)
        final = {**obj, "metadata": dict(meta)}
        rv = self._stamp(final)
        self.hub.publish(resource, watchhub.Event(rv, "DELETED", final, obj))
        return final

    def drop_resource(self, resource: GroupResource) -> None:
        """Forget a resource that is no longer served (its objects were deleted first)."""
        self._objects.pop(resource, None)
        self._labels.pop(resource, None)
        self._sorted = {key: names for key, names in self._sorted.items() if key[0] != resource}
