"""Records every garbage collection of every Python process started with this directory on PYTHONPATH.

    PYTHONPATH=tools/gcpauses GC_PAUSES_DIR=/tmp/gc .venv/bin/python -m superpod.cli bench e2e ...

Each process appends to `$GC_PAUSES_DIR/gc-<pid>.log` one line per full (generation 2) collection and per
collection over 20 ms: when, the generation, how long it paused the process, what it collected, and the totals
so far per generation (count, seconds, longest in ms), followed by the process's command line. The last line of
a file is the process's summary. For measuring only (docs/performance.md, "Garbage collection pauses").
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_DIR = os.environ.get("GC_PAUSES_DIR", "/tmp/gcpauses")
_started = [0.0]
_totals: dict[int, list[float]] = {}
_command = " ".join(sys.argv[1:4])[:60]


def _record(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    paused = time.perf_counter() - _started[0]
    generation = info["generation"]
    total = _totals.setdefault(generation, [0, 0.0, 0.0])
    total[0] += 1
    total[1] += paused
    total[2] = max(total[2], paused)
    if generation == 2 or paused > 0.02:
        summary = {g: (int(t[0]), round(t[1], 2), round(t[2] * 1000)) for g, t in sorted(_totals.items())}
        with open(os.path.join(_DIR, f"gc-{os.getpid()}.log"), "a") as log:
            log.write(
                f"{time.time():.1f} gen{generation} {paused * 1000:.0f}ms collected={info['collected']} "
                f"totals={summary} {_command}\n"
            )


os.makedirs(_DIR, exist_ok=True)
gc.callbacks.append(_record)
