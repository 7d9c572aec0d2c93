"""Golden placements of small request sequences on every profile, so a change of policy shows in review.

Regenerate after an intended change with `SUPERPOD_UPDATE_GOLDEN=1 pytest tests/unit/placement/test_golden.py`
and read the diff of golden/small_requests.json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from superpod import placement

from tests.unit.placement.builders import SMALL_NODES, make_allocator

GOLDEN = Path(__file__).parent / "golden" / "small_requests.json"
SEQUENCES: dict[str, list[dict[str, Any]]] = {
    "cloudmatrix-384": [
        {"npus": 1},
        {"npus": 2},
        {"npus": 1},
        {"npus": 4},
        {"npus": 16},
        {"npus": 8, "maxTier": "node"},
        {"npus": 32, "blockSize": 16},
        {"npus": 2, "wholeNodes": True},
        {"npus": 6, "devicesPerPod": 2},
    ],
    "atlas-950": [
        {"npus": 1},
        {"npus": 3},
        {"npus": 8},
        {"npus": 16, "maxTier": "rack"},
        {"npus": 128, "blockSize": 64},
    ],
    "atlas-960": [{"npus": 4}, {"npus": 4}, {"npus": 64, "maxTier": "rack"}],
    "atlas-950-supercluster": [{"npus": 2}, {"npus": 64}, {"npus": 96, "blockSize": 32}],
    "ascend-910a": [{"npus": 1}, {"npus": 2}, {"npus": 1}, {"npus": 4}, {"npus": 8}, {"npus": 3}],
    "ascend-910b": [{"npus": 1}, {"npus": 7}, {"npus": 16}],
    "custom": [{"npus": 1}, {"npus": 2}, {"npus": 8}, {"npus": 32, "maxTier": "rack"}, {"npus": 3}],
    "nvidia-gb200-nvl72": [{"npus": 2}, {"npus": 2}, {"npus": 72, "maxTier": "rack"}, {"npus": 8}],
}


def outcome(profile: str) -> list[dict[str, Any]]:
    allocator = make_allocator(profile, SMALL_NODES.get(profile))
    out = []
    for number, fields in enumerate(SEQUENCES[profile]):
        request = placement.PlacementRequest(
            npus=fields["npus"],
            block_size=fields.get("blockSize"),
            max_tier=fields.get("maxTier"),
            devices_per_pod=fields.get("devicesPerPod"),
            whole_nodes=fields.get("wholeNodes", False),
        )
        decision = allocator.plan_partition(request)
        if isinstance(decision, placement.Placement):
            allocator.commit(f"p{number}", decision)
            out.append({"request": fields, "tierSpan": decision.tier_span, "devices": decision.device_ids()})
        else:
            out.append({"request": fields, "reason": decision.reason.value})
    return out


@pytest.mark.parametrize("profile", sorted(SEQUENCES))
def test_small_requests_are_placed_as_recorded(profile):
    if os.environ.get("SUPERPOD_UPDATE_GOLDEN"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        recorded[profile] = outcome(profile)
        GOLDEN.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
    assert outcome(profile) == json.loads(GOLDEN.read_text())[profile]
