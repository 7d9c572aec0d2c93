"""The store's label index gives what a scan of every object by the selector's label gives, after any writes."""

from __future__ import annotations

import random

from superpod_sandbox.apiserver.storage.store import Store

CONFIGMAPS = ("", "configmaps")


def _configmap(namespace: str, name: str, labels: dict[str, str] | None) -> dict:
    metadata: dict = {"namespace": namespace, "name": name, "uid": f"{namespace}/{name}"}
    if labels is not None:
        metadata["labels"] = labels
    return {"kind": "ConfigMap", "metadata": metadata}


def _scanned(store: Store, namespace: str | None, key: str, values: set[str]) -> list[tuple[str, str]]:
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in store.objects(CONFIGMAPS, namespace)
        if (o["metadata"].get("labels") or {}).get(key) in values
    ]


def _indexed(store: Store, namespace: str | None, key: str, values: set[str]) -> list[tuple[str, str]]:
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in store.labelled(CONFIGMAPS, namespace, key, values)
    ]


def test_the_label_index_follows_creates_relabels_and_deletes_in_list_order():
    rng = random.Random(7)
    store = Store()
    live: dict[tuple[str, str], dict] = {}
    queries = [
        (None, "fleet", {"a"}),
        ("ns-1", "fleet", {"a", "b"}),
        (None, "tier", {""}),
        ("ns-0", "tier", {"gold"}),
        (None, "fleet", {"none-such"}),
    ]
    found = 0
    for step in range(600):
        namespace, name = f"ns-{rng.randrange(3)}", f"cm-{rng.randrange(40):02d}"
        labels = rng.choice(
            [
                None,
                {},
                {"fleet": rng.choice("abc")},
                {"fleet": rng.choice("ab"), "tier": rng.choice(["gold", ""])},
            ]
        )
        old = live.get((namespace, name))
        if old is None:
            live[(namespace, name)] = store.create(CONFIGMAPS, _configmap(namespace, name, labels))
        elif rng.random() < 0.3:
            store.delete(CONFIGMAPS, old)
            del live[(namespace, name)]
        else:
            live[(namespace, name)] = store.update(CONFIGMAPS, old, _configmap(namespace, name, labels))
        if step >= 50:  # the index is made by the first list, after some writes, and kept from then on
            for where, key, values in queries:
                assert _indexed(store, where, key, values) == _scanned(store, where, key, values), (step, key)
                found += bool(_scanned(store, where, key, values))
    assert found > 1000  # the selections were not empty


def test_a_dropped_resource_leaves_no_index_behind():
    store = Store()
    obj = store.create(CONFIGMAPS, _configmap("ns", "a", {"fleet": "a"}))
    assert _indexed(store, None, "fleet", {"a"}) == [("ns", "a")]
    store.delete(CONFIGMAPS, obj)
    store.drop_resource(CONFIGMAPS)
    store.create(CONFIGMAPS, _configmap("ns", "b", {"fleet": "a"}))
    assert _indexed(store, None, "fleet", {"a"}) == [("ns", "b")]
