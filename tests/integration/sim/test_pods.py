"""The kubelet/device-plugin stand-in on the sandbox: binding, Allocate, annotations, refusals and release."""

from __future__ import annotations

import asyncio
import dataclasses

from superpod.cluster import deviceinfo
from superpod.ranktable import configuration
from superpod_sandbox.sim import control, devicefaults, layout, nodes, plugin_state, podstatus, simulator

from tests.integration.sim.conftest import FAST, eventually, pod

PODS = "/api/v1/namespaces/train/pods"


async def _running(api, name: str) -> dict | None:
    current = await api.get(f"{PODS}/{name}")
    return current if current["status"].get("phase") == "Running" else None


async def _events(api, name: str) -> list[dict]:
    return await api.list("/api/v1/namespaces/train/events", fieldSelector=f"involvedObject.name={name}")


async def test_a_pending_pod_is_bound_allocated_annotated_and_started_as_the_device_plugin_would(a3, api):
    await api.create(PODS, pod("worker-0", 4))
    started = await eventually(lambda: _running(api, "worker-0"))
    node_name = started["spec"]["nodeName"]
    assert node_name in a3.node_names
    node = a3.layout.node(node_name)
    annotations = started["metadata"]["annotations"]
    devices = annotations[podstatus.REAL_ANNOTATION].split(",")
    assert (
        len(devices) == 4
        and annotations[podstatus.KUBELET_DEVICES_ANNOTATION] == annotations[podstatus.REAL_ANNOTATION]
    )
    parsed = configuration.parse_ascend_configuration(annotations[configuration.ANNOTATION])
    assert parsed.pod_name == "worker-0" and parsed.host_ip == node.host_ip
    assert sorted(d.device_id for d in parsed.devices) == sorted(d.split("-")[1] for d in devices)
    assert parsed.super_pod_id == 0 and parsed.server_index == str(node.index)
    assert started["status"]["hostIP"] == node.host_ip and started["status"]["podIP"] == node.pod_ip(0)

    async def devices_left_the_free_list():
        configmap = await api.get(
            f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node_name)}"
        )
        healthy = deviceinfo.parse(configmap, "huawei.com/Ascend910").healthy
        return not set(devices) & set(healthy) and len(healthy) == 12

    await eventually(devices_left_the_free_list)


async def test_binding_honours_node_selector_affinity_and_pinned_devices(a3, api):
    third = a3.node_names[3]
    await api.create(PODS, pod("by-selector", 2, nodeSelector={nodes.SERVER_LABEL: "2"}))
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [third]}]}
                ]
            }
        }
    }
    await api.create(
        PODS,
        pod(
            "by-affinity",
            2,
            annotations={"huawei.com/Ascend910": "Ascend910-9,Ascend910-8"},
            affinity=affinity,
        ),
    )
    by_selector = await eventually(lambda: _running(api, "by-selector"))
    by_affinity = await eventually(lambda: _running(api, "by-affinity"))
    assert by_selector["spec"]["nodeName"] == a3.node_names[2]
    assert by_affinity["spec"]["nodeName"] == third
    assert by_affinity["metadata"]["annotations"][podstatus.REAL_ANNOTATION] == "Ascend910-8,Ascend910-9"


async def test_a_device_in_use_is_refused_with_an_event_until_its_holder_goes(a3, api):
    node = a3.node_names[0]
    pinned = {"huawei.com/Ascend910": "Ascend910-0,Ascend910-1"}
    await api.create(PODS, pod("holder", 2, annotations=pinned, node_name=node))
    await eventually(lambda: _running(api, "holder"))
    await api.create(PODS, pod("second", 2, annotations=pinned, node_name=node))

    async def refused():
        return [e for e in await _events(api, "second") if e["reason"] == "UnexpectedAdmissionError"]

    (event,) = await eventually(refused)
    assert "Ascend910-0 is already in use by train/holder" in event["message"]
    assert (await api.get(f"{PODS}/second"))["status"].get("phase", "Pending") == "Pending"
    await api.delete(f"{PODS}/holder")
    started = await eventually(lambda: _running(api, "second"))
    assert started["metadata"]["annotations"][podstatus.REAL_ANNOTATION] == "Ascend910-0,Ascend910-1"


async def test_an_unhealthy_device_is_refused_and_a_finished_pod_frees_its_devices(a3, api):
    node = a3.node_names[1]
    await control.inject(api, node, devicefaults.Kind.UNHEALTHY, "Ascend910-5")
    await api.create(
        PODS, pod("on-bad", 1, annotations={"huawei.com/Ascend910": "Ascend910-5"}, node_name=node)
    )

    async def refused():
        return [e for e in await _events(api, "on-bad") if "Ascend910-5 is unhealthy" in e["message"]]

    await eventually(refused)
    await control.heal(api, node, devicefaults.Kind.UNHEALTHY, "Ascend910-5")
    await eventually(lambda: _running(api, "on-bad"))
    await api.patch(f"{PODS}/on-bad/status", {"status": {"phase": "Succeeded"}})
    await api.create(
        PODS, pod("after", 1, annotations={"huawei.com/Ascend910": "Ascend910-5"}, node_name=node)
    )
    await eventually(lambda: _running(api, "after"))


