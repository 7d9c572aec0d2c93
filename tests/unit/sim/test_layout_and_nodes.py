"""The simulated fleet's nodes: names, coordinates, addresses, labels and status, per profile."""

from __future__ import annotations

import ipaddress
import json

import pytest
from superpod_sandbox.sim import hardware, layout, nodes

NOW = "2026-11-29T01:00:00Z"


@pytest.mark.parametrize(
    ("profile", "node_count", "devices_per_node", "resource", "nodes_per_rack"),
    [
        ("cloudmatrix-384", 48, 16, "huawei.com/Ascend910", 4),
        ("atlas-950", 1024, 8, "huawei.com/npu", 8),
        ("atlas-960", 1936, 8, "huawei.com/npu", 8),
        ("atlas-950-supercluster", 1024, 8, "huawei.com/npu", 8),
        ("ascend-910a", 16, 8, "huawei.com/Ascend910", 0),
        ("ascend-910b", 16, 8, "huawei.com/Ascend910", 0),
        ("nvidia-gb200-nvl72", 18, 4, "nvidia.com/gpu", 18),
    ],
)
def test_each_profile_gives_one_superpod_or_domain_of_nodes_by_default(
    profile, node_count, devices_per_node, resource, nodes_per_rack
):
    hw = hardware.describe(profile)
    fleet = layout.build(hw)
    assert len(fleet.nodes) == node_count
    assert hw.devices_per_node == devices_per_node
    assert hw.resource == resource
    assert hw.nodes_per_rack == nodes_per_rack
    assert {len(node.devices) for node in fleet.nodes} == {devices_per_node}


def test_an_unknown_profile_is_refused_with_the_known_names():
    with pytest.raises(KeyError, match="cloudmatrix-384"):
        hardware.describe("tpu-v5")


def test_addresses_and_super_device_ids_are_unique_across_a_2000_node_fleet_and_two_superpods():
    hw = hardware.describe("atlas-960")
    fleets = [layout.build(hw, superpod_id=sp) for sp in (0, 1)]
    every = [node for fleet in fleets for node in fleet.nodes]
    assert len({node.name for node in every}) == len(every)
    assert len({node.host_ip for node in every}) == len(every)
    assert len({node.device_ip(d) for node in every for d in range(8)}) == len(every) * 8
    assert len({node.pod_ip(0) for node in every}) == len(every)
    for fleet in fleets:
        ids = {node.super_device_id(d) for node in fleet.nodes for d in range(8)}
        assert len(ids) == 1936 * 8


@pytest.fixture(scope="module")
def supercluster() -> list[layout.SimNode]:
    """Every node of a 64-SuperPoD Atlas 950 SuperCluster."""
    hw = hardware.describe("atlas-950-supercluster")
    return [node for superpod in range(64) for node in layout.build(hw, superpod).nodes]


def test_every_host_and_device_ip_of_a_64_superpod_supercluster_is_distinct(supercluster):
    every = supercluster
    assert len(every) == 65_536
    assert len({node.host_ip for node in every}) == 65_536
    device_ips = {node.device_ip(d) for node in every for d in range(8)}
    assert len(device_ips) == 524_288
    # still addresses: four bytes each, none of them past 255
    assert all(0 <= int(part) <= 255 for ip in device_ips for part in ip.split("."))


def test_every_node_of_a_64_superpod_supercluster_has_a_pod_range_of_its_own(supercluster):
    """A /26 of 100.64.0.0/10 per node, as a cluster's node IPAM gives them: the ranges are distinct (so, being
    equal-sized blocks of one network, they do not overlap), each pod IP lies in its node's range, and no pod IP
    is a host or device IP."""
    every = supercluster
    network = ipaddress.ip_network("100.64.0.0/10")
    ranges = [ipaddress.ip_network(node.pod_cidr) for node in every]
    assert len(set(ranges)) == len(every) == 65_536
    assert {r.prefixlen for r in ranges} == {26}
    last = layout.MAX_POD_SLOTS - 1
    low, high = int(network.network_address), int(network.broadcast_address)
    for node, pods in zip(every, ranges, strict=True):
        start = int(pods.network_address)  # then the gateway (.1), the pods, the broadcast address (.63)
        assert low <= start and start + pods.num_addresses - 1 <= high  # within 100.64.0.0/10
        first, final = (
            int(ipaddress.IPv4Address(node.pod_ip(0))),
            int(ipaddress.IPv4Address(node.pod_ip(last))),
        )
        assert start + 1 < first <= final < start + pods.num_addresses - 1, node.name
        assert not low <= int(ipaddress.IPv4Address(node.host_ip)) <= high
        assert not low <= int(ipaddress.IPv4Address(node.device_ip(0))) <= high
    assert len({node.pod_ip(0) for node in every} | {node.pod_ip(last) for node in every}) == 2 * 65_536
    with pytest.raises(ValueError, match="out of range"):
        every[0].pod_ip(layout.MAX_POD_SLOTS)


