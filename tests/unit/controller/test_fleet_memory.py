"""The fleet's copy of a partition after its own status write: never older than the mirror's, never revived."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from superpod.controller import fleet as fleet_module

JSON = dict[str, Any]


def copy(version: str, uid: str = "u1", phase: str = "Allocated") -> JSON:
    return {
        "metadata": {"name": "job", "namespace": "team", "uid": uid, "resourceVersion": version},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("mirror", "written", "kept"),
    [
        (copy("10", phase="Pending"), copy("11"), "11"),
        (copy("12", phase="Bound"), copy("11"), "12"),
        (None, copy("11"), None),
        (copy("12", uid="u2", phase="Pending"), copy("11"), "12"),
    ],
    ids=[
        "a newer write replaces the mirror's copy",
        "a newer mirror copy (a pod bound meanwhile) stays",
        "a partition the mirror saw deleted is not brought back",
        "a partition recreated under the same name keeps its own copy",
    ],
)
def test_a_written_copy_is_kept_only_when_it_is_the_newest_of_the_same_partition(
    mirror: JSON | None, written: JSON, kept: str | None
) -> None:
    fleet = fleet_module.Fleet(SimpleNamespace())  # type: ignore[arg-type]
    if mirror is not None:
        fleet.partitions["team/job"] = mirror
    fleet._remember(written)
    current = fleet.partitions.get("team/job")
    assert (current["metadata"]["resourceVersion"] if current else None) == kept
