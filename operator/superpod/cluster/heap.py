"""Full garbage collections that scan what is new, not the whole mirror of the cluster.

CPython's cyclic collector scans every tracked container (dict, list, object) at a full, generation-2
collection, and starts one whenever the containers promoted since the last one exceed a quarter of those that
survived it. A process that mirrors a SuperCluster holds millions of long-lived containers (Nodes, ConfigMaps,
partitions as dicts and lists) and replaces hundreds a second as watch events arrive, so full collections came
every few seconds under load, each pausing every task of the process for a time that grows with the mirror:
up to 585 ms in the sandbox API server and 267 ms in an operator replica at 16 SuperPoDs with 5,000 partitions
held (docs/performance.md, "Garbage collection pauses"), landing on whichever requests were in flight.

`freeze_survivors` moves the survivors of each full collection to the permanent generation (`gc.freeze`). They
are still freed by reference counting the moment nothing holds them (a replaced Node goes at once, as before);
no later collection scans them, so a full collection only looks at what was promoted since the previous one.
What that gives up: a reference cycle that forms later among frozen objects (the objects of a long-lived task
that ends, say) is not collected until the next thorough collection. Every `THOROUGH_SECONDS` the permanent
generation is put back (`gc.unfreeze`) for one full collection of everything, which is logged with what it
found, so memory cannot creep and an operator sees whether it would.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

THOROUGH_SECONDS = 3600.0
logger = logging.getLogger(__name__)


class FrozenSurvivors:
    """The gc callback that freezes after full collections; `install` it once per process."""

    def __init__(
        self, thorough_seconds: float = THOROUGH_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.thorough_seconds = thorough_seconds
        self.clock = clock
        self.thorough_at = clock()  # when everything was last collected
        self.thorough_collections = 0
        self._thorough = False  # the next full collection is the thorough one
        self._started = 0.0

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Stop freezing and give the frozen objects back to the collector."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        gc.unfreeze()

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
            return
        # freeze and unfreeze only move the collector's lists: safe here, after the collection is done
        if self._thorough:
            self._thorough = False
            self.thorough_collections += 1
            self.thorough_at = self.clock()
            gc.freeze()
            logger.info(
                "thorough garbage collection: %d unreachable objects freed in %.0f ms, %d kept",
                info["collected"],
                (time.perf_counter() - self._started) * 1000,
                gc.get_freeze_count(),
            )
            return
        if self.clock() - self.thorough_at >= self.thorough_seconds:
            gc.unfreeze()  # the next full collection scans everything once
            self._thorough = True
            return
        gc.freeze()


_installed: FrozenSurvivors | None = None


def freeze_survivors(thorough_seconds: float = THOROUGH_SECONDS) -> FrozenSurvivors:
    """Install the policy in this process (once: a second call returns the first one)."""
    global _installed
    if _installed is None:
        _installed = FrozenSurvivors(thorough_seconds)
        _installed.install()
    return _installed
