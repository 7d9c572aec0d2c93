"""Moves: placed partitions carried to new devices, slot for slot, and an order that keeps every step safe.

A `Move` gives a placed partition new devices for some of its slots; its ranks, pod size and blocks stay
(`Allocator.relocated` builds the new placement). Carrying a move out stops the partition's pods, releases
its old devices and gives it the new ones, so a move is safe at its step when each new device is free then:
free at the start, freed by an earlier move, or the partition's own. No device is ever held by two
partitions at one step. `safe_order` finds such an order, or None when two moves wait for each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from superpod.placement import allocator as placement_allocator
from superpod.placement import result


@dataclasses.dataclass(frozen=True)
class Move:
    """One partition carried to new devices."""

    partition_id: str
    before: result.Placement
    after: result.Placement  # same ranks, slot i of `after` is slot i of `before` moved (or kept)
    devices_moved: int  # devices of the slots whose node or devices change
    pods_disturbed: int  # the partition's running pods: all restart, its rank table changes

    @property
    def slots_moved(self) -> int:
        return sum(
            1
            for old, new in zip(self.before.slots, self.after.slots, strict=True)
            if (old.node, old.devices) != (new.node, new.devices)
        )


@dataclasses.dataclass(frozen=True)
class Moves:
    """What makes a request placeable: moves, in a safe order, then the request's own placement."""

    moves: tuple[Move, ...]  # carry them out in this order
    placement: result.Placement  # the request's placement once every move is done
    exact: bool  # an exhaustive search proved that no cheaper set of moves exists

    @property
    def devices_moved(self) -> int:
        return sum(move.devices_moved for move in self.moves)

    @property
    def pods_disturbed(self) -> int:
        return sum(move.pods_disturbed for move in self.moves)

    @property
    def partitions_moved(self) -> int:
        return len(self.moves)

    def cost(self) -> tuple[int, int, int]:
        """What the planner minimises, in this order: devices moved, running pods disturbed, partitions."""
        return (self.devices_moved, self.pods_disturbed, self.partitions_moved)


def devices(placement: result.Placement) -> set[tuple[str, str]]:
    """Every (node, device) a placement holds (whole nodes hold all their devices)."""
    return {(node, device) for node, names in placement.held for device in names}


def safe_order(moves: Iterable[Move]) -> tuple[Move, ...] | None:
    """The moves in an order where each one's new devices are free at its step (None if there is none).

    A move waits for every other move whose old devices it takes; among moves ready at once the given
    order is kept, so the answer is deterministic."""
    pending = list(moves)
    old = [devices(move.before) for move in pending]
    new = [devices(move.after) for move in pending]
    waits = [{j for j in range(len(pending)) if j != i and new[i] & old[j]} for i in range(len(pending))]
    done: set[int] = set()
    ordered: list[Move] = []
    while len(ordered) < len(pending):
        ready = next((i for i in range(len(pending)) if i not in done and waits[i] <= done), None)
        if ready is None:
            return None
        done.add(ready)
        ordered.append(pending[ready])
    return tuple(ordered)


def carry_out(allocator: placement_allocator.Allocator, moves: Sequence[Move]) -> None:
    """Apply `moves` in their order to `allocator` (the bench and trial runs do; the operator moves one
    partition at a time, as its pods go). ValueError, with the moves before it done, when one is refused."""
    for move in moves:
        outcome = allocator.relocate(move.partition_id, move.after)
        if isinstance(outcome, result.Conflict):
            raise ValueError(outcome.message)
