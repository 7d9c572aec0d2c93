"""LIST: selectors, limit/continue pagination and Table answers.

Continue tokens carry the last (namespace, name) returned; the next page starts after it. Unlike
kube-apiserver, which serves later pages from a snapshot at the first page's resourceVersion (or 410 when it
is compacted), later pages here show the current state.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Iterator
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.formats import printers, printers_workloads
from superpod_sandbox.apiserver.listwatch import selectorparser
from superpod_sandbox.apiserver.registry import events
from superpod_sandbox.apiserver.registry.resources import Resource
from superpod_sandbox.apiserver.storage.store import Store

Object = dict[str, Any]
TABLE = "as=Table"


def wants_table(accept: str) -> bool:
    return TABLE in accept.replace(" ", "")


def encode_continue(resource_version: int, last: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": f"{last[0]}/{last[1]}\x00"})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = str(data["start"]).rstrip("\x00").partition("/")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None
    return namespace, name


def candidates(store: Store, resource: Resource, namespace: str, label_selector: str | None) -> list[Object]:
    """The objects of `resource` in `namespace` ("": all) that a list or watch with `label_selector` looks at,
    in key order: those carrying a value the selector requires of a label (the store's label index), else
    all. The caller still applies the whole selector to them."""
    required = selectorparser.label_values(label_selector)
    if required is None:
        return store.objects(resource.storage_key, namespace or None)
    return store.labelled(resource.storage_key, namespace or None, *required)


SELECTIVE = 4
"""A label the selector requires that at most 1 in `SELECTIVE` objects carry starts a page from the label index;
a commoner one is checked on the way through the objects in order."""


def selected_after(
    store: Store,
    resource: Resource,
    namespace: str,
    label_selector: str | None,
    predicate: Callable[[Object], bool] | None,
    after: tuple[str, str] | None,
) -> Iterator[Object]:
    """The objects of `resource` in `namespace` ("": all) that a list selects, in key order, from the first above
    `after` (None: from the first), lazily: a page takes its `limit` and stops.

    Every device-info ConfigMap carries `mx-consumer-cim=true`, so a replica's paged list of a SuperCluster's
    65,536 by that label, in pages of 500, once ordered all 65,536 and checked each against the selector for every
    page: 131 pages, two minutes of the API server. A label few objects carry (a simulated SuperPoD's nodes among
    a SuperCluster's) still starts from the label index."""
    key, space = resource.storage_key, namespace or None
    required = selectorparser.label_values(label_selector)
    items: Iterator[Object]
    total = store.count(key, space)
    if required is not None and store.labelled_count(key, space, *required) * SELECTIVE <= total:
        found = store.labelled(key, space, *required)
        start = 0 if after is None else bisect.bisect_right(found, after, key=_key)
        items = iter(found[start:])
    else:
        items = store.objects_after(key, space, after or ("", ""))
    return items if predicate is None else filter(predicate, items)


def _key(obj: Object) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def page(
    items: list[Object], limit: int, token: str | None, resource_version: int
) -> tuple[list[Object], Object]:
    """The page of `items` (already filtered, in key order) and the list metadata to answer with."""
    if token:
        after = decode_continue(token)
        items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
    list_meta: Object = {"resourceVersion": str(resource_version)}
    if limit > 0 and len(items) > limit:
        last = items[limit - 1]["metadata"]
        list_meta["continue"] = encode_continue(resource_version, (last.get("namespace", ""), last["name"]))
        list_meta["remainingItemCount"] = len(items) - limit
        items = items[:limit]
    return items, list_meta


def list_body(resource: Resource, version: str, items: list[Object], list_meta: Object) -> Object:
    if not resource.custom:
        # Typed lists in kube omit each item's kind and apiVersion; unstructured (CR) lists keep them.
        items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return {
        "kind": f"{resource.kind}List",
        "apiVersion": resource.api_version(version),
        "metadata": list_meta,
        "items": items,
    }


def table(
    resource: Resource, version: str, items: list[Object], list_meta: Object, include_object: str
) -> Object:
    """A meta.k8s.io/v1 Table: a CRD version's printer columns (Age alone when it has none), kube's built-in
    printers for the kinds printers.py and printers_workloads.py know, and Name + Created At for the rest."""
    columns: list[Object] | None
    if resource.custom:
        served = resource.version(version)
        columns = list(served.printer_columns or ()) if served is not None else []
    else:
        columns = printers.BUILTIN_COLUMNS.get(resource.key) or printers_workloads.COLUMNS.get(resource.key)
    if resource.stored_as == ("", "events"):
        items = [events.to_core(item) for item in items]  # kube prints both Event APIs alike
    return printers.table(items, columns, list_meta, include_object)
