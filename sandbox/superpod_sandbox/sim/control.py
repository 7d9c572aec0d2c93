"""Faults, heals and teardown from any process: `superpod sim fault|heal|down` act on the cluster objects.

The simulator keeps its state in the objects themselves, so these functions need nothing but API access:

- device faults and UB switch faults rewrite the node's device-info ConfigMap as the device plugin would
  (the faults from `faults`, the free list from the node's active pods, a new UpdateTime), with the
  resourceVersion they read, retrying on conflict with a running `superpod sim up`;
- node-down writes what the node lifecycle controller writes when a kubelet goes silent (Ready, MemoryPressure,
  DiskPressure, PIDPressure Unknown with reason NodeStatusUnknown; the `node.kubernetes.io/unreachable`
  NoSchedule and NoExecute taints) and marks the node's pods not Ready; the running simulator then stops the
  node's heartbeats, ConfigMap refreshes and telemetry. Heal writes the kubelet's Ready conditions back, removes
  the taints, and makes the pods Ready again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from superpod.cluster import client, deviceinfo

from superpod_sandbox.sim import (
    devicefaults,
    hardware,
    layout,
    nodes,
    plugin_state,
    podstatus,
    publisher,
    scheduling,
)

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Target:
    """A simulated node found in the cluster."""

    hardware: hardware.Hardware
    fleet: layout.Layout  # holding only this node
    node: layout.SimNode
    object: JSON  # the Node


async def find(api: client.KubeClient, node_name: str) -> Target:
    node = await api.get_or_none(f"/api/v1/nodes/{node_name}")
    if node is None:
        raise devicefaults.FaultError(f"node {node_name} does not exist")
    fleet_id = (node["metadata"].get("labels") or {}).get(nodes.FLEET_LABEL)
    if not fleet_id:
        raise devicefaults.FaultError(
            f"node {node_name} is not a simulated node (no {nodes.FLEET_LABEL} label)"
        )
    profile, superpod_id = layout.parse_fleet(fleet_id)
    hw = hardware.describe(profile)
    sim = layout.node_named(hw, superpod_id, node_name)
    return Target(hw, layout.single(hw, superpod_id, sim), sim, node)


async def _pods_on(api: client.KubeClient, node_name: str) -> list[JSON]:
    return await api.list("/api/v1/pods", fieldSelector=f"spec.nodeName={node_name}")


async def _in_use(api: client.KubeClient, node_name: str) -> set[str]:
    return {
        device
        for pod in await _pods_on(api, node_name)
        if scheduling.is_active(pod)
        for device in podstatus.used_devices(pod)
    }


async def rewrite_plugin_state(
    api: client.KubeClient,
    target: Target,
    change: Callable[[plugin_state.PluginState], plugin_state.PluginState],
) -> plugin_state.PluginState:
    """Apply `change(state) -> state` to the node's ConfigMap, retrying on write conflicts."""
    if not target.hardware.facts.publishes_deviceinfo:
        raise devicefaults.FaultError(f"{target.hardware.name} nodes have no Ascend device plugin ConfigMap")
    path = client.resource_path(
        "v1", "configmaps", deviceinfo.NAMESPACE, deviceinfo.configmap_name(target.node.name)
    )
    for _ in range(10):
        current = await api.get_or_none(path)
        state = (
            plugin_state.read(current, target.hardware.resource) if current else plugin_state.PluginState()
        )
        new_state = change(state)
        annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
        lists_used = annotations.get(plugin_state.FREE_LIST_ANNOTATION) == plugin_state.FREE_LIST_ALL
        in_use = set() if lists_used else await _in_use(api, target.node.name)
        body = plugin_state.configmap(
            target.fleet, target.node, new_state, int(time.time()), in_use, fleet_label=nodes.FLEET_LABEL
        )
        if lists_used:
            body["metadata"]["annotations"] = {plugin_state.FREE_LIST_ANNOTATION: plugin_state.FREE_LIST_ALL}
        try:
            if current is None:
                await api.create(client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE), body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await api.replace(path, body)
            return new_state
        except client.ApiError as error:
            if error.status != 409:
                raise
    raise devicefaults.FaultError(f"ConfigMap {path} kept changing; gave up after 10 attempts")


async def _set_pods_ready(api: client.KubeClient, node_name: str, ready: bool) -> None:
    now = publisher.now_rfc3339()
    for pod in await _pods_on(api, node_name):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        conditions = []
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") in ("Ready", "ContainersReady"):
                condition = {**condition, "status": "True" if ready else "False", "lastTransitionTime": now}
            conditions.append(condition)
        metadata = pod["metadata"]
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"], "status")
        try:
            await api.patch(path, {"status": {"conditions": conditions}})
        except client.ApiError as error:
            if error.status != 404:
                raise


