"""A SuperPod's model: spec -> inventory -> tree -> allocator, rebuilt from the watched objects."""

from __future__ import annotations

from typing import Any

from superpod import placement
from superpod.cluster import nodeinfo
from superpod.controller import superpodmodel

from tests.builders import objects

JSON = dict[str, Any]
SPEC = {"profile": "cloudmatrix-384", "reserveNodes": 0}


def inventory(count: int, *, unhealthy: dict[int, tuple[int, ...]] | None = None) -> tuple[JSON, JSON]:
    """Nodes and device-info ConfigMaps by node name, for `count` nodes of 16 dies."""
    nodes, configmaps = {}, {}
    for index in range(count):
        name = f"n{index}"
        nodes[name] = objects.node(name).superpod(0, rack=0, server=index).devices(16).ready().obj()
        configmaps[name] = objects.deviceinfo_configmap(
            name, server_index=index, unhealthy=(unhealthy or {}).get(index, ())
        )
    return nodes, configmaps


def built(count: int = 2, previous: superpodmodel.Model | None = None, **kwargs: Any) -> superpodmodel.Model:
    nodes, configmaps = inventory(count, **kwargs)
    return superpodmodel.build(previous or superpodmodel.configure(SPEC), nodes, configmaps, {})


def place(model: superpodmodel.Model, key: str, npus: int) -> placement.Placement:
    assert model.allocator is not None
    decision = model.allocator.plan_partition(placement.PlacementRequest(npus, devices_per_pod=16))
    assert isinstance(decision, placement.Placement)
    model.allocator.commit(key, decision)
    return decision


def test_an_unusable_spec_says_why_and_has_no_allocator():
    model = superpodmodel.configure({"profile": "no-such-profile"})
    assert model.error is not None and "no-such-profile" in model.error
    nodes, configmaps = inventory(2)
    assert superpodmodel.build(model, nodes, configmaps, {}).allocator is None


def test_a_health_change_keeps_the_allocator_and_its_placements():
    model = built(2)
    placed = place(model, "team/a", 16)
    again = built(2, previous=model, unhealthy={0: (3,)})
    assert again.allocator is model.allocator
    assert again.allocator.placement_of("team/a") == placed
    assert again.allocator.unhealthy_devices("n0") == ("Ascend910-3",)


def test_a_new_node_builds_a_new_tree_that_holds_every_placement():
    model = built(2)
    placed = place(model, "team/a", 16)
    grown = built(3, previous=model)
    assert grown.allocator is not model.allocator
    assert grown.allocator is not None and grown.allocator.placement_of("team/a") is not None
    assert grown.allocator.placement_of("team/a").device_ids() == placed.device_ids()
    assert grown.conflicts == ()


def test_a_node_that_vanishes_while_held_stays_in_the_tree_as_lost():
    model = built(2)
    placed = place(model, "team/a", 16)
    node = placed.slots[0].node
    nodes, configmaps = inventory(2)
    del nodes[node], configmaps[node]
    after = superpodmodel.build(model, nodes, configmaps, {})
    assert not after.observed[node].ready
    assert after.problems[node].reason == "NodeLost"
    assert after.allocator is not None
    assert len(after.allocator.failed_devices(placed)) == 16


def test_a_node_noded_reports_unhealthy_is_out_of_service():
    nodes, configmaps = inventory(2)
    verdict = nodeinfo.NodeHealth(node="n1", status="UnHealthy", faults=("CPU 0: 1 (SeparateFault)",))
    model = superpodmodel.build(superpodmodel.configure(SPEC), nodes, configmaps, {"n1": verdict})
    assert model.problems["n1"].reason == "NodeDUnHealthy"
    assert model.allocator is not None and len(model.allocator.unhealthy_devices("n1")) == 16
    assert (model.node_count, model.ready_nodes) == (2, 2)


def test_a_node_outside_the_selector_is_not_a_member():
    nodes, configmaps = inventory(2)
    model = superpodmodel.build(superpodmodel.configure({**SPEC, "superPodID": 7}), nodes, configmaps, {})
    assert model.observed == {} and model.allocator is None
