"""Small builders for metrics tests: an allocator over a synthetic CloudMatrix 384 and Fleet-shaped objects."""

from __future__ import annotations

import dataclasses
from typing import Any

from superpod import placement
from superpod.topology import inventory, profiles
from superpod.topology import tree as topology_tree

PROFILE = profiles.CLOUDMATRIX_384


def allocator(nodes: int = 8, reserve: int = 2) -> placement.Allocator:
    observed = inventory.synthesize(PROFILE, nodes)
    return placement.Allocator(topology_tree.build(PROFILE, observed, reserve))


def place(target: placement.Allocator, key: str, npus: int, per_pod: int = 16) -> placement.Placement:
    decision = target.plan_partition(placement.PlacementRequest(npus, devices_per_pod=per_pod))
    assert isinstance(decision, placement.Placement), decision
    target.commit(key, decision)
    return decision


def partition(key: str, superpod: str, phase: str | None = None, reason: str = "") -> dict[str, Any]:
    namespace, _, name = key.partition("/")
    status = {"phase": phase, "reason": reason} if phase else {}
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"superPod": superpod},
        "status": status,
    }


@dataclasses.dataclass(frozen=True)
class Problem:
    node: str
    reason: str


@dataclasses.dataclass
class SuperPod:
    """Shaped like the controller's SuperPodState for `snapshot.capture`."""

    name: str
    profile: profiles.HardwareProfile | None = PROFILE
    allocator: placement.Allocator | None = None
    observed: dict[str, inventory.ObservedNode] = dataclasses.field(default_factory=dict)
    problems: dict[str, Problem] = dataclasses.field(default_factory=dict)
    quota_usage: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Fleet:
    """Shaped like the controller's Fleet for `snapshot.capture`."""

    superpods: dict[str, SuperPod] = dataclasses.field(default_factory=dict)
    partitions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
