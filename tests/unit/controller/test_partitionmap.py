"""The mirror's partition map keeps the keys of preempted, moving, held and unsettled partitions, and of every
SuperPod's, as copies come and go."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from superpod.controller import partitionmap

STATUSES = st.sampled_from(
    [
        {},
        {"phase": "Allocated", "allocation": [{"node": "n"}]},
        {"phase": "Pending", "reason": "Preempted", "allocation": [{"node": "n"}]},
        {"phase": "Allocated", "move": {"forPartition": "t/p"}},
        {"phase": "Pending", "reason": "Preempted", "move": {"forPartition": "t/p"}},
    ]
)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "pop", "del"]),
        st.sampled_from(["a/x", "a/y", "b/z"]),
        STATUSES,
        st.sampled_from(["sp1", "sp2"]),  # spec.superPod (immutable in the API; any copy may name any here)
        st.booleans(),  # being deleted
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_the_index_is_what_reading_every_status_gives(ops):
    found = partitionmap.PartitionMap()
    for op, key, status, superpod, deleting in ops:
        if op == "set":
            metadata = {"name": key, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
            found[key] = {"metadata": metadata, "spec": {"superPod": superpod}, "status": status}
        elif op == "pop":
            found.pop(key, None)
        elif key in found:
            del found[key]
    statuses = {key: obj.get("status") or {} for key, obj in found.items()}
    assert found.preempted == {k for k, s in statuses.items() if s.get("reason") == "Preempted"}
    assert found.moving == {k for k, s in statuses.items() if s.get("move")}
    assert found.unsettled == {
        k
        for k, obj in found.items()
        if not statuses[k].get("phase") or obj["metadata"].get("deletionTimestamp")
    }
    for superpod in ("sp1", "sp2", "sp3"):
        assert found.of(superpod) == {
            key for key, obj in found.items() if obj["spec"]["superPod"] == superpod
        }
        assert found.held(superpod) == {
            key
            for key, obj in found.items()
            if obj["spec"]["superPod"] == superpod
            and (obj["status"].get("allocation") or obj["metadata"].get("deletionTimestamp"))
        }


def test_changes_that_would_bypass_the_index_are_refused():
    found = partitionmap.PartitionMap()
    with pytest.raises(TypeError):
        found.update({"a/x": {}})
    with pytest.raises(TypeError):
        found.setdefault("a/x", {})
    assert dict(found) == {}
