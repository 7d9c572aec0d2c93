"""What `superpod demo` applies, planned by the operator's own code over the Nodes and device-plugin ConfigMaps
the simulator registers for each profile: its SuperPod selects exactly the simulated fleet (by SuperPoD id where
the driver reports one, by the fleet's label where it does not, as on Atlas 800T A2 servers), and its partitions
and training job fit what is placed. One real demo runs end to end in e2e/test_demo.py."""

from __future__ import annotations

import pytest
from superpod.commands import plan
from superpod.placement import result
from superpod_sandbox.commands import demo
from superpod_sandbox.sim import hardware, layout, nodes, plugin_state

NOW = "2026-12-07T03:00:00Z"
UPDATE_TIME = 1_796_612_400


def registered(fleet: layout.Layout) -> list[dict]:
    """The Nodes and device-info ConfigMaps the simulator writes for `fleet`, every device healthy and free."""
    state = plugin_state.PluginState()
    return [
        doc
        for node in fleet.nodes
        for doc in (
            nodes.node_object(fleet, node, NOW),
            plugin_state.configmap(fleet, node, state, UPDATE_TIME, fleet_label=nodes.FLEET_LABEL),
        )
    ]


def planned(profile: str) -> tuple[plan.Report, dict[str, result.Placement | result.Rejection]]:
    """The demo's SuperPod and partitions for `profile`, planned over its simulated fleet and, beside it, a second
    fleet of the same profile (another SuperPoD id) that the SuperPod must leave out."""
    hw = hardware.describe(profile)
    fleet, other = layout.build(hw, superpod_id=0), layout.build(hw, superpod_id=1)
    superpod = demo._superpod(fleet)
    name = superpod["metadata"]["name"]
    partitions = demo._partitions(name, profile)
    for partition in partitions:
        partition["spec"]["superPod"] = name
    report = plan.plan([superpod, *partitions, *registered(fleet), *registered(other)])
    return report, dict(report.decisions)


@pytest.mark.parametrize(
    "profile", ["cloudmatrix-384", "atlas-950", "ascend-910a", "ascend-910b", "nvidia-gb200-nvl72"]
)
def test_the_demo_superpod_selects_exactly_the_simulated_fleet_and_places_every_partition(profile):
    """atlas-950's example names superPodID 1, the simulated fleet is 0: the demo aims it at the fleet."""
    report, decisions = planned(profile)
    fleet = layout.build(hardware.describe(profile))
    assert not report.synthesised  # the nodes came from the simulated objects, not from the profile
    assert sorted(node.name for node in report.allocator.tree.nodes) == sorted(n.name for n in fleet.nodes)
    assert decisions and all(isinstance(d, result.Placement) for d in decisions.values()), decisions


def test_on_servers_without_superpod_ids_the_demo_superpod_selects_its_nodes_by_the_fleet_label():
    """Atlas 800T A2 (ascend-910b) servers report no SuperPoD id: a superPodID would select none of them."""
    fleet = layout.build(hardware.describe("ascend-910b"))
    spec = demo._superpod(fleet)["spec"]
    assert "superPodID" not in spec
    assert spec["nodeSelector"] == {"matchLabels": {nodes.FLEET_LABEL: fleet.fleet}}
    _, decisions = planned("ascend-910b")
    one_node, four_nodes = decisions["team-a/train-8"], decisions["team-a/train-32"]
    assert isinstance(one_node, result.Placement) and isinstance(four_nodes, result.Placement)
    assert (len(one_node.device_ids()), one_node.node_count, one_node.tier_span) == (8, 1, "node")
    assert (len(four_nodes.device_ids()), four_nodes.node_count) == (32, 4)
    assert {len(slot.devices) for slot in four_nodes.slots} == {8}  # blocks of one node's 8 devices


def test_the_demo_fits_the_example_job_to_an_ascend_910b_partition():
    """examples/job-train-64.yaml, fitted to the 4 slots of 8 devices of train-32: 4 workers asking for 8 each."""
    _, decisions = planned("ascend-910b")
    placed = decisions["team-a/train-32"]
    assert isinstance(placed, result.Placement)
    partition = {
        "metadata": {"name": "train-32", "namespace": "team-a"},
        "status": {"allocation": [slot.model_dump(by_alias=True) for slot in placed.api_slots()]},
    }
    job = demo.training_job(partition, "huawei.com/Ascend910")
    assert (job["metadata"]["name"], job["metadata"]["namespace"]) == ("train-32", "team-a")
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    template = job["spec"]["template"]
    assert template["metadata"]["labels"]["superpod.dev/partition"] == "train-32"
    assert [c["resources"]["limits"] for c in template["spec"]["containers"]] == [
        {"huawei.com/Ascend910": "8"}
    ]
