"""PriorityClasses and namespace labels, read through the API and kept for a few seconds.

Admission needs a partition's priority (its `scheduling.k8s.io/v1` PriorityClass) and, for quotas with a
namespaceSelector, its namespace's labels. Both change rarely and are read at most once per `ttl` seconds:
one list of every PriorityClass (they are few, and the globalDefault one is needed anyway; the placements that
ask while it is in flight share it), one get per namespace. A cluster that does not serve PriorityClasses (404) has none: every partition gets priority 0,
except those naming a class, which wait (PriorityClassNotFound). A failed read keeps the last answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from superpod.cluster import client
from superpod.controller import tenants

PRIORITY_CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"
TTL = 10.0
logger = logging.getLogger(__name__)


class ClusterFacts:
    """Cached reads of PriorityClasses and namespace labels."""

    def __init__(
        self, api: client.KubeClient, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.clock = clock
        self._classes: dict[str, tenants.PriorityClass] = {}
        self._classes_read = -float("inf")
        self._reading: asyncio.Future[Mapping[str, tenants.PriorityClass]] | None = None  # the list in flight
        self._labels: dict[str, tuple[float, dict[str, str] | None]] = {}

    async def priority_classes(self) -> Mapping[str, tenants.PriorityClass]:
        """Every PriorityClass by name; when the copy is older than `ttl`, one list, which every placement
        that asks meanwhile awaits (a burst asked it once per partition when the copy expired)."""
        if self.clock() - self._classes_read < self.ttl:
            return self._classes
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read_priority_classes())
        return await asyncio.shield(self._reading)

    async def _read_priority_classes(self) -> Mapping[str, tenants.PriorityClass]:
        now = self.clock()
        try:
            items = await self.api.list(PRIORITY_CLASSES)
        except client.ApiError as error:
            if error.status != 404:
                logger.warning("could not list PriorityClasses: %s", error)
                return self._classes
            items = []
        except (OSError, TimeoutError) as error:
            logger.warning("could not list PriorityClasses: %s", error)
            return self._classes
        self._classes = {pc.name: pc for pc in map(tenants.PriorityClass.from_object, items)}
        self._classes_read = now
        return self._classes

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

    def forget(self) -> None:
        """Read everything afresh next time (a PriorityClass or namespace changed, as far as we know)."""
        self._classes_read = -float("inf")
        self._reading = None  # a list in flight may have read the old ones
        self._labels.clear()
