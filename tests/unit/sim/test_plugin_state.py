"""The device-info ConfigMaps the simulated device plugin publishes, against the reference shape and the parser."""

from __future__ import annotations

import hashlib
import json

import pytest
from superpod.cluster import deviceinfo
from superpod_sandbox.sim import devicefaults, hardware, layout, nodes, plugin_state

from tests import conftest

REFERENCE = json.loads((conftest.REFERENCE / "deviceinfo-a3.json").read_text())
A3 = hardware.describe("cloudmatrix-384")
FLEET = layout.build(A3)
NODE = FLEET.nodes[7]
T = 1795000000


def _configmap(state: plugin_state.PluginState, in_use=(), fleet=FLEET, node=NODE) -> dict:
    return plugin_state.configmap(fleet, node, state, T, in_use, fleet_label=nodes.FLEET_LABEL)


def _reference_state() -> plugin_state.PluginState:
    state = devicefaults.inject(
        plugin_state.PluginState(), devicefaults.Kind.UNHEALTHY, ("Ascend910-14",), T * 1000
    )
    return devicefaults.inject(state, devicefaults.Kind.NETWORK, ("Ascend910-15",), T * 1000)


def test_the_configmap_has_the_reference_metadata_keys_and_document_shape():
    configmap = _configmap(_reference_state())
    assert configmap["metadata"]["name"] == f"mindx-dl-deviceinfo-{NODE.name}"
    assert configmap["metadata"]["namespace"] == "kube-system"
    assert configmap["metadata"]["labels"]["mx-consumer-cim"] == "true"
    document = json.loads(configmap["data"]["DeviceInfoCfg"])
    reference = json.loads(REFERENCE["data"]["DeviceInfoCfg"])
    assert set(document) == set(reference)
    assert set(document["DeviceInfo"]) == set(reference["DeviceInfo"])
    assert set(document["DeviceInfo"]["DeviceList"]) == set(reference["DeviceInfo"]["DeviceList"])
    assert (document["SuperPodID"], document["ServerIndex"], document["RackID"]) == (0, 7, 1)
    assert document["DeviceInfo"]["UpdateTime"] == T
    reference_fault = json.loads(reference["DeviceInfo"]["DeviceList"]["huawei.com/Ascend910-Fault"])[0]
    fault = json.loads(document["DeviceInfo"]["DeviceList"]["huawei.com/Ascend910-Fault"])[0]
    assert set(reference_fault) <= set(fault)


def test_the_configmap_reads_back_with_the_operator_parser_as_the_reference_does():
    info = deviceinfo.parse(_configmap(_reference_state()), A3.resource)
    expected = deviceinfo.parse(REFERENCE, A3.resource)
    assert info.node == NODE.name
    assert info.unhealthy == expected.unhealthy
    assert info.network_unhealthy == expected.network_unhealthy
    assert [(f.device, f.fault_type, f.fault_handling) for f in info.faults] == [
        (f.device, f.fault_type, f.fault_handling) for f in expected.faults
    ]
    assert (info.super_pod_id, info.server_index, info.rack_id) == (0, 7, 1)
    # a network fault leaves the chip healthy, so the plugin keeps it in the free list
    assert "Ascend910-15" in info.healthy and "Ascend910-14" not in info.healthy


def test_the_free_list_is_in_go_string_order_and_leaves_out_devices_pods_use():
    info = deviceinfo.parse(_configmap(plugin_state.PluginState(), in_use=("Ascend910-3",)), A3.resource)
    assert info.healthy[:3] == ("Ascend910-0", "Ascend910-1", "Ascend910-10")
    assert "Ascend910-3" not in info.healthy
    assert len(info.healthy) == 15


def test_the_check_code_is_the_sha256_of_the_device_info_as_go_marshals_it():
    document = json.loads(_configmap(plugin_state.PluginState())["data"]["DeviceInfoCfg"])
    encoded = json.dumps(document["DeviceInfo"], sort_keys=True, separators=(",", ":")).encode()
    assert document["CheckCode"] == hashlib.sha256(encoded).hexdigest()


@pytest.mark.parametrize(
    ("profile", "has_switch_key", "superpod_id"),
    [
        ("cloudmatrix-384", True, 0),
        ("atlas-950", True, 0),
        ("ascend-910b", False, -2),
        ("ascend-910a", False, -2),
    ],
)
def test_switch_info_is_written_only_where_the_plugin_writes_it(profile, has_switch_key, superpod_id):
    fleet = layout.build(hardware.describe(profile), node_count=2)
    configmap = _configmap(plugin_state.PluginState(), fleet=fleet, node=fleet.nodes[1])
    assert (deviceinfo.SWITCH_KEY in configmap["data"]) == has_switch_key
    assert json.loads(configmap["data"]["DeviceInfoCfg"])["SuperPodID"] == superpod_id
    assert deviceinfo.parse(configmap, fleet.hardware.resource).devices


def test_a_healthy_switch_info_says_healthy_with_no_fault_codes():
    switch = json.loads(_configmap(plugin_state.PluginState())["data"]["SwitchInfoCfg"])
    assert switch == {
        "FaultCode": [],
        "FaultLevel": "",
        "UpdateTime": T,
        "NodeStatus": "Healthy",
        "FaultTimeAndLevelMap": {},
    }


def test_state_round_trips_through_the_configmap():
    state = devicefaults.inject(_reference_state(), devicefaults.Kind.RECOVERING, ("Ascend910-4",), T * 1000)
    state = devicefaults.inject(state, devicefaults.Kind.SWITCH, (), T * 1000, switch_port=3)
    assert plugin_state.read(_configmap(state), A3.resource) == state
    assert plugin_state.update_time(_configmap(state)) == T
