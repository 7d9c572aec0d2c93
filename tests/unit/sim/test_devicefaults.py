"""Fault injection and healing: how each kind moves devices between the device plugin's lists."""

from __future__ import annotations

import json

import pytest
from superpod_sandbox.sim import devicefaults, hardware, layout, plugin_state

A3 = hardware.describe("cloudmatrix-384")
B = hardware.describe("ascend-910b")
NODE = layout.build(A3).nodes[0]
MS = 1795000000000
EMPTY = plugin_state.PluginState()


@pytest.mark.parametrize(
    ("kind", "unhealthy", "network", "recovering", "fault"),
    [
        (
            devicefaults.Kind.UNHEALTHY,
            {"Ascend910-5"},
            set(),
            set(),
            ("CardUnhealthy", "SeparateNPU", "80E18402"),
        ),
        (
            devicefaults.Kind.NETWORK,
            set(),
            {"Ascend910-5"},
            set(),
            ("CardNetworkUnhealthy", "PreSeparateNPU", "81078603"),
        ),
        (
            devicefaults.Kind.RECOVERING,
            {"Ascend910-4", "Ascend910-5"},
            {"Ascend910-4", "Ascend910-5"},
            {"Ascend910-4", "Ascend910-5"},
            ("CardUnhealthy", "RestartNPU", "80E18005"),
        ),
    ],
)
def test_a_device_fault_lists_the_device_and_adds_a_fault_entry_then_heal_reverses_it(
    kind, unhealthy, network, recovering, fault
):
    devices = devicefaults.affected_devices(A3, NODE, kind, "Ascend910-5")
    state = devicefaults.inject(EMPTY, kind, devices, MS)
    assert state.unhealthy == unhealthy
    assert state.network_unhealthy == network
    assert state.recovering == recovering
    assert {(f.fault_type, f.level, f.code) for f in state.faults} == {fault}
    assert {f.device for f in state.faults} == set(devices)
    assert devicefaults.heal(state, kind, devices) == EMPTY
    assert devicefaults.heal(state, None, devices) == EMPTY


def test_an_a3_hot_reset_takes_the_hiam_sibling_die_but_a_910b_reset_only_the_device():
    assert devicefaults.affected_devices(A3, NODE, devicefaults.Kind.RECOVERING, "Ascend910-5") == (
        "Ascend910-4",
        "Ascend910-5",
    )
    node = layout.build(B).nodes[0]
    assert devicefaults.affected_devices(B, node, devicefaults.Kind.RECOVERING, "Ascend910-5") == (
        "Ascend910-5",
    )


def test_without_a_device_the_fault_touches_every_device_of_the_node():
    assert devicefaults.affected_devices(A3, NODE, devicefaults.Kind.UNHEALTHY, None) == NODE.devices


def test_an_unknown_device_is_refused():
    with pytest.raises(devicefaults.FaultError, match="no device Ascend910-16"):
        devicefaults.affected_devices(A3, NODE, devicefaults.Kind.UNHEALTHY, "Ascend910-16")


def test_healing_one_kind_keeps_the_other_fault_of_the_same_device():
    state = devicefaults.inject(EMPTY, devicefaults.Kind.UNHEALTHY, ("Ascend910-1",), MS)
    state = devicefaults.inject(state, devicefaults.Kind.NETWORK, ("Ascend910-1",), MS)
    healed = devicefaults.heal(state, devicefaults.Kind.NETWORK, ("Ascend910-1",))
    assert healed.unhealthy == {"Ascend910-1"}
    assert healed.network_unhealthy == frozenset()
    assert [f.fault_type for f in healed.faults] == ["CardUnhealthy"]


def test_injecting_the_same_fault_twice_keeps_one_entry():
    state = devicefaults.inject(EMPTY, devicefaults.Kind.UNHEALTHY, ("Ascend910-1",), MS)
    assert devicefaults.inject(state, devicefaults.Kind.UNHEALTHY, ("Ascend910-1",), MS + 5).faults == (
        plugin_state.DeviceFault("Ascend910-1", "CardUnhealthy", "SeparateNPU", "80E18402", MS + 5),
    )


def test_a_switch_fault_writes_a_ub_fault_in_mindclusters_switch_info_shape_and_heals():
    state = devicefaults.inject(EMPTY, devicefaults.Kind.SWITCH, (), MS, switch_port=3)
    switch = plugin_state.switch_info(state, 1795000000)
    assert switch["FaultLevel"] == "Separate"
    assert switch["NodeStatus"] == "UnHealthy"
    (raw,) = switch["FaultCode"]
    assert json.loads(raw) == {
        "EventType": 0x00F103B0,
        "AssembledFaultCode": "[0x00f103b0,155904,na,na]",
        "PeerPortDevice": 2,
        "PeerPortId": 3,
        "SwitchChipId": 0,
        "SwitchPortId": 3,
        "Severity": 2,
        "Assertion": 1,
        "AlarmRaisedTime": MS,
    }
    assert switch["FaultTimeAndLevelMap"] == {
        "[0x00f103b0,155904,na,na]_0_3": {"fault_time": MS, "fault_level": "Separate"}
    }
    assert devicefaults.heal(state, devicefaults.Kind.SWITCH, ()) == EMPTY


def test_node_down_is_not_a_device_plugin_fault():
    with pytest.raises(devicefaults.FaultError):
        devicefaults.inject(EMPTY, devicefaults.Kind.NODE_DOWN, (), MS)
