"""Faults and heals on the sandbox, as `superpod sim fault|heal` write them, seen in the ConfigMaps and Nodes."""

from __future__ import annotations

import json

import pytest
from superpod.cluster import deviceinfo
from superpod_sandbox.sim import control, devicefaults, nodes, plugin_state

from tests.integration.sim.conftest import eventually, pod

RESOURCE = "huawei.com/Ascend910"


async def _info(api, node: str) -> deviceinfo.DeviceInfo:
    configmap = await api.get(f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}")
    return deviceinfo.parse(configmap, RESOURCE)


@pytest.mark.parametrize(
    ("kind", "lists", "fault"),
    [
        (
            devicefaults.Kind.UNHEALTHY,
            {"unhealthy": {"Ascend910-6"}},
            ("Ascend910-6", "CardUnhealthy", "SeparateNPU"),
        ),
        (
            devicefaults.Kind.NETWORK,
            {"network_unhealthy": {"Ascend910-6"}},
            ("Ascend910-6", "CardNetworkUnhealthy", "PreSeparateNPU"),
        ),
        (
            devicefaults.Kind.RECOVERING,
            {"unhealthy": {"Ascend910-6", "Ascend910-7"}, "recovering": {"Ascend910-6", "Ascend910-7"}},
            ("Ascend910-6", "CardUnhealthy", "RestartNPU"),
        ),
    ],
)
async def test_a_device_fault_and_its_heal_show_in_the_configmap(a3, api, kind, lists, fault):
    node = a3.node_names[1]
    await control.inject(api, node, kind, "Ascend910-6")
    info = await _info(api, node)
    for attribute, expected in lists.items():
        assert getattr(info, attribute) == expected
    assert fault in {(f.device, f.fault_type, f.fault_handling) for f in info.faults}
    assert not set(lists.get("unhealthy", set())) & set(info.healthy)
    await control.heal(api, node, kind, "Ascend910-6")
    info = await _info(api, node)
    assert not (info.unhealthy or info.network_unhealthy or info.recovering or info.faults)
    assert len(info.healthy) == 16


async def test_a_fault_survives_the_running_simulators_refreshes(a3, api):
    node = a3.node_names[0]
    await control.inject(api, node, devicefaults.Kind.UNHEALTHY, "Ascend910-3")
    configmap_path = f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}"
    first = plugin_state.update_time(await api.get(configmap_path))
    await eventually(lambda: _later(api, configmap_path, first))
    assert (await _info(api, node)).unhealthy == {"Ascend910-3"}


async def _later(api, path: str, than: int) -> bool:
    return plugin_state.update_time(await api.get(path)) > than


async def test_a_ub_switch_fault_writes_switch_info_and_heals(a3, api):
    node = a3.node_names[2]
    await control.inject(api, node, devicefaults.Kind.SWITCH, switch_port=5)
    configmap = await api.get(f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}")
    switch = json.loads(configmap["data"][deviceinfo.SWITCH_KEY])
    assert (switch["FaultLevel"], switch["NodeStatus"]) == ("Separate", "UnHealthy")
    assert json.loads(switch["FaultCode"][0])["SwitchPortId"] == 5
    await control.heal(api, node, devicefaults.Kind.SWITCH)
    configmap = await api.get(f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}")
    assert json.loads(configmap["data"][deviceinfo.SWITCH_KEY])["NodeStatus"] == "Healthy"


async def test_node_down_stops_heartbeats_and_the_device_plugin_and_heal_brings_it_back(a3, api):
    node = a3.node_names[3]
    await api.create("/api/v1/namespaces/train/pods", pod("on-down", 1, node_name=node))
    await eventually(lambda: _phase(api, "on-down", "Running"))
    await control.inject(api, node, devicefaults.Kind.NODE_DOWN)
    down = await api.get(f"/api/v1/nodes/{node}")
    assert nodes.is_down(down)
    assert {t["key"] for t in down["spec"]["taints"]} == {nodes.UNREACHABLE_TAINT}
    ready = {
        c["type"]: c["status"]
        for c in (await api.get("/api/v1/namespaces/train/pods/on-down"))["status"]["conditions"]
    }
    assert ready["Ready"] == "False"
    configmap_path = f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}"
    frozen_update = plugin_state.update_time(await api.get(configmap_path))
    frozen_node = await api.get(f"/api/v1/nodes/{node}")
    # another node's heartbeat moving proves a full refresh round has passed
    other = a3.node_names[0]
    other_first = plugin_state.update_time(
        await api.get(f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(other)}")
    )
    await eventually(
        lambda: _later(
            api,
            f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(other)}",
            other_first + 1,
        )
    )
    assert plugin_state.update_time(await api.get(configmap_path)) == frozen_update
    assert (await api.get(f"/api/v1/nodes/{node}"))["status"] == frozen_node["status"]
    await control.heal(api, node)
    healed = await api.get(f"/api/v1/nodes/{node}")
    assert nodes.is_ready(healed) and not healed["spec"].get("taints")
    await eventually(lambda: _later(api, configmap_path, frozen_update))


async def _phase(api, name: str, phase: str) -> bool:
    return (await api.get(f"/api/v1/namespaces/train/pods/{name}"))["status"].get("phase") == phase


async def test_faults_refuse_what_the_hardware_lacks(sandbox, api):
    from superpod_sandbox.sim import simulator

    async with simulator.Fleet("ascend-910b", kubeconfig=sandbox.kubeconfig, nodes=1):
        with pytest.raises(devicefaults.FaultError, match="no UB switches"):
            await control.inject(api, "ascend-910b-0-0", devicefaults.Kind.SWITCH)
        with pytest.raises(devicefaults.FaultError, match="no device Ascend910-8"):
            await control.inject(api, "ascend-910b-0-0", devicefaults.Kind.UNHEALTHY, "Ascend910-8")
    with pytest.raises(devicefaults.FaultError, match="does not exist"):
        await control.inject(api, "nowhere", devicefaults.Kind.UNHEALTHY)


async def test_healing_a_die_without_a_kind_also_returns_its_reset_sibling(a3, api):
    node = a3.node_names[2]
    await control.inject(api, node, devicefaults.Kind.RECOVERING, "Ascend910-9")
    await control.inject(api, node, devicefaults.Kind.NETWORK, "Ascend910-9")
    assert (await _info(api, node)).recovering == {"Ascend910-8", "Ascend910-9"}
    message = await control.heal(api, node, None, "Ascend910-9")
    assert message == f"node {node}: all faults cleared on Ascend910-8,Ascend910-9"
    info = await _info(api, node)
    assert not (info.unhealthy or info.network_unhealthy or info.recovering or info.faults)
