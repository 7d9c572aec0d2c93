"""The kubelet and device-plugin stand-in for pods on simulated nodes (and, where none runs, the scheduler).

For every pod event and on a short resync it:

1. binds a pending pod that has no node (`bind_pods`, default on: the sandbox runs no scheduler) through the
   `pods/binding` subresource, to a simulated node chosen by `scheduling.choose_node`; a pod that fits nowhere
   gets one `FailedScheduling` Event per distinct reason and stays Pending;
2. for a pod bound to a simulated node and not yet started, does Allocate (`scheduling.allocate`), writes the
   device plugin's annotations (`podstatus.allocation_annotations`), then the kubelet's Running status with a
   pod IP; a refused Allocate (device in use, unhealthy, missing) leaves the pod Pending with a Warning Event
   `UnexpectedAdmissionError` (the kubelet's reason; the real kubelet would also fail the pod) and is retried
   on the next resync, so the pod starts once the device is free or healed;
3. ends the containers of a Running pod whose `lifecycle` annotations say its process has exited (the pod
   Succeeded or Failed, or its containers restarted, as its restartPolicy says);
4. finishes deletions: a pod with a deletionTimestamp on a simulated node is deleted with grace period 0;
5. asks the publisher to rewrite a node's ConfigMap when a pod there took or gave back devices (deleted,
   Succeeded or Failed pods free them: the free list is always computed from the active pods).

Pods whose node is down are left alone, as a dead kubelet would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from superpod.cluster import client, reflector

from superpod_sandbox.sim import clusterview, layout, lifecycle, podstatus, publisher, scheduling

JSON = dict[str, Any]
logger = logging.getLogger(__name__)
DEFAULT_SCHEDULER = "default-scheduler"


class Kubelet:
    """Runs pods on the simulated nodes of one fleet."""

    def __init__(
        self,
        api: client.KubeClient,
        fleet: layout.Layout,
        view: clusterview.Mirror,
        on_devices_changed: Callable[[str], None],
        *,
        bind_pods: bool = True,
    ) -> None:
        self.api = api
        self.fleet = fleet
        self.view = view
        self.on_devices_changed = on_devices_changed
        self.bind_pods = bind_pods
        self.wake = asyncio.Event()
        # allocations written but not yet seen through the watch: pod key -> (node, devices, slot)
        self._pending: dict[str, tuple[str, tuple[str, ...], int]] = {}
        self._reported: dict[str, str] = {}  # pod key -> last Event message, so each reason is posted once
        self.started = 0  # pods started so far

    def on_pod(self, key: str, old: JSON | None, new: JSON | None) -> None:
        """Reflector callback: note device changes and wake the worker."""
        for pod in (old, new):
            node = (pod or {}).get("spec", {}).get("nodeName")
            if self.view.owns(node) and (new is None or not scheduling.is_active(new)):
                self.on_devices_changed(node)
        if new is None:
            self._pending.pop(key, None)
            self._reported.pop(key, None)
        elif (new.get("status") or {}).get("phase", "Pending") != "Pending":
            self._pending.pop(key, None)  # the watch shows our status write: the pod no longer needs starting
        self.wake.set()

    async def run(self, resync_seconds: float = 1.0) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # its timeout fires, and this loop would then outlive Fleet.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(resync_seconds):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the kubelet alive through API hiccups
                publisher.reraise_if_cancelling()
                logger.warning("simulated kubelet pass failed: %s", error)

    async def sync(self) -> None:
        """One pass over all pods; node views are computed once and updated as pods are placed."""
        views: dict[str, scheduling.NodeView] | None = None
        for key in sorted(self.view.pods.objects):
            # read each pod when its turn comes, not from a snapshot: the watch may have moved it on meanwhile
            current = self.view.pods.objects.get(key)
            if current is None:
                continue
            pod = current
            spec = pod.get("spec") or {}
            node = spec.get("nodeName")
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                if self.view.owns(node):
                    await self._finish_deletion(pod)
                continue
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if phase == "Running" and node and self.view.owns(node) and not self.view.is_down(node):
                await self._end_containers(pod)
            if phase != "Pending":
                continue
            if not node:
                if self.bind_pods and spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER:
                    views = views if views is not None else self._views()
                    await self._bind(key, pod, views)
                continue
            if self.view.owns(node) and not self.view.is_down(node) and key not in self._pending:
                views = views if views is not None else self._views()
                await self._start(key, pod, node, views)

    # binding

    def _views(self) -> dict[str, scheduling.NodeView]:
        resource = self.fleet.hardware.resource
        views = {}
        for sim in self.fleet.nodes:
            node = self.view.node(sim.name)
            if node is None:
                continue
            holders = self._holders(sim.name)
            state = self.view.plugin_state(sim.name)
            usable = frozenset(name for name in sim.devices if state.chip_healthy(name))
            promised = sum(
                scheduling.requested_devices(pod, resource)
                for pod in self.view.active_pods_on(sim.name)
                if not podstatus.used_devices(pod) and reflector.object_key(pod) not in self._pending
            )
            views[sim.name] = scheduling.NodeView(node, sim, usable, frozenset(holders), promised)
        return views

    def _holders(self, node_name: str) -> dict[str, str]:
        holders = self.view.in_use(node_name)
        for key, (node, devices, _) in self._pending.items():
            if node == node_name:
                holders.update(dict.fromkeys(devices, key))
        return holders

    async def _bind(self, key: str, pod: JSON, views: dict[str, scheduling.NodeView]) -> None:
        resource = self.fleet.hardware.resource
        target, reason = scheduling.choose_node(pod, views.values(), resource)
        metadata = pod["metadata"]
        if target is None:
            await self._event(pod, "FailedScheduling", reason, "default-scheduler", None)
            return
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": target},
        }
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"], "binding")
        try:
            await self.api.create(path, body)
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise
            return
        bound = {**pod, "spec": {**pod.get("spec", {}), "nodeName": target}}  # the watch confirms it later
        views[target] = dataclasses.replace(
            views[target], promised=views[target].promised + scheduling.requested_devices(pod, resource)
        )
        await self._start(key, bound, target, views)

    # starting

    def _free_slot(self, node_name: str) -> int | None:
        """The lowest pod slot (pod IP) of the node no active pod has, None when its range is used up."""
        taken = {slot for node, _, slot in self._pending.values() if node == node_name}
        sim = self.fleet.node(node_name)
        addresses = {sim.pod_ip(slot): slot for slot in range(layout.MAX_POD_SLOTS)}
        for pod in self.view.active_pods_on(node_name):
            slot = addresses.get((pod.get("status") or {}).get("podIP", ""))
            if slot is not None:
                taken.add(slot)
        return next((slot for slot in range(layout.MAX_POD_SLOTS) if slot not in taken), None)

    async def _start(
        self, key: str, pod: JSON, node_name: str, views: dict[str, scheduling.NodeView]
    ) -> None:
        sim = self.fleet.node(node_name)
        view = views.get(node_name)
        if view is None:
            return
        resource = self.fleet.hardware.resource
        holders = self._holders(node_name)
        already = podstatus.used_devices(pod)
        if already:  # allocated by an earlier pass or process that stopped before the status write
            allocation = scheduling.Allocation(devices=already)
        else:
            allocation = scheduling.allocate(pod, view, resource, self.fleet.hardware.profile.rule, holders)
        if allocation.error:
            message = f"Allocate failed due to {allocation.error}, which is unexpected"
            await self._event(pod, "UnexpectedAdmissionError", message, "kubelet", node_name)
            return
        metadata = pod["metadata"]
        slot = self._free_slot(node_name)
        if slot is None:  # as the CNI plugin whose range is used up: no sandbox, the pod waits
            message = (
                "Failed to create pod sandbox: failed to allocate for range 0: no IP addresses available in "
                f"range set: {sim.pod_cidr}"
            )
            await self._event(pod, "FailedCreatePodSandBox", message, "kubelet", node_name)
            return
        self._pending[key] = (node_name, allocation.devices, slot)
        views[node_name] = dataclasses.replace(
            view,
            in_use=view.in_use | frozenset(allocation.devices),
            promised=max(0, view.promised - scheduling.requested_devices(pod, resource)),
        )
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"])
        try:
            annotations = podstatus.allocation_annotations(
                self.fleet, sim, metadata["name"], allocation.devices
            )
            if annotations:
                await self.api.patch(path, {"metadata": {"annotations": annotations}})
            status = podstatus.running_status(pod, sim.host_ip, sim.pod_ip(slot), publisher.now_rfc3339())
            await self.api.patch(f"{path}/status", {"status": status})
        except client.ApiError as error:
            self._pending.pop(key, None)
            if error.status == 404:
                return
            raise
        self.started += 1
        self._reported.pop(key, None)
        if allocation.devices:
            self.on_devices_changed(node_name)

    async def _end_containers(self, pod: JSON) -> None:
        """Containers whose simulated process has ended (`lifecycle`): the Pod finishes or they restart."""
        status = lifecycle.exit_status(pod, datetime.datetime.now(datetime.UTC))
        if status is None:
            return
        metadata = pod["metadata"]
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"], "status")
        try:
            await self.api.patch(path, {"status": status})
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise

    async def _finish_deletion(self, pod: JSON) -> None:
        metadata = pod["metadata"]
        if metadata.get("finalizers"):
            return
        path = client.resource_path("v1", "pods", metadata["namespace"], metadata["name"])
        await self.api.delete(path, gracePeriodSeconds="0")

    async def _event(
        self, pod: JSON, reason: str, message: str, component: str, node_name: str | None
    ) -> None:
        metadata = pod["metadata"]
        key = f"{metadata.get('namespace')}/{metadata.get('name')}"
        if self._reported.get(key) == message:
            return
        self._reported[key] = message
        now = publisher.now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{time.time_ns():x}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": component, **({"host": node_name} if node_name else {})},
            "reportingComponent": component,
            "reportingInstance": node_name or component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.create(client.resource_path("v1", "events", metadata["namespace"]), event)
        except client.ApiError as error:
            logger.warning("could not post event for %s: %s", key, error)
