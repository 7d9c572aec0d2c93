"""Which replica should own which SuperPod: rendezvous (highest random weight) hashing, pure.

Every replica computes the same answer from the same set of live replicas, with no coordination: a SuperPod goes
to the replica whose hash of (SuperPod, replica) is highest. When a replica joins, only the SuperPods it now wins
move (about 1/N of them), and when one leaves, only its own move, spread over the others. Over a few SuperPods
hashing alone can be uneven, so `assign` bounds each replica's load (the counts differ by one at most): a
SuperPod whose first choice is full goes to its next. The result depends only on the two sets, so every
replica that sees the same members agrees; a join or a leave moves few SuperPods besides the ones it must.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(superpod: str, replica: str) -> int:
    """The replica's weight for the SuperPod: a stable 64-bit hash of the pair (the same on every replica)."""
    digest = hashlib.blake2b(f"{superpod}\x00{replica}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preference(superpod: str, replicas: Iterable[str]) -> list[str]:
    """The replicas in the SuperPod's order of preference (highest weight first; ties by name)."""
    return sorted(replicas, key=lambda replica: (-weight(superpod, replica), replica))


def assign(superpods: Iterable[str], replicas: Iterable[str]) -> dict[str, str]:
    """SuperPod -> the replica that should own it; the counts differ by one at most.

    Pairs are taken by weight, highest first: a SuperPod goes to the first replica of its pairs that still has
    room (each may hold floor(SuperPods / replicas), and the first ones to reach that one more, until the
    remainder is used up). The capacities add up to the SuperPods, so every one is placed.
    """
    members = sorted(set(replicas))
    names = sorted(set(superpods))
    if not members:
        return {}
    floor, extra = divmod(len(names), len(members))
    pairs = sorted(
        ((weight(name, member), name, member) for name in names for member in members), reverse=True
    )
    owner: dict[str, str] = {}
    counts = dict.fromkeys(members, 0)
    for _, name, member in pairs:
        if name in owner:
            continue
        count = counts[member]
        if count < floor or (count == floor and extra > 0):
            owner[name] = member
            counts[member] = count + 1
            if count == floor:
                extra -= 1
    return owner
