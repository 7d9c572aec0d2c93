"""A placed partition's status keeps the conditions other writers own (the rank table's) through every rewrite."""

from __future__ import annotations

from superpod import placement
from superpod.api import partition as api_partition
from superpod.controller import status as derive
from superpod.topology import inventory, profiles, tree


def _decision() -> placement.Placement:
    built = tree.build(profiles.CLOUDMATRIX_384, inventory.synthesize(profiles.CLOUDMATRIX_384, 4))
    spec = api_partition.PartitionSpec.model_validate({"superPod": "sp", "npus": 4})
    decision = placement.Allocator(built).plan_partition(placement.PlacementRequest.from_spec(spec))
    assert isinstance(decision, placement.Placement)
    return decision


def test_a_rewrite_of_a_placed_partition_keeps_its_rank_table_condition():
    decision = _decision()
    first = derive.allocated(decision, previous=None, generation=1)
    rank_table = derive.condition(None, "RankTableWritten", False, "ConfigMapNotOwned", "left untouched", 1)
    previous = {**first, "conditions": [*first["conditions"], rank_table]}

    again = derive.allocated(decision, previous=previous, generation=1, failed=["node-0-00/Ascend910-0"])

    types = [c["type"] for c in again["conditions"]]
    assert types == ["Allocated", "Bound", "Degraded", "RankTableWritten"]
    assert again["conditions"][-1] == rank_table
