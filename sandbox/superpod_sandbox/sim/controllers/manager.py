"""The controller manager: watches and a level-triggered loop over the workload controllers.

`async with ControllerManager(api):` lists and watches Deployments, ReplicaSets, Jobs and Pods in every
namespace (`cluster.reflector`), then on every change (and every `resync_seconds`) lets each controller
compare each of its objects with what exists and write the difference. A pass that fails (the API refused a
write) is logged and the next one tries again, as kube's work queues retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from superpod.cluster import client, reflector

from superpod_sandbox.sim import clusterview, publisher
from superpod_sandbox.sim.controllers import deployments, jobs, replicasets

JSON = dict[str, Any]
logger = logging.getLogger(__name__)


class ControllerManager:
    def __init__(self, api: client.KubeClient, resync_seconds: float = 1.0) -> None:
        self.api = api
        self.resync_seconds = resync_seconds
        self.wake = asyncio.Event()
        self.pods = reflector.Reflector(api, "/api/v1/pods", self._changed)
        self.replicasets = reflector.Reflector(api, "/apis/apps/v1/replicasets", self._changed)
        self.deployments = reflector.Reflector(api, "/apis/apps/v1/deployments", self._changed)
        self.jobs = reflector.Reflector(api, "/apis/batch/v1/jobs", self._changed)
        self.replicaset_controller = replicasets.ReplicaSetController(api)
        self.deployment_controller = deployments.DeploymentController(api)
        self.job_controller = jobs.JobController(api)
        self._tasks: list[asyncio.Task[Any]] = []

    def _changed(self, key: str, old: JSON | None, new: JSON | None) -> None:
        self.wake.set()

    async def start(self) -> None:
        watched = (self.pods, self.replicasets, self.deployments, self.jobs)
        for mirror in watched:
            self._tasks.append(asyncio.create_task(mirror.run(), name=f"sim-controllers-watch-{mirror.path}"))
        async with asyncio.timeout(60):
            await asyncio.gather(*(mirror.synced.wait() for mirror in watched))
        self._tasks.append(asyncio.create_task(self._loop(), name="sim-controller-manager"))

    async def stop(self) -> None:
        await clusterview.cancel(self._tasks)
        self._tasks.clear()

    async def __aenter__(self) -> ControllerManager:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_seconds):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the controllers alive through API hiccups
                publisher.reraise_if_cancelling()
                logger.warning("simulated controller pass failed: %s", error)

    async def sync(self) -> None:
        """One pass of every controller over its objects (each read from the mirror when its turn comes)."""
        by_namespace = _by_namespace(self.pods.objects.values())
        for deployment in list(self.deployments.objects.values()):
            namespace = deployment["metadata"]["namespace"]
            owned = [
                rs for rs in self.replicasets.objects.values() if rs["metadata"]["namespace"] == namespace
            ]
            await self.deployment_controller.sync(deployment, owned)
        for replicaset in list(self.replicasets.objects.values()):
            await self.replicaset_controller.sync(
                replicaset, by_namespace.get(replicaset["metadata"]["namespace"], [])
            )
        for job in list(self.jobs.objects.values()):
            await self.job_controller.sync(job, by_namespace.get(job["metadata"]["namespace"], []))


def _by_namespace(objects: Any) -> dict[str, list[JSON]]:
    grouped: dict[str, list[JSON]] = {}
    for obj in objects:
        grouped.setdefault(obj["metadata"].get("namespace", ""), []).append(obj)
    return grouped