async def _set_node_down(api: client.KubeClient, target: Target, down: bool) -> None:
    now = publisher.now_rfc3339()
    name = target.node.name
    taints = [
        taint
        for taint in (target.object.get("spec") or {}).get("taints") or []
        if taint.get("key") != nodes.UNREACHABLE_TAINT
    ]
    if down:
        taints.extend(nodes.unreachable_taints(now))
    await api.patch(f"/api/v1/nodes/{name}", {"spec": {"taints": taints or None}})
    await api.patch(
        f"/api/v1/nodes/{name}/status",
        {"status": {"conditions": nodes.ready_conditions(now, ready=not down)}},
    )
    await _set_pods_ready(api, name, ready=not down)


async def inject(
    api: client.KubeClient,
    node_name: str,
    kind: devicefaults.Kind,
    device: str | None = None,
    *,
    switch_port: int = 0,
) -> str:
    """Inject a fault; returns a one-line description of what changed."""
    target = await find(api, node_name)
    if kind is devicefaults.Kind.NODE_DOWN:
        await _set_node_down(api, target, down=True)
        return f"node {node_name}: Ready Unknown, unreachable taints, heartbeats and device plugin stopped"
    if kind is devicefaults.Kind.SWITCH and not target.hardware.facts.publishes_switchinfo:
        raise devicefaults.FaultError(f"{target.hardware.name} has no UB switches (no SwitchInfoCfg)")
    devices = (
        ()
        if kind is devicefaults.Kind.SWITCH
        else devicefaults.affected_devices(target.hardware, target.node, kind, device)
    )
    now_ms = int(time.time() * 1000)
    await rewrite_plugin_state(
        api, target, lambda state: devicefaults.inject(state, kind, devices, now_ms, switch_port=switch_port)
    )
    what = f"UB switch port {switch_port}" if kind is devicefaults.Kind.SWITCH else ",".join(devices)
    return f"node {node_name}: {kind} fault on {what}"


async def heal(
    api: client.KubeClient, node_name: str, kind: devicefaults.Kind | None = None, device: str | None = None
) -> str:
    """Heal one kind (None: every kind) on one device (None: every device); returns what changed."""
    target = await find(api, node_name)
    healed = []
    if kind in (None, devicefaults.Kind.NODE_DOWN) and nodes.is_down(target.object):
        await _set_node_down(api, target, down=False)
        healed.append("node Ready again")
    if kind is not devicefaults.Kind.NODE_DOWN and target.hardware.facts.publishes_deviceinfo:
        # a hot reset took the sibling die too (A3), so its heal returns both; other kinds heal the device named
        pair = devicefaults.affected_devices(
            target.hardware, target.node, devicefaults.Kind.RECOVERING, device
        )
        named = devicefaults.affected_devices(
            target.hardware, target.node, devicefaults.Kind.UNHEALTHY, device
        )

        def change(state: plugin_state.PluginState) -> plugin_state.PluginState:
            if kind is devicefaults.Kind.RECOVERING:
                return devicefaults.heal(state, kind, pair)
            if kind is None:
                state = devicefaults.heal(state, devicefaults.Kind.RECOVERING, pair)
            return devicefaults.heal(state, kind, named)

        await rewrite_plugin_state(api, target, change)
        devices = pair if kind in (None, devicefaults.Kind.RECOVERING) else named
        healed.append(f"{kind or 'all'} faults cleared on {','.join(devices) if device else 'every device'}")
    return f"node {node_name}: " + "; ".join(healed or ["nothing to heal"])


async def down(api: client.KubeClient, fleet_id: str | None = None) -> dict[str, int]:
    """Delete what `sim up` created (one fleet, or every simulated fleet): pods on its nodes, ConfigMaps, Nodes."""
    selector = f"{nodes.FLEET_LABEL}={fleet_id}" if fleet_id else nodes.FLEET_LABEL
    node_objects = await api.list("/api/v1/nodes", labelSelector=selector)
    counts = {"pods": 0, "configmaps": 0, "nodes": 0}
    names = [node["metadata"]["name"] for node in node_objects]
    await publisher.bounded(32, lambda name: _delete_pods_on(api, name, counts), names)
    configmaps = await api.list(
        client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE), labelSelector=selector
    )
    paths = [
        client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE, cm["metadata"]["name"])
        for cm in configmaps
    ]
    await publisher.bounded(32, lambda path: _delete(api, path, counts, "configmaps"), paths)
    await publisher.bounded(32, lambda name: _delete(api, f"/api/v1/nodes/{name}", counts, "nodes"), names)
    return counts


async def _delete(api: client.KubeClient, path: str, counts: dict[str, int], kind: str) -> None:
    if await api.delete(path) is not None:
        counts[kind] += 1


async def _delete_pods_on(api: client.KubeClient, node_name: str, counts: dict[str, int]) -> None:
    # what the pod garbage collector does for pods bound to a node that no longer exists
    for pod in await _pods_on(api, node_name):
        metadata = pod["metadata"]
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"])
        if await api.delete(path, gracePeriodSeconds="0") is not None:
            counts["pods"] += 1
