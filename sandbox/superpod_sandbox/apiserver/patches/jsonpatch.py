"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), with kube-apiserver's error codes.

A JSON patch that cannot be decoded is a 400; one that decodes but does not apply (a failed `test`, a missing
path) is a 422 whose message is "the server rejected our request due to an error in our request", because that
is what kube-apiserver answers (clients such as kopf rely on the 422 to retry).
"""

from __future__ import annotations

import copy
from typing import Any

from superpod_sandbox.apiserver import errors

_UNPROCESSABLE = "the server rejected our request due to an error in our request"


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


class _PatchFailed(Exception):
    pass


def _unprocessable(reason: str) -> errors.ApiError:
    # kube-apiserver answers NewGenericServerResponse(422, ...) here, which drops the jsonpatch error text.
    del reason
    return errors.ApiError(errors.status(422, "Invalid", _UNPROCESSABLE, {}))


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchFailed(f'doc is missing path: "{path}": missing value')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _PatchFailed(f'doc is missing path: "{path}": missing value')
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise _PatchFailed(f'doc is missing path: "{path}": missing value')


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise _PatchFailed(f'add operation does not apply: doc is missing path: "{path}": missing value')
    else:
        raise _PatchFailed(f'add operation does not apply: doc is missing path: "{path}": missing value')
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise _PatchFailed("unable to remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise _PatchFailed(f'remove operation does not apply: doc is missing path: "{path}": missing value')


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations to a copy of `doc`."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    result = copy.deepcopy(doc)
    for op in operations:
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            raise errors.bad_request(f"missing path in operation: {op}")
        try:
            if kind == "add":
                result = _add(result, path, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                result, _ = _remove(result, path)
            elif kind == "replace":
                _get(result, path)
                result, _ = _remove(result, path) if _pointer(path) else (result, None)
                result = _add(result, path, copy.deepcopy(op.get("value")))
            elif kind == "move":
                result, value = _remove(result, str(op.get("from")))
                result = _add(result, path, value)
            elif kind == "copy":
                result = _add(result, path, copy.deepcopy(_get(result, str(op.get("from")))))
            elif kind == "test":
                try:
                    current = _get(result, path)
                except _PatchFailed:
                    current = None
                if current != op.get("value"):
                    raise _PatchFailed(f"testing value {path} failed: test failed")
            else:
                raise errors.bad_request(f"Unexpected kind: {kind}")
        except _PatchFailed as failure:
            raise _unprocessable(str(failure)) from None
    return result
