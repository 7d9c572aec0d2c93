"""A SuperPod's hardware as the allocator sees it: spec -> inventory -> topology tree -> allocator. Pure.

`build` is the one path from the Kubernetes objects the operator watches (the SuperPod's spec, the Nodes, the
device plugin's `mindx-dl-deviceinfo-<node>` ConfigMaps and NodeD's verdicts) to an allocator. The operator
calls it whenever one of them changes; `superpod plan` and `superpod map` call it on the objects they read, so
they see the same nodes, the same health and the same tree as the operator.

Given the `previous` model, `build` keeps what must outlive a change: the allocator itself when the node set and
device lists are the same (only health changes, in place: a new tree costs milliseconds per thousand nodes),
else a new tree with every placement the old one held restored into it; and a node that vanished while a
partition holds its devices stays in the tree as a node that is down (`NodeLost`), so its partitions are
reported Degraded and repaired, not lost. No I/O, no clock, no logging: conflicts are returned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pydantic

from superpod import placement
from superpod.api import common, reasons
from superpod.api import superpod as api_superpod
from superpod.cluster import inventory, nodeinfo
from superpod.topology import inventory as topology_inventory
from superpod.topology import profiles
from superpod.topology import tree as topology_tree

JSON = common.JSON
Shape = tuple[tuple[str, tuple[str, ...]], ...]  # (node name, its devices) of every node of the tree


@dataclasses.dataclass(frozen=True)
class Model:
    """One SuperPod as the allocator sees it (the allocator is the one mutable part: placements live in it)."""

    spec: api_superpod.SuperPodSpec | None = None
    profile: profiles.HardwareProfile | None = None
    error: str | None = None  # why the spec cannot be used
    observed: Mapping[str, topology_inventory.ObservedNode] = dataclasses.field(default_factory=dict)
    problems: Mapping[str, inventory.NodeProblem] = dataclasses.field(default_factory=dict)
    shape: Shape = ()
    allocator: placement.Allocator | None = None
    # placements of the previous tree that could not be restored into this one
    conflicts: tuple[placement.Conflict, ...] = ()

    @property
    def resource(self) -> str:
        """The extended resource of the SuperPod's devices (for example huawei.com/Ascend910); "" if unusable."""
        return self.profile.resource_name if self.profile else ""

    @property
    def node_count(self) -> int:
        """Member nodes: the ones in the tree and the ones left out with a problem."""
        return len(self.observed) + sum(1 for p in self.problems.values() if p.node not in self.observed)

    @property
    def ready_nodes(self) -> int:
        return sum(1 for node in self.observed.values() if node.ready)


def configure(spec: JSON, previous: Model | None = None) -> Model:
    """The model of a SuperPod whose spec is `spec` (profile resolved), before any inventory.

    An unusable spec gives a model with `error` and no allocator; what `previous` observed is kept for the status.
    """
    base = previous or Model()
    try:
        parsed = api_superpod.SuperPodSpec.model_validate(spec or {})
        profile = profiles.for_spec(parsed)
    except (pydantic.ValidationError, profiles.ProfileError, ValueError) as error:
        return dataclasses.replace(base, spec=None, profile=None, allocator=None, error=one_line(error))
    return dataclasses.replace(base, spec=parsed, profile=profile, error=None)


def observe(
    spec: api_superpod.SuperPodSpec,
    profile: profiles.HardwareProfile,
    nodes: Mapping[str, JSON],
    deviceinfo: Mapping[str, JSON],
    health: Mapping[str, nodeinfo.NodeHealth],
) -> tuple[dict[str, topology_inventory.ObservedNode], dict[str, inventory.NodeProblem]]:
    """The member nodes (by name) as the allocator sees them, and the problems of the ones that have one."""
    observed: dict[str, topology_inventory.ObservedNode] = {}
    problems: dict[str, inventory.NodeProblem] = {}
    for name, node in nodes.items():
        if not inventory.is_member(node, spec):
            continue
        seen, problem = inventory.observe(
            node, deviceinfo.get(name), profile, profile.resource_name, health.get(name)
        )
        if seen is not None:
            observed[name] = seen
        if problem is not None:
            problems[name] = problem
    return observed, problems


def build(
    model: Model,
    nodes: Mapping[str, JSON],
    deviceinfo: Mapping[str, JSON],
    health: Mapping[str, nodeinfo.NodeHealth],
) -> Model:
    """`model` (from `configure`, or the last `build`) with its inventory and allocator brought up to date.

    `nodes` are Node objects by name, `deviceinfo` the device plugin's ConfigMaps by node name, `health`
    NodeD's verdicts by node name (empty where NodeD does not run).
    """
    if model.spec is None or model.profile is None:
        return model
    observed, problems = observe(model.spec, model.profile, nodes, deviceinfo, health)
    for name in held_nodes(model.allocator) - observed.keys():
        if name in model.observed:
            observed[name] = dataclasses.replace(model.observed[name], ready=False)
            problems.setdefault(
                name,
                inventory.NodeProblem(
                    name,
                    reasons.NodeProblemReason.NODE_LOST,
                    f"node {name} is gone; its devices are out of service",
                ),
            )
    return with_inventory(model, observed, problems)


def with_inventory(
    model: Model,
    observed: Mapping[str, topology_inventory.ObservedNode],
    problems: Mapping[str, inventory.NodeProblem],
) -> Model:
    """`model` with these nodes: its allocator kept when the nodes and their devices are the same (health
    updated in place), else a new tree and allocator holding every placement the old one held."""
    assert model.spec is not None and model.profile is not None
    shape = tuple(sorted((name, node.devices) for name, node in observed.items()))
    updated = dataclasses.replace(model, observed=dict(observed), problems=dict(problems), conflicts=())
    previous = model.allocator
    if previous is not None and shape == model.shape:
        for name, node in observed.items():
            previous.set_health(name, node.unhealthy, ready=node.ready)
        return updated
    if not observed:
        return dataclasses.replace(updated, shape=shape, allocator=None)
    tree = topology_tree.build(model.profile, observed.values(), model.spec.reserve_nodes)
    allocator = placement.Allocator(tree)
    conflicts = []
    for key, decision in (previous.partitions if previous is not None else {}).items():
        outcome = allocator.restore(key, list(decision.slots), whole_nodes=decision.whole_nodes)
        if isinstance(outcome, placement.Conflict):
            conflicts.append(outcome)
    return dataclasses.replace(updated, shape=shape, allocator=allocator, conflicts=tuple(conflicts))


def held_nodes(allocator: placement.Allocator | None) -> set[str]:
    """Nodes on which some partition holds devices."""
    if allocator is None:
        return set()
    return {slot.node for decision in allocator.partitions.values() for slot in decision.slots}


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())
