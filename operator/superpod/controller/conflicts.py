"""Recorded placements that cannot be restored or verified, and overlapping SuperPods. Pure.

A partition's placement lives in its status (`status.allocation`); the operator rebuilds its books from there
at start, when a SuperPod's spec or nodes change, and whenever a status changes. A recorded placement that names
a device its node no longer has, a node outside the SuperPod, or a device another partition's placement holds is
a conflict: never dropped, never silently accepted. The rule (docs/operator.md, "Conflicts"):

- the claim already in the books keeps contested devices; when the books are rebuilt from scratch (a start),
  claims are restored in the order they were written (the Allocated condition's lastTransitionTime, then
  creationTimestamp, then name), so the claim written first keeps them;
- the losing partition's other devices (those that exist and nobody else holds) are quarantined: it holds them,
  so they are never handed to anyone else, while its pods may still run on them;
- once no slot of the losing partition has a pod (at once if none had), it releases them and is placed afresh
  (or waits in the queue with its Pending reason).

A held partition whose status names devices it does not hold (a status edited by hand) keeps what the books
say; the status is written back. `overlaps` finds SuperPods whose member nodes intersect: the older one (by
creationTimestamp, then name) keeps the shared nodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from superpod import placement
from superpod.api import common, reasons, views
from superpod.api import partition as api_partition

JSON = common.JSON
Reason = reasons.ConflictReason
NAMED = 8  # devices or nodes named in one message; the rest are counted
PLACED_PHASES = frozenset(
    {api_partition.Phase.ALLOCATED.value, api_partition.Phase.BOUND.value, api_partition.Phase.DEGRADED.value}
)
# a deleted partition that pods still hold is Terminating (controller/inuse.py), placed as before
TERMINATING_PHASES = PLACED_PHASES | {api_partition.Phase.TERMINATING.value}


@dataclasses.dataclass(frozen=True)
class Record:
    """One partition in conflict: why, which devices, who else holds them."""

    reason: Reason
    message: str  # one line: the devices and the other holder
    devices: tuple[str, ...]  # node/device (node/* for a whole node) in conflict
    holders: tuple[str, ...]  # partitions holding them (empty for missing devices)
    keep: bool = False  # the books stand (a held partition's status was edited): only the status is rewritten
    announced: bool = False  # its Event was posted


def named(items: Sequence[str], limit: int = NAMED) -> str:
    """`a, b, c` with at most `limit` items, then `(and N more)`."""
    shown = ", ".join(items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def classify(conflict: placement.Conflict, superpod: str, *, nodes: Iterable[str] = ()) -> Record:
    """The record of a `placement.Conflict` from `Allocator.restore`; `nodes` are the SuperPod's member nodes."""
    members = set(nodes)
    devices = tuple(conflict.devices)
    if conflict.held_by:
        reason = Reason.DEVICE_HELD_ELSEWHERE
        what = f"devices held by {named(list(conflict.held_by))}"
    elif any(device.endswith("/*") and device[:-2] not in members for device in devices):
        reason = Reason.NODE_OUTSIDE_SUPER_POD
        outside = sorted({d[:-2] for d in devices if d.endswith("/*")})
        what = f"node(s) {named(outside)} that are not members of SuperPod {superpod}"
    elif devices:
        reason = Reason.DEVICE_MISSING
        what = "devices their nodes no longer have"
    else:
        reason = Reason.ALLOCATION_INVALID
        what = "no usable slot"
    message = f"status.allocation names {what}: {named(list(devices))}" if devices else conflict.message
    return Record(reason, message, devices, tuple(conflict.held_by))


def invalid(key: str, phase: str, detail: str) -> Record:
    """The record of an allocation the operator cannot use at all (unreadable, or on an unplaced phase)."""
    return Record(Reason.ALLOCATION_INVALID, f"status.allocation of {key} {detail} (phase {phase})", (), ())


