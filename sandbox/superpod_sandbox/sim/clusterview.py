"""The running simulator's view of the cluster: its Nodes, its device-info ConfigMaps and every Pod.

Three `cluster.reflector.Reflector`s keep the copies current (list, then watch), so state written by another
process (`superpod sim fault`, the operator, kubectl) is seen within one watch event, and nothing in the
simulator keeps a private truth about health or allocation: a device is in use when an active pod's
`huawei.com/AscendReal` annotation names it, unhealthy when the ConfigMap says so, a node down when its Ready
condition is Unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from superpod.cluster import client, deviceinfo, reflector
from superpod.controller import clustermirror

from superpod_sandbox.sim import layout, nodes, plugin_state, podstatus, scheduling

JSON = dict[str, Any]
logger = logging.getLogger(__name__)
PodHandler = Callable[[str, JSON | None, JSON | None], Awaitable[None] | None]


async def cancel(tasks: list[asyncio.Task[Any]], grace: float = 5.0) -> None:
    """Cancel the tasks and wait for them, at most `grace` seconds: a stop must never hang."""
    for task in tasks:
        task.cancel()
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=grace)
        for task in stuck:
            logger.warning("simulator task %s did not stop within %.0f s", task.get_name(), grace)


class Mirror:
    """Local copies of the fleet's Nodes and ConfigMaps and of all Pods."""

    def __init__(
        self, api: client.KubeClient, fleet: layout.Layout, on_pod: PodHandler | None = None
    ) -> None:
        self.fleet = fleet
        selector = f"{nodes.FLEET_LABEL}={fleet.fleet}"
        # a fleet's own objects in one answer (the API server filters all fleets' for each page asked), kept
        # without their managedFields, which the simulator never reads (40% of a Node as the API serves it)
        self.nodes = reflector.Reflector(
            api,
            "/api/v1/nodes",
            self._ignore,
            label_selector=selector,
            page_size=0,
            transform=clustermirror.lean,
        )
        self.configmaps = reflector.Reflector(
            api,
            client.resource_path("v1", "configmaps", deviceinfo.NAMESPACE),
            self._ignore,
            label_selector=selector,
            page_size=0,
            transform=clustermirror.lean,
        )
        self.pods = reflector.Reflector(api, "/api/v1/pods", self._on_pod)
        self._on_pod_handler = on_pod
        self._names = {node.name for node in fleet.nodes}
        self._by_node: dict[str, dict[str, JSON]] = {}  # node -> pod key -> pod, for pods bound to our nodes
        self._states: dict[str, tuple[str, plugin_state.PluginState]] = {}  # node -> (resourceVersion, state)
        self._tasks: list[asyncio.Task[None]] = []

    async def _on_pod(self, key: str, old: JSON | None, new: JSON | None) -> None:
        old_node = (old or {}).get("spec", {}).get("nodeName")
        new_node = (new or {}).get("spec", {}).get("nodeName")
        if old_node in self._by_node:
            self._by_node[old_node].pop(key, None)
        if new is not None and new_node in self._names:
            self._by_node.setdefault(new_node, {})[key] = new
        if self._on_pod_handler is not None:
            result = self._on_pod_handler(key, old, new)
            if result is not None:
                await result

    @staticmethod
    def _ignore(key: str, old: JSON | None, new: JSON | None) -> None:
        return None

    async def start(self, timeout: float = 60.0) -> None:
        for watched in (self.nodes, self.configmaps, self.pods):
            self._tasks.append(asyncio.create_task(watched.run(), name=f"sim-watch-{watched.path}"))
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                self.nodes.synced.wait(), self.configmaps.synced.wait(), self.pods.synced.wait()
            )

    async def stop(self) -> None:
        await cancel(self._tasks)
        self._tasks.clear()

    def node(self, name: str) -> JSON | None:
        return self.nodes.objects.get(name)

    def configmap(self, node_name: str) -> JSON | None:
        return self.configmaps.objects.get(f"{deviceinfo.NAMESPACE}/{deviceinfo.configmap_name(node_name)}")

    def plugin_state(self, node_name: str) -> plugin_state.PluginState:
        configmap = self.configmap(node_name)
        if configmap is None:
            return plugin_state.PluginState()
        version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
        cached = self._states.get(node_name)
        if cached is not None and cached[0] == version and version:
            return cached[1]  # parse each ConfigMap version once, not at every scrape and pass
        try:
            state = plugin_state.read(configmap, self.fleet.hardware.resource)
        except (deviceinfo.DeviceInfoError, ValueError, KeyError):
            state = plugin_state.PluginState()
        self._states[node_name] = (version, state)
        return state

    def is_down(self, node_name: str) -> bool:
        node = self.node(node_name)
        return node is not None and nodes.is_down(node)

    def owns(self, node_name: str | None) -> bool:
        return node_name in self._names

    def active_pods_on(self, node_name: str) -> list[JSON]:
        return [pod for pod in (self._by_node.get(node_name) or {}).values() if scheduling.is_active(pod)]

    def in_use(self, node_name: str) -> dict[str, str]:
        """device -> namespace/name of the active pod holding it on this node."""
        holders: dict[str, str] = {}
        for pod in self.active_pods_on(node_name):
            key = reflector.object_key(pod)
            for device in podstatus.used_devices(pod):
                holders[device] = key
        return holders
