"""The interface between the allocator and a placement policy (the project's, or a baseline's).

A policy decides which nodes get how many slots, block by block; the allocator does everything else
(validation, device choice inside a node through `pick`, bookkeeping). Policies only read the state.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from superpod.placement import request as placement_request
from superpod.placement import state as placement_state
from superpod.topology import noderules

NodeSlots = list[tuple[int, int]]  # (node index, number of slots) for one block


@dataclasses.dataclass(frozen=True)
class Levels:
    """The static facts of a shape: the lowest levels that could hold a block and the partition."""

    block: int  # lowest level one of whose domains, empty, holds a block
    partition: int  # lowest level one of whose domains, empty, holds the whole partition


class Policy(Protocol):
    name: str

    def choose(
        self,
        state: placement_state.FreeState,
        shape: placement_request.Shape,
        levels: Levels,
    ) -> list[NodeSlots] | None:
        """Slots per node for each block, or None when the policy finds no placement."""
        ...

    def pick(self, rule: noderules.NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
        """The device mask of one slot inside a node."""
        ...
