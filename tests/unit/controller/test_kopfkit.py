"""kopf's state storages for partitions: a create placed at the first attempt leaves kopf nothing to write."""

from __future__ import annotations

from typing import Any, cast

import kopf
import pytest
from superpod.controller import kopfkit


def partition(status: dict[str, Any] | None = None) -> kopf.Body:
    raw: dict[str, Any] = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": "job", "namespace": "team", "uid": "u1", "resourceVersion": "7"},
        "spec": {"superPod": "sp", "npus": 8},
    }
    if status is not None:
        raw["status"] = status
    return kopf.Body(cast(kopf.RawBody, raw))


@pytest.mark.parametrize(
    ("status", "handled"),
    [
        (None, False),
        ({}, False),
        ({"phase": "Pending", "reason": "InsufficientCapacity"}, True),
        ({"phase": "Allocated", "allocation": [{"rank": 0, "node": "n1", "devices": ["d0"]}]}, True),
    ],
    ids=[
        "a partition without status was never handled",
        "an empty status was never handled",
        "a Pending partition was handled",
        "an Allocated partition was handled",
    ],
)
def test_a_partition_counts_as_handled_once_the_operator_wrote_its_phase(
    status: dict[str, Any] | None, handled: bool
) -> None:
    storage = kopfkit.SpecDiffBase()
    body = partition(status)
    stored = storage.fetch(body=body)
    assert (stored is not None) is handled
    if handled:
        assert stored == storage.build(body=body)  # kopf sees no change: no update cause


def test_the_essence_is_the_spec_alone() -> None:
    essence = kopfkit.SpecDiffBase().build(body=partition({"phase": "Allocated"}))
    assert dict(essence) == {"spec": {"superPod": "sp", "npus": 8}}


def test_the_diff_base_writes_nothing() -> None:
    storage = kopfkit.SpecDiffBase()
    body = partition()
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch


def test_a_handler_done_at_once_leaves_no_progress_and_no_marker_to_write() -> None:
    storage = kopfkit.UnmarkedProgressStorage(prefix="superpod.dev")
    body = partition()
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "success": True, "retries": 1}
    storage.store(key=kopf.HandlerId("place"), record=record, body=body, patch=patch)
    assert patch  # while the handler runs, its progress would be written
    storage.purge(key=kopf.HandlerId("place"), body=body, patch=patch)
    assert not patch


def test_a_failed_handler_still_records_its_retry() -> None:
    storage = kopfkit.UnmarkedProgressStorage(prefix="superpod.dev")
    patch = kopf.Patch()
    record: Any = {"started": "2026-01-01T00:00:00", "retries": 1, "delayed": "2026-01-01T00:00:02"}
    storage.store(key=kopf.HandlerId("place"), record=record, body=partition(), patch=patch)
    assert set(patch["metadata"]["annotations"]) == {"superpod.dev/place"}
