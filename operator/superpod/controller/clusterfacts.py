"""PriorityClasses, mirrored by a watch, and namespace labels, read through the API and kept for a few seconds.

Admission needs a partition's priority (its `scheduling.k8s.io/v1` PriorityClass) and, for quotas with a
namespaceSelector, its namespace's labels.

- PriorityClasses are few and cluster-scoped: every one is kept in memory, listed at start and followed by a
  watch (`reflector.Reflector`), so an admission pass reads them without an API call and sees a class as soon as
  the watch brings it. A class that appears, changes or goes tells `listeners` (the fleet wakes every
  SuperPod's admission pass): a partition waiting for its class (`PriorityClassNotFound`) is placed when the
  class is created, not at the next idle re-check, and a changed value reorders the queues at once. Until the
  first list has answered the copy is empty: partitions naming a class wait, the others get priority 0.
- Namespace labels are read with one get per namespace, at most once per `ttl` seconds; a failed read keeps the
  last answer. They are not watched: with `operator.watchNamespace` the chart grants no cluster-wide read of
  Namespaces, so a label edit is seen at the next admission pass after `ttl`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from superpod.api import common
from superpod.cluster import client, reflector
from superpod.controller import tenants

PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"
TTL = 10.0
logger = logging.getLogger(__name__)


class ClusterFacts:
    """The PriorityClasses (watched) and namespace labels (cached reads) admission passes need."""

    def __init__(
        self, api: client.KubeClient, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.clock = clock
        # told (no arguments) when a PriorityClass appeared, went, or changed what admission reads of it
        self.listeners: list[Callable[[], None]] = []
        self.classes = reflector.Reflector(
            api, PRIORITY_CLASSES, self._class_event, resource="priorityclasses"
        )
        self._classes: dict[str, tenants.PriorityClass] = {}
        self._labels: dict[str, tuple[float, dict[str, str] | None]] = {}
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """List the PriorityClasses, then follow them. A failed first list is logged and tried again by the
        watch's own retries (the mirror's health shows it), so a refused read does not stop the operator."""
        try:
            await self.classes.relist()
        except (client.ApiError, OSError, TimeoutError) as error:
            logger.warning("could not list PriorityClasses: %s; listing them again in the background", error)
        self._watch = asyncio.create_task(self.classes.run(), name="priorityclasses")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None

    def priority_classes(self) -> Mapping[str, tenants.PriorityClass]:
        """Every PriorityClass by name, as the watch last showed them."""
        return self._classes

    def _class_event(self, key: str, old: common.JSON | None, new: common.JSON | None) -> None:
        if new is None:
            self._classes.pop(key, None)
        else:
            current = self._classes[key] = tenants.PriorityClass.from_object(new)
            if old is not None and current == tenants.PriorityClass.from_object(old):
                return  # a label or annotation edit: what admission reads is the same
        for listener in self.listeners:
            listener()

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """The namespace's labels (None when it cannot be read)."""
        now = self.clock()
        cached = self._labels.get(namespace)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        try:
            obj = await self.api.get_or_none(client.resource_path("v1", "namespaces", name=namespace))
        except (client.ApiError, OSError, TimeoutError) as error:
            logger.warning("could not read namespace %s: %s", namespace, error)
            return cached[1] if cached is not None else None
        labels = dict(((obj or {}).get("metadata") or {}).get("labels") or {}) if obj is not None else None
        self._labels[namespace] = (now, labels)
        return labels
