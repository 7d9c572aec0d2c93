"""The mirror's map of partitions, with the keys of the ones each periodic pass would otherwise look for.

`PartitionMap` is a dict (`namespace/name` -> the newest copy) that also keeps, as copies are put in and taken
out, the keys of partitions preempted (`preempted`: reason Preempted, their pods maybe still being evicted) and
of partitions moving (`moving`: a `status.move`). The SuperPod daemon's pass finishes preemptions and moves; it
looked at every partition the SuperPod holds for both, at every pass, and a pass follows every placement: at
2,000 held that was most of what a paced placement cost the replica beyond its own writes. `held` gives each
SuperPod's partitions that hold devices or are being deleted, which its bindings loop looks at every 10 s: a
pass over every partition to find them cost a replica of a SuperCluster (22,000 held) a few percent of its CPU.
`unsettled` has the partitions never handled (no `status.phase`) or being deleted, the only ones the owner's
sweep (`partitionevents`, every 5 s) can have work for: its pass over all 22,000 stopped a SuperCluster
replica's event loop for 130-150 ms each time, which the partitions applied meanwhile waited out. `of` gives
every partition of a SuperPod, for rebuilding its model: a takeover rebuilt 32 SuperPods, each of which went
through all 22,000 partitions for its own.
Only `[]=`, `del` and `pop` change the map (the mirror's and the fleet's writes); the others are refused rather
than left unindexed.
"""

from __future__ import annotations

from typing import Any, NoReturn

from superpod.api import common
from superpod.api import partition as api_partition

JSON = common.JSON
_PREEMPTED = api_partition.PendingReason.PREEMPTED.value


class PartitionMap(dict[str, JSON]):
    def __init__(self) -> None:
        super().__init__()
        self.preempted: set[str] = set()
        self.moving: set[str] = set()
        self.unsettled: set[str] = set()  # no status.phase yet, or being deleted
        self._held: dict[str, set[str]] = {}  # SuperPod -> keys of its partitions that hold devices or go
        self._held_in: dict[str, str] = {}  # key -> the SuperPod whose `_held` has it
        self._of: dict[str, set[str]] = {}  # SuperPod -> keys of all its partitions
        self._superpod_of: dict[str, str] = {}  # key -> the SuperPod its spec names

    def held(self, superpod: str) -> frozenset[str]:
        """The keys of the SuperPod's partitions that hold devices (`status.allocation`) or are being deleted."""
        return frozenset(self._held.get(superpod, ()))

    def of(self, superpod: str) -> frozenset[str]:
        """The keys of all the SuperPod's partitions."""
        return frozenset(self._of.get(superpod, ()))

    def __setitem__(self, key: str, obj: JSON) -> None:
        super().__setitem__(key, obj)
        superpod = str((obj.get("spec") or {}).get("superPod", ""))
        if self._superpod_of.get(key) != superpod:
            _unindex(self._of, self._superpod_of, key)
            self._of.setdefault(superpod, set()).add(key)
            self._superpod_of[key] = superpod
        status = obj.get("status") or {}
        _mark(self.preempted, key, status.get("reason") == _PREEMPTED)
        _mark(self.moving, key, bool(status.get("move")))
        deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
        _mark(self.unsettled, key, not status.get("phase") or bool(deleting))
        if status.get("allocation") or deleting:
            if self._held_in.get(key) != superpod:
                self._unhold(key)
                self._held.setdefault(superpod, set()).add(key)
                self._held_in[key] = superpod
        else:
            self._unhold(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._forget(key)

    def pop(self, key: str, *default: Any) -> Any:
        found = super().pop(key, *default)
        self._forget(key)
        return found

    def _forget(self, key: str) -> None:
        self.preempted.discard(key)
        self.moving.discard(key)
        self.unsettled.discard(key)
        self._unhold(key)
        _unindex(self._of, self._superpod_of, key)

    def _unhold(self, key: str) -> None:
        _unindex(self._held, self._held_in, key)

    def _unindexed(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError("PartitionMap changes only through [], del and pop")

    update = setdefault = popitem = clear = __ior__ = _unindexed


def _unindex(index: dict[str, set[str]], superpod_of: dict[str, str], key: str) -> None:
    """Take `key` out of the SuperPod's set in `index` (`superpod_of` says which), dropping a set left empty."""
    superpod = superpod_of.pop(key, None)
    if superpod is not None:
        keys = index[superpod]
        keys.discard(key)
        if not keys:
            del index[superpod]


def _mark(keys: set[str], key: str, flagged: bool) -> None:
    if flagged:
        keys.add(key)
    else:
        keys.discard(key)
