"""`sim up` on the sandbox: Nodes and device-info ConfigMaps exist in the device plugin's shape and stay fresh."""

from __future__ import annotations

import json

from superpod.cluster import deviceinfo
from superpod_sandbox.sim import control, devicefaults, nodes, plugin_state, simulator

from tests.integration.sim.conftest import FAST, eventually


async def _configmap(api, node: str) -> dict:
    return await api.get(f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}")


def _heartbeat(node: dict) -> str:
    return next(c["lastHeartbeatTime"] for c in node["status"]["conditions"] if c["type"] == "Ready")


async def test_every_node_is_registered_ready_with_labels_capacity_and_a_parsable_configmap(a3, api):
    listed = await api.list("/api/v1/nodes", labelSelector=f"{nodes.FLEET_LABEL}=cloudmatrix-384-0")
    assert sorted(node["metadata"]["name"] for node in listed) == list(a3.node_names)
    for node in listed:
        assert nodes.is_ready(node)
        assert node["metadata"]["labels"]["accelerator-type"] == "module-a3-16-super-pod"
        assert node["status"]["allocatable"]["huawei.com/Ascend910"] == "16"
        info = deviceinfo.parse(await _configmap(api, node["metadata"]["name"]), "huawei.com/Ascend910")
        assert len(info.healthy) == 16 and not info.unhealthy and not info.faults
        assert info.server_index == int(node["metadata"]["annotations"]["serverIndex"])


async def test_configmaps_and_heartbeats_are_refreshed(a3, api):
    name = a3.node_names[2]
    first_update = plugin_state.update_time(await _configmap(api, name))
    first_beat = _heartbeat(await api.get(f"/api/v1/nodes/{name}"))

    async def moved():
        configmap = await _configmap(api, name)
        node = await api.get(f"/api/v1/nodes/{name}")
        return plugin_state.update_time(configmap) > first_update and _heartbeat(node) > first_beat

    await eventually(moved, timeout=5)
    document = json.loads((await _configmap(api, name))["data"]["DeviceInfoCfg"])
    assert document["CheckCode"] == plugin_state.check_code(document["DeviceInfo"])


async def test_a_restarted_fleet_adopts_its_objects_and_keeps_their_faults_and_down_removes_them(
    sandbox, api
):
    async with simulator.Fleet("ascend-910b", kubeconfig=sandbox.kubeconfig, nodes=2, options=FAST) as first:
        name = first.node_names[1]
        await control.inject(api, name, devicefaults.Kind.UNHEALTHY, "Ascend910-2")
    async with simulator.Fleet("ascend-910b", kubeconfig=sandbox.kubeconfig, nodes=2, options=FAST) as second:
        info = deviceinfo.parse(await _configmap(api, name), "huawei.com/Ascend910")
        assert info.unhealthy == {"Ascend910-2"}
        assert await second.remove() == {"pods": 0, "configmaps": 2, "nodes": 2}
    assert await api.list("/api/v1/nodes") == []
