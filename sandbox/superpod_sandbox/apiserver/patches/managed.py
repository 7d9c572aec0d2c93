"""Field ownership (metadata.managedFields) and server-side apply.

A field set is a set of paths; a path element is `f:<field>`, `k:<json of the merge key>` for an item of a
keyed list, or `v:<json value>` for a member of a set-like list, as in kube's FieldsV1. Every write records which
manager changed which fields (operation Update); `apply` (PATCH application/apply-patch+yaml) merges the applied
configuration, removes the fields the manager applied before and applies no longer, and refuses to change a
field another manager owns unless forced (409 Conflict with FieldManagerConflict causes).
Simplification: CRD lists are atomic unless they are the keyed built-in lists (see `strategic.MERGE_KEYS`).
"""

from __future__ import annotations

import copy
import datetime
import json
import time
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import strategic

Path = tuple[str, ...]
Object = dict[str, Any]
_IGNORED_METADATA = {
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generateName",
}  # fmt: skip


_compact = json.JSONEncoder(
    separators=(",", ":")
).encode  # json.dumps(..., separators=...) makes one per call
_clock: list[Any] = [-1, ""]  # (whole second, its RFC 3339 text): formatting once per second is cheaper


def now() -> str:
    """The current time as kube writes it (RFC 3339, whole seconds, UTC)."""
    second = int(time.time())
    if second != _clock[0]:
        _clock[0], _clock[1] = (
            second,
            datetime.datetime.fromtimestamp(second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
    text: str = _clock[1]
    return text


def fields(obj: Object, with_status: bool = True) -> dict[Path, Any]:
    """Every owned leaf of an object, mapped to its value."""
    result: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not with_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in _IGNORED_METADATA:
                    _leaves(meta_value, ("f:metadata", f"f:{meta_key}"), (meta_key,), result)
            continue
        _leaves(value, (f"f:{key}",), (key,), result)
    return result


def changes(old: Object | None, new: Object, with_status: bool = True) -> tuple[set[Path], set[Path]]:
    """(paths whose value the write set or changed, paths it removed) between two versions of an object.

    What comparing `fields(old)` with `fields(new)` gives, without listing every leaf of both: subtrees that
    compare equal are skipped whole, so a heartbeat that changes one timestamp of a Node costs that timestamp's
    branch, not the Node (the leaves of a non-empty map are the union of its children's, under distinct keys).
    Equal is Python's equality, as for the leaves themselves.
    """
    changed: set[Path] = set()
    removed: set[Path] = set()
    before = old or {}
    for key in before.keys() | new.keys():
        if key in ("apiVersion", "kind") or (key == "status" and not with_status):
            continue
        if key == "metadata":
            old_meta, new_meta = before.get(key, {}), new.get(key, {})
            if isinstance(old_meta, dict) and isinstance(new_meta, dict):
                for meta_key in (old_meta.keys() | new_meta.keys()) - _IGNORED_METADATA:
                    _changes(
                        old_meta.get(meta_key, _MISSING), new_meta.get(meta_key, _MISSING),
                        ("f:metadata", f"f:{meta_key}"), (meta_key,), changed, removed,
                    )  # fmt: skip
                continue
        _changes(before.get(key, _MISSING), new.get(key, _MISSING), (f"f:{key}",), (key,), changed, removed)
    return changed, removed


def _field_changes(
    old: dict[str, Any],
    new: dict[str, Any],
    path: Path,
    names: tuple[str, ...],
    changed: set[Path],
    removed: set[Path],
) -> None:
    """`_changes` of each field of two maps (an object, or two items of a keyed list) at `path`."""
    for key in old.keys() | new.keys():
        _changes(
            old.get(key, _MISSING),
            new.get(key, _MISSING),
            (*path, f"f:{key}"),
            (*names, key),
            changed,
            removed,
        )


def _changes(
    old: Any, new: Any, path: Path, names: tuple[str, ...], changed: set[Path], removed: set[Path]
) -> None:
    if old is new or (old is not _MISSING and new is not _MISSING and old == new):
        return
    if isinstance(old, dict) and old and isinstance(new, dict) and new:
        _field_changes(old, new, path, names, changed, removed)
        return
    if isinstance(old, list) and old and isinstance(new, list) and new:
        # a list kube merges by key (a Node's conditions at each heartbeat): item by item, as the maps above
        key = strategic.merge_key(names[-1], names[:-1])
        olds = _by_merge_key(old, key) if key is not None else None
        news = _by_merge_key(new, key) if olds is not None and key is not None else None
        if olds is not None and news is not None:
            for item_key in olds.keys() | news.keys():
                old_item, new_item = olds.get(item_key), news.get(item_key)
                if old_item is None or new_item is None:  # an item added or removed: its leaves
                    _changes(
                        [old_item] if old_item is not None else _MISSING,
                        [new_item] if new_item is not None else _MISSING,
                        path, names, changed, removed,
                    )  # fmt: skip
                    continue
                # the item's "." leaf, its key, is equal: its fields, as a map's
                _field_changes(old_item, new_item, (*path, "k:" + item_key), names, changed, removed)
            return
    before: dict[Path, Any] = {}
    after: dict[Path, Any] = {}
    if old is not _MISSING:
        _leaves(old, path, names, before)
    if new is not _MISSING:
        _leaves(new, path, names, after)
    changed.update(leaf for leaf, value in after.items() if before.get(leaf, _MISSING) != value)
    removed.update(before.keys() - after.keys())


def _by_merge_key(items: list[Any], key: str) -> dict[str, dict[str, Any]] | None:
    """The items by their path element's key (`{"type":"Ready"}`), or None when an item has no key or two share
    one (then the list is compared leaf by leaf, as `_leaves` lists it)."""
    keyed: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or key not in item:
            return None
        keyed[_compact({key: item[key]})] = item
    return keyed if len(keyed) == len(items) else None


def _leaves(value: Any, path: Path, names: tuple[str, ...], out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, child in value.items():
            _leaves(child, (*path, f"f:{key}"), (*names, key), out)
        return
    if isinstance(value, list) and value:
        key = strategic.merge_key(names[-1], names[:-1])
        if key is not None and all(isinstance(item, dict) and key in item for item in value):
            for item in value:
                item_path = (*path, "k:" + _compact({key: item[key]}))
                out[(*item_path, ".")] = item[key]
                for child_key, child in item.items():
                    _leaves(child, (*item_path, f"f:{child_key}"), (*names, child_key), out)
            return
        if names[-1] in strategic.SET_LISTS:
            for item in value:
                out[(*path, "v:" + _compact(item))] = item
            return
    out[path] = value


_SHARED_MOST = 65_536
_WHOLE_MOST = 1024
_whole: dict[frozenset[Path], dict[str, Any]] = {}
_shared: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}
_LEAF: dict[str, Any] = {}  # the one empty tree; kept in `_shared` forever (never evicted: not in the table)


def encode(paths: set[Path]) -> dict[str, Any]:
    """Paths as FieldsV1 (nested maps of empty maps; `.` marks a list item itself).

    Trees are never changed once made (an entry is replaced, not edited), so equal subtrees are shared: the
    Nodes of a fleet, written by one manager, differ in a few list keys (their podCIDRs) and hold one copy of
    all the rest instead of one each.
    """
    key = frozenset(paths)
    tree = _whole.get(key)
    if tree is not None:  # a kind whose objects have the same fields: one lookup, no walk
        return tree
    tree = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    tree = _share(tree)
    if len(_whole) >= _WHOLE_MOST:
        del _whole[next(iter(_whole))]
    _whole[key] = tree
    return tree


def _share(tree: dict[str, Any]) -> dict[str, Any]:
    """The one shared tree equal to `tree` (children first, so a key names its children by identity)."""
    return _interned({key: _share(child) for key, child in tree.items()})


def _interned(children: dict[str, Any]) -> dict[str, Any]:
    """The one shared tree with these (shared) children, its keys in order, as FieldsV1 writes them.

    A tree in the table keeps its children alive, so an id in a key never names another object.
    """
    if not children:
        return _LEAF
    ordered = sorted(children.items())
    key = tuple((name, id(child)) for name, child in ordered)
    found = _shared.get(key)
    if found is not None:
        return found
    if len(_shared) >= _SHARED_MOST:
        del _shared[next(iter(_shared))]
    tree = _shared[key] = dict(ordered)
    return tree


class _Repeated(Exception):
    """Two items of a keyed list with the same key: their fields merge, which only `encode` does."""


def owned(obj: Object, with_status: bool = True) -> dict[str, Any]:
    """`encode(set(fields(obj, with_status)))` in one walk of the object: the FieldsV1 of a manager that
    wrote every field (a create), without the paths, their sorting and the tree made from them."""
    try:
        children = {}
        for key, value in obj.items():
            if key in ("apiVersion", "kind") or (key == "status" and not with_status):
                continue
            if key == "metadata" and isinstance(value, dict):
                meta = {
                    f"f:{meta_key}": _owned(meta_value, (meta_key,))
                    for meta_key, meta_value in value.items()
                    if meta_key not in _IGNORED_METADATA
                }
                if meta:
                    children["f:metadata"] = _interned(meta)
                continue
            children[f"f:{key}"] = _owned(value, (key,))
        return _interned(children)
    except _Repeated:
        return encode(set(fields(obj, with_status)))


def _owned(value: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """`_leaves` as a tree: the same cases, in the same order."""
    if isinstance(value, dict) and value:
        return _interned({f"f:{key}": _owned(child, (*names, key)) for key, child in value.items()})
    if isinstance(value, list) and value:
        key = strategic.merge_key(names[-1], names[:-1])
        if key is not None and all(isinstance(item, dict) and key in item for item in value):
            items: dict[str, Any] = {}
            for item in value:
                name = "k:" + _compact({key: item[key]})
                if name in items:
                    raise _Repeated
                fields_of_item = {
                    f"f:{child_key}": _owned(child, (*names, child_key)) for child_key, child in item.items()
                }
                items[name] = _interned({".": _LEAF, **fields_of_item})
            return _interned(items)
        if names[-1] in strategic.SET_LISTS:
            return _interned({"v:" + _compact(item): _LEAF for item in value})
    return _LEAF


def decode(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, child in tree.items():
        path = (*prefix, key)
        if isinstance(child, dict) and child:
            paths |= decode(child, path)
        else:
            paths.add(path)
    return paths


def without_times(entries: list[Object] | None) -> list[Object]:
    """Entries compared for change: a new timestamp alone does not make a write."""
    return [{k: v for k, v in entry.items() if k != "time"} for entry in entries or []]


def _entries(obj: Object) -> list[Object]:
    return list(obj.get("metadata", {}).get("managedFields") or [])


def _entry_paths(entry: Object) -> set[Path]:
    return decode(entry.get("fieldsV1") or {})


def _is_update_by(entry: Object, manager: str, subresource: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == "Update"
        and entry.get("subresource", "") == subresource
    )


def _holds(tree: dict[str, Any], path: Path) -> bool:
    """`path in decode(tree)`, by following the path instead of listing the tree."""
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not (isinstance(node, dict) and node)


def record_update(
    old: Object | None,
    new: Object,
    manager: str,
    api_version: str,
    subresource: str,
    status_separate: bool,
    base_entries: list[Object] | None = None,
) -> None:
    """Give `manager` the fields this write changed (kube's Update operation); sets new's managedFields.

    `base_entries`: the ownership to start from when the client itself rewrote managedFields (kubectl does,
    to hand client-side-apply ownership over to server-side apply); the old object's otherwise.
    """
    with_status = subresource == "status" or not status_separate
    result: list[Object] = []
    if old is None and base_entries is None:  # a create: the manager owns every field there is
        tree = owned(new, with_status)
    else:
        changed, removed = changes(old, new, with_status)
        entries = base_entries if base_entries is not None else (_entries(old) if old is not None else [])
        touched = changed | removed
        own = [entry for entry in entries if _is_update_by(entry, manager, subresource)]
        for entry in entries:
            if _is_update_by(entry, manager, subresource):
                continue
            fields_v1 = entry.get("fieldsV1") or {}
            if not any(_holds(fields_v1, path) for path in touched):
                # the write took nothing from this manager (the common case: a heartbeat), so its fields stay
                if fields_v1:
                    result.append({**entry})
                continue
            paths = decode(fields_v1) - touched
            if paths:
                result.append({**entry, "fieldsV1": encode(paths)})
        if (
            len(own) == 1
            and all(_holds(own[0].get("fieldsV1") or {}, path) for path in changed)
            and not any(_holds(own[0].get("fieldsV1") or {}, path) for path in removed)
        ):
            tree = own[0].get("fieldsV1") or _LEAF  # it changed only fields it owned already
        else:
            mine: set[Path] = set(changed)
            for entry in own:
                mine |= _entry_paths(entry) - touched
            tree = encode(mine) if mine else _LEAF
    if tree:
        entry = {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now(),
                 "fieldsType": "FieldsV1", "fieldsV1": tree}  # fmt: skip
        if subresource:
            entry["subresource"] = subresource
        result.append(entry)
    new["metadata"]["managedFields"] = result
    if not result:
        del new["metadata"]["managedFields"]


def disown(obj: Object, prefixes: list[Path]) -> None:
    """No manager owns the fields under `prefixes` (what the server allocated or generated at create)."""
    if not prefixes:
        return
    result: list[Object] = []
    for entry in _entries(obj):
        paths = {path for path in _entry_paths(entry) if not any(path[: len(p)] == p for p in prefixes)}
        if paths:
            result.append({**entry, "fieldsV1": encode(paths)})
    if result:
        obj["metadata"]["managedFields"] = result
    else:
        obj["metadata"].pop("managedFields", None)


_MISSING = object()


def _remove_path(obj: Any, path: Path) -> None:
    node = obj
    trail: list[tuple[Any, Any]] = []
    for part in path:
        if part == ".":
            break
        if part.startswith("f:") and isinstance(node, dict) and part[2:] in node:
            trail.append((node, part[2:]))
            node = node[part[2:]]
        elif part.startswith("k:") and isinstance(node, list):
            key = json.loads(part[2:])
            index = next(
                (
                    i
                    for i, item in enumerate(node)
                    if isinstance(item, dict) and all(item.get(k) == v for k, v in key.items())
                ),
                None,
            )
            if index is None:
                return
            trail.append((node, index))
            node = node[index]
        elif part.startswith("v:") and isinstance(node, list):
            value = json.loads(part[2:])
            if value in node:
                node.remove(value)
            return
        else:
            return
    if not trail:
        return
    container, key = trail.pop()
    del container[key]
    # Remove parents the removal left empty, as kube drops empty maps and list items it no longer owns.
    while trail:
        container, key = trail.pop()
        if container[key] in ({}, []):
            del container[key]
        else:
            break


def _merge_applied(current: Any, applied: Any, names: tuple[str, ...]) -> Any:
    if isinstance(applied, dict) and isinstance(current, dict):
        result = dict(current)
        for key, value in applied.items():
            result[key] = _merge_applied(current.get(key), value, (*names, key))
        return result
    if isinstance(applied, list) and isinstance(current, list) and names:
        key = strategic.merge_key(names[-1], names[:-1])
        if key is not None and all(isinstance(item, dict) and key in item for item in applied + current):
            result_list = list(current)
            for item in applied:
                index = next((i for i, old in enumerate(result_list) if old.get(key) == item[key]), None)
                if index is None:
                    result_list.append(copy.deepcopy(item))
                else:
                    result_list[index] = _merge_applied(result_list[index], item, names)
            return result_list
        if names[-1] in strategic.SET_LISTS:
            return current + [item for item in applied if item not in current]
    return copy.deepcopy(applied)


def apply(
    current: Object | None,
    applied: Object,
    manager: str,
    api_version: str,
    force: bool,
    subresource: str,
    status_separate: bool,
) -> Object:
    """The object after `manager` applies `applied` to `current` (None: create); raises 409 on conflicts."""
    with_status = subresource == "status" or not status_separate
    applied_fields = fields(applied, with_status)
    base = copy.deepcopy(current) if current is not None else {}
    current_fields = fields(base, with_status) if current is not None else {}
    entries = _entries(base)
    conflicts: list[tuple[str, str, Path]] = []
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        owned = _entry_paths(entry)
        for path, value in applied_fields.items():
            if path in owned and path in current_fields and current_fields[path] != value:
                conflicts.append((entry.get("manager", ""), entry.get("apiVersion", ""), path))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    taken = {
        path for _, _, path in conflicts
    }  # forced: conflicting fields change hands, equal ones are shared
    previous: set[Path] = set()
    others: set[Path] = set()
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous |= _entry_paths(entry)
        else:
            others |= _entry_paths(entry) - set(applied_fields)
    for path in previous - set(applied_fields) - others:
        _remove_path(base, path)
    result: Object = _merge_applied(base, applied, ())
    new_entries: list[Object] = []
    for entry in entries:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            continue
        paths = _entry_paths(entry) - taken
        if paths:
            new_entries.append({**entry, "fieldsV1": encode(paths)})
    mine = {"manager": manager, "operation": "Apply", "apiVersion": api_version, "time": now(),
            "fieldsType": "FieldsV1", "fieldsV1": encode(set(applied_fields))}  # fmt: skip
    if subresource:
        mine["subresource"] = subresource
    new_entries.insert(0, mine)
    result.setdefault("metadata", {})["managedFields"] = new_entries
    return result


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        if part.startswith("f:"):
            text += "." + part[2:]
        elif part.startswith(("k:", "v:")):
            text += "[" + part[2:].replace('"', "").replace("{", "").replace("}", "").replace(":", "=") + "]"
    return text


def _conflict_error(conflicts: list[tuple[str, str, Path]]) -> errors.ApiError:
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{manager}" using {version}',
            "field": _dotted(path),
        }
        for manager, version, path in conflicts
    ]
    if len(conflicts) == 1:
        manager, version, path = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with "{manager}" using {version}: {_dotted(path)}'
    else:
        lines = "\n".join(f'- conflict with "{m}" using {v}: {_dotted(p)}' for m, v, p in conflicts)
        message = f"Apply failed with {len(conflicts)} conflicts: {lines}"
    return errors.ApiError(errors.status(409, "Conflict", message, {"causes": causes}))
