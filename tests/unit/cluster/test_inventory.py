"""A node as the allocator sees it: membership, devices, health and coordinates from the device plugin's data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from superpod.api import superpod as api_superpod
from superpod.cluster import inventory
from superpod.topology import profiles

from tests.builders import objects

CM384 = profiles.BUILTIN["cloudmatrix-384"]
RESOURCE = CM384.resource_name


def _spec(**fields):
    return api_superpod.SuperPodSpec.model_validate({"profile": "cloudmatrix-384", **fields})


@pytest.mark.parametrize(
    ("case", "spec", "expected"),
    [
        ("the superPodID label matches", _spec(superPodID=0), True),
        ("another SuperPoD's node is not a member", _spec(superPodID=1), False),
        ("a selector that matches", _spec(nodeSelector={"matchLabels": {"pool": "a"}}), True),
        (
            "superPodID and selector are ANDed",
            _spec(superPodID=0, nodeSelector={"matchLabels": {"pool": "b"}}),
            False,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_membership(case, spec, expected):
    node = objects.node("n1").superpod(0).label("pool", "a").obj()
    assert inventory.is_member(node, spec) is expected


_LABELLED = st.lists(
    st.tuples(st.sampled_from([None, "0", "1", "2", "01"]), st.sampled_from([None, "a", "b"])), max_size=30
)


@given(
    labelled=_LABELLED,
    superpod_id=st.sampled_from([None, 0, 1, 2]),
    pool=st.sampled_from([None, "a", "b"]),
)
def test_the_grouped_candidates_hold_every_member_and_only_nodes_is_member_could_take(
    labelled: list[tuple[str | None, str | None]], superpod_id: int | None, pool: str | None
) -> None:
    """A rebuild of many SuperPods reads each node once (`by_superpod_id`) and looks for members among a
    SuperPod's candidates only: the members found are exactly those of a scan of every node."""
    nodes = {}
    for index, (label, pool_of_node) in enumerate(labelled):
        node = objects.node(f"n{index}")
        if label is not None:
            node = node.label(inventory.SUPERPOD_LABEL, label)
        if pool_of_node is not None:
            node = node.label("pool", pool_of_node)
        nodes[f"n{index}"] = node.obj()
    fields: dict[str, object] = {}
    if superpod_id is not None:
        fields["superPodID"] = superpod_id
    if pool is not None:
        fields["nodeSelector"] = {"matchLabels": {"pool": pool}}
    spec = _spec(**fields)
    candidates = inventory.member_candidates(spec, nodes, inventory.by_superpod_id(nodes))
    assert {n for n, node in candidates.items() if inventory.is_member(node, spec)} == {
        n for n, node in nodes.items() if inventory.is_member(node, spec)
    }
    if superpod_id is not None:
        assert set(candidates) == {
            n
            for n, node in nodes.items()
            if node["metadata"].get("labels", {}).get(inventory.SUPERPOD_LABEL) == str(superpod_id)
        }


def test_a_healthy_node_with_device_info():
    node = objects.node("n1").superpod(0, rack=2, server=5).devices(16).ready().obj()
    configmap = objects.deviceinfo_configmap("n1", superpod_id=0, server_index=5, rack_id=2)
    observed, problem = inventory.observe(node, configmap, CM384, RESOURCE)
    assert problem is None
    assert observed is not None
    assert observed.devices == CM384.device_names()
    assert observed.unhealthy == frozenset()
    assert (observed.superpod_index, observed.rack, observed.server_index, observed.ready) == (0, 2, 5, True)


def test_unhealthy_network_recovering_and_separated_devices_leave_the_pool_but_reported_faults_do_not():
    faults = [
        {"npu_name": "Ascend910-4", "fault_handling": "SeparateNPU", "fault_type": "CardUnhealthy"},
        {"npu_name": "Ascend910-5", "fault_handling": "NotHandleFault", "fault_type": "CardUnhealthy"},
        {"npu_name": "Ascend910-6", "fault_handling": "RestartRequest", "fault_type": "CardUnhealthy"},
    ]
    configmap = objects.deviceinfo_configmap(
        "n1", unhealthy=(1,), network_unhealthy=(2,), recovering=(3,), faults=faults
    )
    observed, _ = inventory.observe(objects.node("n1").ready().obj(), configmap, CM384, RESOURCE)
    assert observed is not None
    assert observed.unhealthy == {"Ascend910-1", "Ascend910-2", "Ascend910-3", "Ascend910-4"}


def test_a_malformed_configmap_leaves_the_node_out_with_a_problem_naming_it():
    configmap = objects.deviceinfo_configmap("n1")
    configmap["data"]["DeviceInfoCfg"] = "{not json"
    observed, problem = inventory.observe(objects.node("n1").ready().obj(), configmap, CM384, RESOURCE)
    assert observed is None
    assert problem is not None
    assert problem.reason == "DeviceInfoInvalid"
    assert "mindx-dl-deviceinfo-n1" in problem.message