def claim_order(obj: JSON) -> tuple[str, str, str]:
    """Restore order of recorded placements: the claim written first (Allocated since), then created, then name."""
    view = views.Partition(obj)
    since = next(
        (
            str(c.get("lastTransitionTime") or "")
            for c in view.status.get("conditions") or []
            if c.get("type") == reasons.ConditionType.ALLOCATED and c.get("status") == "True"
        ),
        "",
    )
    return (since or view.created or "~", view.created, view.key)


def restorable(
    allocator: placement.Allocator, slots: Iterable[api_partition.Slot | placement.PlacedSlot]
) -> list[api_partition.Slot]:
    """The part of a recorded placement the allocator can hold: devices that exist and nobody holds, by slot."""
    tree = allocator.tree
    out = []
    for slot in slots:
        node = tree.by_name.get(slot.node)
        if node is None:
            continue
        index = tree.device_index[node.name]
        taken = 0
        for mask in allocator.holders(node.index).values():
            taken |= mask
        kept = [d for d in dict.fromkeys(slot.devices) if d in index and not taken >> index[d] & 1]
        if kept:
            out.append(api_partition.Slot(rank=slot.rank, node=slot.node, devices=kept, domains={}))
    return out


def verify(allocator: placement.Allocator, key: str, obj: JSON) -> placement.Conflict | None:
    """A held partition whose status names devices that are not its own and that are missing or held by
    another partition (a status edited by hand, not one a write of its own has yet to catch up with)."""
    held = allocator.placement_of(key)
    if held is None:
        return None
    own = set(held.device_ids())
    tree = allocator.tree
    foreign: list[str] = []
    holders: set[str] = set()
    for slot in views.Partition(obj).allocation:
        node = tree.by_name.get(str(slot.get("node")))
        for device in slot.get("devices") or []:
            name = f"{slot.get('node')}/{device}"
            if name in own:
                continue
            if node is None or device not in tree.device_index[node.name]:
                foreign.append(name if node is not None else f"{slot.get('node')}/*")
                continue
            bit = 1 << tree.device_index[node.name][device]
            others = [pid for pid, mask in allocator.holders(node.index).items() if mask & bit and pid != key]
            if others:
                foreign.append(name)
                holders.update(others)
    if not foreign:
        return None
    foreign = list(dict.fromkeys(foreign))
    message = f"partition {key} status names devices it does not hold: {named(foreign)}"
    return placement.Conflict(key, message, tuple(foreign), tuple(sorted(holders)))


@dataclasses.dataclass(frozen=True)
class Overlap:
    """SuperPods selecting some of the same nodes, seen from one of them."""

    others: tuple[str, ...]  # the other SuperPods, sorted
    shared: tuple[str, ...]  # the nodes it shares with them, sorted
    ceded: frozenset[str]  # shared nodes an older SuperPod keeps: this one does not use them

    def message(self, name: str) -> str:
        if self.ceded:
            rule = f"the older SuperPod uses them; {name} does not use {len(self.ceded)} of them"
        else:
            rule = f"{name} is the older and keeps them"
        return (
            f"SuperPod {name} shares {len(self.shared)} node(s) with {named(list(self.others))}:"
            f" {named(list(self.shared))}; {rule}"
        )


def overlaps(members: Mapping[str, tuple[str, frozenset[str]]]) -> dict[str, Overlap]:
    """`members`: SuperPod name -> (creationTimestamp, its member nodes). Per SuperPod sharing a node, who with
    and which shared nodes it cedes (each shared node goes to the oldest SuperPod selecting it)."""
    owner: dict[str, str] = {}
    selecting: dict[str, list[str]] = {}
    order = sorted(members, key=lambda name: (members[name][0] or "~", name))
    for name in order:
        for node in members[name][1]:
            owner.setdefault(node, name)
            selecting.setdefault(node, []).append(name)
    out: dict[str, Overlap] = {}
    for name in order:
        shared = sorted(node for node in members[name][1] if len(selecting[node]) > 1)
        if not shared:
            continue
        others = sorted({other for node in shared for other in selecting[node] if other != name})
        ceded = frozenset(node for node in shared if owner[node] != name)
        out[name] = Overlap(tuple(others), tuple(shared), ceded)
    return out
