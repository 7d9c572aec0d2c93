"""Strategic merge patch for the built-in kinds (what `kubectl apply`, `patch` and `edit` send).

Lists of objects with a merge key (containers by name, ports by containerPort, conditions by type, ...) merge
item by item instead of being replaced; `finalizers` merge as a set. The directives kubectl writes are honoured:
`$patch: replace|delete|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
(the last only as an ordering hint, which is ignored). The merge keys are kube's (`x-kubernetes-patch-merge-key`
in its published schemas, `builtin_schemas.patch_strategies`), looked up by field name; other lists are
atomic, as in kube.
"""

from __future__ import annotations

import copy
from typing import Any

from superpod_sandbox.apiserver.formats import builtin_schemas

_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}
MERGE_KEYS, SET_LISTS = builtin_schemas.patch_strategies()  # kube's patch merge keys, by field name


def merge_key(field: str, parent: tuple[str, ...]) -> str | None:
    if field == "ports":
        return "containerPort" if parent and parent[-1] in _CONTAINER_LISTS else "port"
    return MERGE_KEYS.get(field)


def strip(value: Any) -> Any:
    """A value with every `$...` directive removed (for parts copied in whole)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [
            strip(item) for item in value if not (isinstance(item, dict) and item.get("$patch") == "delete")
        ]
    return value


def apply(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The object after the strategic merge patch (inputs are not modified)."""
    merged = _merge_map(copy.deepcopy(original), patch, ())
    return merged if merged is not None else {}


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]
) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "replace":
        replaced: dict[str, Any] = strip(patch)
        return replaced
    if directive == "delete":
        return None
    result = dict(original)
    deletions: list[tuple[str, list[Any]]] = []
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            deletions.append((key.split("/", 1)[1], value if isinstance(value, list) else []))
            continue
        if key.startswith("$"):
            continue  # $patch handled above; $setElementOrder and $retainKeys below or ignored
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(current if isinstance(current, list) else [], value, key, path)
        else:
            result[key] = value
    for key, removed in deletions:
        if isinstance(result.get(key), list):
            result[key] = [item for item in result[key] if item not in removed]
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: list[Any], patch: list[Any], field: str, parent: tuple[str, ...]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [strip(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    key = merge_key(field, parent)
    if key is None or not all(isinstance(item, dict) for item in patch):
        if field in SET_LISTS:
            return original + [item for item in patch if item not in original]
        return [strip(item) for item in patch]
    result = list(original)
    for item in patch:
        position = next(
            (
                i
                for i, current in enumerate(result)
                if isinstance(current, dict) and current.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(strip(item))
        else:
            merged = _merge_map(result[position], item, (*parent, field))
            if merged is None:
                del result[position]
            else:
                result[position] = merged
    return result