def test_without_device_info_the_count_comes_from_allocatable():
    node = objects.node("gpu-1").devices(4, "nvidia.com/gpu").ready().obj()
    gb200 = profiles.BUILTIN["nvidia-gb200-nvl72"]
    observed, problem = inventory.observe(node, None, gb200, "nvidia.com/gpu")
    assert problem is None
    assert observed is not None
    assert len(observed.devices) == 4


def test_a_gb200_node_takes_its_rack_from_its_nvlink_clique():
    clique = "f8b5c5a2-1d3e-4c1b-9a59-1f0e2d3c4b5a.32766"
    node = (
        objects.node("gpu-1").devices(4, "nvidia.com/gpu").label(inventory.CLIQUE_LABEL, clique).ready().obj()
    )
    observed, _ = inventory.observe(node, None, profiles.BUILTIN["nvidia-gb200-nvl72"], "nvidia.com/gpu")
    assert observed is not None
    assert observed.rack_label == clique


def test_a_node_that_is_not_ready_is_reported():
    node = objects.node("n1").ready("Unknown").obj()
    observed, problem = inventory.observe(node, objects.deviceinfo_configmap("n1"), CM384, RESOURCE)
    assert observed is not None and observed.ready is False
    assert problem is not None and problem.reason == "NodeNotReady"


def _with_switch(configmap: dict, node_status: str, level: str) -> dict:
    import json

    fault = {"AssembledFaultCode": "[0x00f103b0,155904,na,na]", "SwitchChipId": 0, "SwitchPortId": 3}
    configmap["data"]["SwitchInfoCfg"] = json.dumps(
        {"FaultCode": [json.dumps(fault)], "FaultLevel": level, "UpdateTime": 1, "NodeStatus": node_status}
    )
    return configmap


def test_a_separating_ub_switch_fault_takes_the_node_out_of_service():
    configmap = _with_switch(objects.deviceinfo_configmap("n1"), "UnHealthy", "Separate")
    observed, problem = inventory.observe(objects.node("n1").ready().obj(), configmap, CM384, RESOURCE)
    assert observed is not None and observed.unhealthy == set(observed.devices)
    assert problem is not None and problem.reason == "UBSwitchFault"
    assert "[0x00f103b0,155904,na,na]" in problem.message


def test_a_subhealthy_ub_switch_is_reported_but_keeps_the_devices():
    configmap = _with_switch(objects.deviceinfo_configmap("n1"), "SubHealthy", "SubHealthFault")
    observed, problem = inventory.observe(objects.node("n1").ready().obj(), configmap, CM384, RESOURCE)
    assert observed is not None and observed.unhealthy == frozenset()
    assert problem is not None and problem.reason == "UBSwitchDegraded"


def _nodeinfo(node: str, status: str) -> dict:
    import json

    document = {
        "NodeInfo": {
            "FaultDevList": [
                {"DeviceType": "CPU", "DeviceId": 0, "FaultCode": ["00000011"], "FaultLevel": "SeparateFault"}
            ],
            "NodeStatus": status,
        },
        "CheckCode": "x",
    }
    return {
        "metadata": {"name": f"mindx-dl-nodeinfo-{node}", "namespace": "mindx-dl"},
        "data": {"NodeInfo": json.dumps(document)},
    }


