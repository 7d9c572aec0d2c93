"""Which devices of one node a pod of a given size may take: the profile's per-node rules, on bit masks.

A node's devices are numbered 0..n-1 (local indices) and grouped into *modules* of `module_size` consecutive
devices (A3: HiAM die pairs of 2; 910A: HCCS rings of 4; other profiles: the whole node is one module).
A pod of `size` devices:

- `size` a multiple of the module size takes whole free modules (A3 even counts take whole HiAM pairs,
  910A 4 = one ring, 8 = both rings);
- `size` smaller than a module is confined to one module (910A 1 and 2 inside one ring; A3 a single die);
- any other size is not allowed on a profile with modules.

`allowed_sizes` further restricts the sizes (910A: 1, 2, 4, 8). Picking is best-fit: a small pod goes to the
module with the fewest free devices that still fits (or in the profile's `small_preference` order, 910A's
ring preference 1, 3, 2, 4 free for a single device), so whole modules stay whole for bigger pods.

Capacities are memoised per (mask, size): nodes have at most a few dozen devices and a few thousand distinct
masks occur, so a decision never recounts devices.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class NodeRule:
    """The per-node placement rule of a profile."""

    devices_per_node: int  # nominal devices per node
    module_size: int  # devices per module (== devices_per_node when the node has no modules)
    allowed_sizes: frozenset[int] | None = None  # pod sizes allowed; None: every size the modules permit
    small_preference: tuple[tuple[int, ...], ...] = ()  # per size-1 index: module free counts, best first

    def allows(self, size: int) -> bool:
        """Whether a pod of `size` devices is allowed on this profile at all."""
        if size < 1 or size > self.devices_per_node:
            return False
        if self.allowed_sizes is not None and size not in self.allowed_sizes:
            return False
        return size < self.module_size or size % self.module_size == 0

    def modules(self, device_count: int) -> tuple[int, ...]:
        """Bit masks of the modules of a node with `device_count` local devices."""
        size = self.module_size
        return tuple(
            ((1 << min(size, device_count - start)) - 1) << start for start in range(0, device_count, size)
        )

    def modules_of(self, numbers: Sequence[int]) -> tuple[int, ...]:
        """Bit masks of the modules of a node whose local device i is the device numbered `numbers[i]`.

        Devices share a module when their numbers do (number // module_size), so a node whose device list
        misses a device (Ascend910-2 not reported) keeps its other modules whole and never pairs devices of
        two modules; with numbers 0..n-1 this is `modules(n)`.
        """
        masks: dict[int, int] = {}
        for bit, number in enumerate(numbers):
            module = number // self.module_size
            masks[module] = masks.get(module, 0) | 1 << bit
        return tuple(masks[module] for module in sorted(masks))


@functools.lru_cache(maxsize=1 << 16)
def slot_capacity(rule: NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
    """How many pods of `size` devices fit into the `free` devices of a node with these modules."""
    if size < rule.module_size:
        return sum((free & module).bit_count() // size for module in modules)
    per_slot = size // rule.module_size
    whole = sum(1 for module in modules if free & module == module and module.bit_count() == rule.module_size)
    return whole // per_slot


def _small_order(rule: NodeRule, size: int, module_free: int) -> tuple[int, int]:
    """Sort key of a module for a small pod: preferred free counts first, else the tightest fit."""
    if size - 1 < len(rule.small_preference):
        order = rule.small_preference[size - 1]
        if module_free in order:
            return (0, order.index(module_free))
    return (1, module_free)


@functools.lru_cache(maxsize=1 << 16)
def pick(rule: NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
    """The device mask for one pod of `size` devices, best-fit; 0 when none fits."""
    if size < rule.module_size:
        best_key: tuple[tuple[int, int], int] | None = None
        best_module = 0
        for index, module in enumerate(modules):
            count = (free & module).bit_count()
            if count < size:
                continue
            key = (_small_order(rule, size, count), index)
            if best_key is None or key < best_key:
                best_key, best_module = key, module
        if best_key is None:
            return 0
        return lowest_bits(free & best_module, size)
    per_slot = size // rule.module_size
    chosen = 0
    taken = 0
    for module in modules:
        if taken == per_slot:
            break
        if free & module == module and module.bit_count() == rule.module_size:
            chosen |= module
            taken += 1
    return chosen if taken == per_slot else 0


def pick_first(rule: NodeRule, modules: tuple[int, ...], free: int, size: int) -> int:
    """Like `pick` but first-fit (lowest devices that satisfy the rule): the baselines' device choice."""
    if size < rule.module_size:
        for module in modules:
            if (free & module).bit_count() >= size:
                return lowest_bits(free & module, size)
        return 0
    return pick(rule, modules, free, size)


def lowest_bits(mask: int, count: int) -> int:
    """The `count` lowest set bits of `mask`."""
    out = 0
    while count:
        low = mask & -mask
        out |= low
        mask ^= low
        count -= 1
    return out