def test_a_node_offers_as_many_pods_as_its_pod_range_has_addresses():
    hw = hardware.describe("cloudmatrix-384")
    fleet = layout.build(hw, 2)
    node = fleet.nodes[5]
    obj = nodes.node_object(fleet, node, NOW)
    assert obj["spec"]["podCIDR"] == node.pod_cidr == "100.64.25.64/26"  # ordinal 2 * 48 + 5 = 101
    assert obj["status"]["capacity"]["pods"] == str(layout.MAX_POD_SLOTS) == "61"
    assert node.pod_ip(0) == "100.64.25.66"


def test_the_addresses_of_superpod_32_and_on_go_on_in_the_last_byte():
    hw = hardware.describe("atlas-950-supercluster")
    first, wrapped = layout.build(hw, 0).nodes[5], layout.build(hw, 32).nodes[5]
    assert (first.host_ip, first.device_ip(3)) == ("10.0.5.1", "29.0.5.4")
    assert (wrapped.host_ip, wrapped.device_ip(3)) == ("10.0.5.2", "29.0.5.12")


def test_the_layout_is_a_pure_function_of_profile_superpod_and_index():
    hw = hardware.describe("cloudmatrix-384")
    first, second = layout.build(hw, 3), layout.build(hw, 3)
    assert first == second
    node = first.nodes[7]
    assert (node.name, node.index, node.rack_id, node.host_ip) == ("cloudmatrix-384-3-07", 7, 1, "10.24.7.1")
    assert node.device_ip(0) == "29.24.7.1"


def test_an_a3_node_carries_the_device_plugin_labels_annotations_and_capacity():
    hw = hardware.describe("cloudmatrix-384")
    fleet = layout.build(hw)
    node = nodes.node_object(fleet, fleet.nodes[7], NOW)
    labels = node["metadata"]["labels"]
    assert labels["accelerator"] == "huawei-Ascend910"
    assert labels["accelerator-type"] == "module-a3-16-super-pod"
    assert labels[nodes.SUPERPOD_LABEL] == "0"
    assert labels[nodes.RACK_LABEL] == "1"
    assert labels[nodes.SERVER_LABEL] == "7"
    annotations = node["metadata"]["annotations"]
    assert (annotations["superPodID"], annotations["serverIndex"]) == ("0", "7")
    base = json.loads(annotations["baseDeviceInfos"])
    assert base["Ascend910-1"] == {"IP": "29.0.7.2", "SuperDeviceID": 113}
    assert node["status"]["capacity"]["huawei.com/Ascend910"] == "16"
    assert node["status"]["allocatable"]["huawei.com/Ascend910"] == "16"
    assert nodes.is_ready(node) and not nodes.is_down(node)


@pytest.mark.parametrize(
    ("profile", "accelerator_type", "superpod_annotation"),
    [
        ("ascend-910b", "module-910b-8", "-2"),
        ("ascend-910a", "module", "-2"),
        ("atlas-950", "950-SuperPod-Atlas-8", "0"),
    ],
)
def test_servers_without_a_superpod_report_minus_two_as_the_plugin_does(
    profile, accelerator_type, superpod_annotation
):
    fleet = layout.build(hardware.describe(profile), node_count=2)
    node = nodes.node_object(fleet, fleet.nodes[1], NOW)
    assert node["metadata"]["labels"]["accelerator-type"] == accelerator_type
    assert node["metadata"]["annotations"]["superPodID"] == superpod_annotation
    has_labels = nodes.SUPERPOD_LABEL in node["metadata"]["labels"]
    assert has_labels == (superpod_annotation != "-2")


def test_a_gb200_node_has_the_nvlink_clique_label_and_gpus():
    fleet = layout.build(hardware.describe("nvidia-gb200-nvl72"))
    node = nodes.node_object(fleet, fleet.nodes[17], NOW)
    assert node["metadata"]["labels"][nodes.CLIQUE_LABEL] == f"{nodes.SIM_CLUSTER_UUID}.0"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == "4"
    assert "accelerator" not in node["metadata"]["labels"]


def test_a_down_node_reads_unknown_as_the_node_controller_writes_it():
    node = {"status": {"conditions": nodes.ready_conditions(NOW, ready=False)}}
    assert nodes.is_down(node) and not nodes.is_ready(node)


def test_an_atlas_950_node_also_has_the_rack_annotation():
    fleet = layout.build(hardware.describe("atlas-950"), node_count=20)
    node = nodes.node_object(fleet, fleet.nodes[17], NOW)
    assert node["metadata"]["annotations"]["rackID"] == "2"
    assert node["metadata"]["labels"][nodes.RACK_LABEL] == "2"
    assert node["metadata"]["labels"]["accelerator"] == "huawei-npu"
    assert node["status"]["capacity"]["huawei.com/npu"] == "8"