@pytest.mark.parametrize(
    ("case", "status", "out"),
    [
        ("NodeD's UnHealthy verdict empties the node", "UnHealthy", True),
        ("NodeD's PreSeparate verdict keeps new work off the node", "PreSeparate", True),
        ("a Healthy verdict changes nothing", "Healthy", False),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_noded_verdicts(case, status, out):
    from superpod.cluster import nodeinfo

    health = nodeinfo.parse(_nodeinfo("n1", status))
    assert health is not None and health.status == status
    observed, problem = inventory.observe(
        objects.node("n1").ready().obj(), objects.deviceinfo_configmap("n1"), CM384, RESOURCE, health
    )
    assert observed is not None
    assert (observed.unhealthy == set(observed.devices)) is out
    assert (problem is not None and "CPU 0: 00000011 (SeparateFault)" in problem.message) is out


def test_an_unreadable_noded_configmap_is_ignored():
    from superpod.cluster import nodeinfo

    assert (
        nodeinfo.parse({"metadata": {"name": "mindx-dl-nodeinfo-n1"}, "data": {"NodeInfo": "{oops"}}) is None
    )


def test_devices_in_use_missing_from_the_free_list_still_belong_to_the_node():
    import json

    configmap = objects.deviceinfo_configmap("n1")
    document = json.loads(configmap["data"]["DeviceInfoCfg"])
    # the plugin lists only free healthy devices: 10..15 are held by pods, 3 is unhealthy
    document["DeviceInfo"]["DeviceList"][RESOURCE] = ",".join(
        f"Ascend910-{i}" for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)
    )
    document["DeviceInfo"]["DeviceList"][f"{RESOURCE}-Unhealthy"] = "Ascend910-3"
    configmap["data"]["DeviceInfoCfg"] = json.dumps(document)
    node = objects.node("n1").devices(16).ready().obj()
    observed, _ = inventory.observe(node, configmap, CM384, RESOURCE)
    assert observed is not None
    assert observed.devices == CM384.device_names()
    assert observed.unhealthy == {"Ascend910-3"}


def _listing(configmap: dict, **lists: str) -> dict:
    """The ConfigMap with DeviceList entries replaced: `healthy`, `Unhealthy`, `Fault`, ... as the plugin writes."""
    import json

    document = json.loads(configmap["data"]["DeviceInfoCfg"])
    for key, value in lists.items():
        entry = RESOURCE if key == "healthy" else f"{RESOURCE}-{key}"
        document["DeviceInfo"]["DeviceList"][entry] = value
    configmap["data"]["DeviceInfoCfg"] = json.dumps(document)
    return configmap


_A3_HEALTHY = ",".join(f"Ascend910-{i}" for i in range(16))


@pytest.mark.parametrize(
    ("configmap", "capacity", "named"),
    [
        pytest.param(
            _listing(objects.deviceinfo_configmap("n1"), healthy=_A3_HEALTHY + ",Ascend910-99"),
            16,
            ["'Ascend910-99'"],
            id="a device number past the node's 16 dies",
        ),
        pytest.param(
            _listing(objects.deviceinfo_configmap("n1"), healthy="bogus," + _A3_HEALTHY),
            16,
            ["'bogus'"],
            id="a name without a number",
        ),
        pytest.param(
            _listing(objects.deviceinfo_configmap("n1"), Unhealthy="Ascend910-16,npu-3"),
            16,
            ["'Ascend910-16'", "'npu-3'"],
            id="unhealthy devices the node cannot have",
        ),
        pytest.param(
            _listing(
                objects.deviceinfo_configmap("n1"), healthy=_A3_HEALTHY.replace("Ascend910-7", "Ascend910-07")
            ),
            16,
            ["'Ascend910-07'"],
            id="a number spelt with a leading zero",
        ),
        pytest.param(
            _listing(
                objects.deviceinfo_configmap("n1"),
                Fault='[{"npu_name": "Ascend910-42", "fault_handling": "SeparateNPU"}]',
            ),
            16,
            ["'Ascend910-42'"],
            id="a fault on a device the node cannot have",
        ),
        pytest.param(
            _listing(objects.deviceinfo_configmap("n1"), healthy=",".join(f"x-{i}" for i in range(12))),
            16,
            ["'x-0'", "'x-9'", "and 2 more"],
            id="many foreign names, the first ten quoted",
        ),
        pytest.param(
            objects.deviceinfo_configmap("n1"), 20, ["advertises 20", "more than the 16"], id="20 dies"
        ),
    ],
)
def test_devices_the_profile_cannot_have_leave_the_node_out_with_their_names(configmap, capacity, named):
    node = objects.node("n1").devices(capacity).ready().obj()
    observed, problem = inventory.observe(node, configmap, CM384, RESOURCE)
    assert observed is None
    assert problem is not None and problem.reason == "DeviceInfoInvalid"
    for text in named:
        assert text in problem.message


def test_a_node_advertising_more_devices_than_its_profile_without_device_info_is_left_out():
    node = objects.node("gpu-1").devices(8, "nvidia.com/gpu").ready().obj()
    gb200 = profiles.BUILTIN["nvidia-gb200-nvl72"]
    observed, problem = inventory.observe(node, None, gb200, "nvidia.com/gpu")
    assert observed is None
    assert problem is not None and problem.reason == "DeviceInfoInvalid"
    assert (
        "advertises 8 nvidia.com/gpu, more than the 4 devices a nvidia-gb200-nvl72 node has"
        in problem.message
    )


def test_a_node_whose_plugin_lists_fewer_devices_than_the_profile_is_used_as_listed():
    configmap = _listing(objects.deviceinfo_configmap("n1"), healthy="Ascend910-0,Ascend910-1,Ascend910-3")
    observed, problem = inventory.observe(objects.node("n1").ready().obj(), configmap, CM384, RESOURCE)
    assert problem is None
    assert observed is not None and observed.devices == ("Ascend910-0", "Ascend910-1", "Ascend910-3")
