"""The mirror's map of partitions, with the keys of the few whose status asks for work at every daemon pass.

`PartitionMap` is a dict (`namespace/name` -> the newest copy) that also keeps, as copies are put in and taken
out, the keys of partitions preempted (`preempted`: reason Preempted, their pods maybe still being evicted) and
of partitions moving (`moving`: a `status.move`). The SuperPod daemon's pass finishes preemptions and moves; it
looked at every partition the SuperPod holds for both, at every pass, and a pass follows every placement: at
2,000 held that was most of what a paced placement cost the replica beyond its own writes. Only `[]=`, `del`
and `pop` change the map (the mirror's and the fleet's writes); the others are refused rather than left
unindexed.
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

    def __setitem__(self, key: str, obj: JSON) -> None:
        super().__setitem__(key, obj)
        status = obj.get("status") or {}
        _mark(self.preempted, key, status.get("reason") == _PREEMPTED)
        _mark(self.moving, key, bool(status.get("move")))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.preempted.discard(key)
        self.moving.discard(key)

    def pop(self, key: str, *default: Any) -> Any:
        found = super().pop(key, *default)
        self.preempted.discard(key)
        self.moving.discard(key)
        return found

    def _unindexed(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError("PartitionMap changes only through [], del and pop")

    update = setdefault = popitem = clear = __ior__ = _unindexed


def _mark(keys: set[str], key: str, flagged: bool) -> None:
    if flagged:
        keys.add(key)
    else:
        keys.discard(key)
