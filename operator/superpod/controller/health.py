"""`/healthz` fails while a mirror of the API has stopped following it for longer than a bound.

The operator decides from mirrors (list, then watch: `cluster.reflector`): one that cannot follow the API any
more (its watch failing at every try, for example on an event it cannot read) would leave the operator blind to
device faults and new partitions while it looks alive. Every failed watch is logged and counted
(`superpod_watch_restarts_total`) and tried again with backoff; past `mirror_sync_timeout` seconds without
following, the probe fails, so `/healthz` answers 500 and the kubelet restarts the pod. kopf serves `/healthz`
and caches a healthy answer for 10 s, so the failure shows at most 10 s after the bound.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from superpod.cluster import reflector
from superpod.metrics import instruments


def out_of_sync_message(lagging: list[tuple[str, float]], bound: float) -> str:
    mirrors = ", ".join(f"{resource} for {seconds:.0f} s" for resource, seconds in lagging)
    return f"mirrors not following the API for longer than {bound:g} s: {mirrors} (see the log for why)"


def register(registry: kopf.OperatorRegistry, *, mirror_sync_timeout: float) -> None:
    """Count every watch restart, and add the mirrors' probe to kopf's `/healthz`."""
    reflector.restart_observers.add(instruments.count_watch_restarts)
    # kopf logs every probe it runs (one line per /healthz call, 10 s apart at most): failures are enough
    logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)

    @kopf.on.probe(registry=registry, id="mirrors")
    def mirrors(**_: Any) -> str:
        if mirror_sync_timeout > 0:
            lagging = reflector.out_of_sync(mirror_sync_timeout)
            if lagging:
                # permanent: kopf would otherwise retry the probe with backoff, holding the answer back
                raise kopf.PermanentError(out_of_sync_message(lagging, mirror_sync_timeout))
        return "following"