async def test_a_pod_that_fits_nowhere_gets_a_failed_scheduling_event(a3, api):
    await api.create(PODS, pod("too-big", 32))

    async def failed():
        return [e for e in await _events(api, "too-big") if e["reason"] == "FailedScheduling"]

    (event,) = await eventually(failed)
    assert event["message"] == "0/4 nodes are available: 4 Insufficient huawei.com/Ascend910."


async def test_gb200_pods_get_distinct_gpus_recorded_on_the_pod(sandbox, api):
    async with simulator.Fleet(
        "nvidia-gb200-nvl72", kubeconfig=sandbox.kubeconfig, nodes=1, options=FAST
    ) as gb200:
        for index in range(3):
            body = pod(f"gpu-{index}", 0, node_name=gb200.node_names[0])
            body["spec"]["containers"][0]["resources"] = {
                "limits": {"nvidia.com/gpu": "1" if index < 2 else "3"}
            }
            await api.create(PODS, body)
        first = await eventually(lambda: _running(api, "gpu-0"))
        second = await eventually(lambda: _running(api, "gpu-1"))
        taken = {podstatus.used_devices(first), podstatus.used_devices(second)}
        assert len(taken) == 2 and all(len(devices) == 1 for devices in taken)
        assert "huawei.com/AscendReal" not in first["metadata"]["annotations"]

        async def refused():
            return [
                e for e in await _events(api, "gpu-2") if "requested 3 nvidia.com/gpu, 2 free" in e["message"]
            ]

        await eventually(refused)


async def test_the_compatibility_mode_keeps_used_devices_in_the_free_list(sandbox, api):
    options = dataclasses.replace(FAST, free_list_excludes_used=False)
    async with simulator.Fleet("ascend-910b", kubeconfig=sandbox.kubeconfig, nodes=1, options=options) as b:
        node = b.node_names[0]
        path = f"/api/v1/namespaces/kube-system/configmaps/{deviceinfo.configmap_name(node)}"
        await api.create(PODS, pod("busy", 8, node_name=node))
        await eventually(lambda: _running(api, "busy"))

        async def listed(count: int, after: int = 0):
            configmap = await api.get(path)
            fresh = plugin_state.update_time(configmap) > after
            return fresh and len(deviceinfo.parse(configmap, "huawei.com/Ascend910").healthy) == count

        await eventually(lambda: listed(8))
        await b.inject(node, "unhealthy", "Ascend910-7")
        assert await listed(7)
        written = plugin_state.update_time(await api.get(path))
        await eventually(lambda: listed(7, after=written))  # the running simulator's refresh keeps the mode
        assert await b.heal(node) == f"node {node}: all faults cleared on every device"


async def test_a_pod_allocated_before_a_restart_starts_with_the_devices_it_already_has(a3, api):
    node = a3.node_names[2]
    annotations = {podstatus.REAL_ANNOTATION: "Ascend910-10,Ascend910-11"}
    await api.create(PODS, pod("survivor", 2, annotations=annotations, node_name=node))
    started = await eventually(lambda: _running(api, "survivor"))
    assert started["metadata"]["annotations"][podstatus.REAL_ANNOTATION] == "Ascend910-10,Ascend910-11"
    assert not [e for e in await _events(api, "survivor") if e["reason"] == "UnexpectedAdmissionError"]


async def test_each_pod_is_started_once_even_when_many_arrive_together(sandbox, a3, api):
    for index in range(12):
        await api.create(PODS, pod(f"burst-{index}", 2))
    for index in range(12):
        await eventually(lambda index=index: _running(api, f"burst-{index}"))
    await asyncio.sleep(1.0)  # a few more kubelet passes: none may write a status again
    status_writes = sum(
        count
        for call, count in sandbox.calls.items()
        if call.verb == "patch" and call.resource == "pods" and call.subresource == "status"
    )
    assert status_writes == 12


async def test_pods_beyond_the_nodes_pod_range_wait_for_an_address_as_with_a_cni_plugin(a3, api):
    """A node's pod range (a /26) gives 61 pods an address; the next one gets no sandbox (an Event says why)
    and starts once an address is free again."""
    node = a3.layout.node(a3.node_names[1])
    count = layout.MAX_POD_SLOTS + 1
    await asyncio.gather(
        *(api.create(PODS, pod(f"cpu-{index}", 0, node_name=node.name)) for index in range(count))
    )

    async def all_but_one_running() -> list[dict] | None:
        items = await api.list(PODS)
        running = [item for item in items if item["status"].get("phase") == "Running"]
        return running if len(running) == count - 1 else None

    running = await eventually(all_but_one_running, timeout=30)
    assert {item["status"]["podIP"] for item in running} == {
        node.pod_ip(s) for s in range(layout.MAX_POD_SLOTS)
    }
    [waiting] = {f"cpu-{i}" for i in range(count)} - {item["metadata"]["name"] for item in running}

    async def told() -> list[dict]:
        return [e for e in await _events(api, waiting) if e["reason"] == "FailedCreatePodSandBox"]

    [event] = await eventually(told)
    assert f"no IP addresses available in range set: {node.pod_cidr}" in event["message"]
    freed = running[0]
    await api.delete(f"{PODS}/{freed['metadata']['name']}")
    started = await eventually(lambda: _running(api, waiting), timeout=30)
    assert started["status"]["podIP"] == freed["status"]["podIP"]
