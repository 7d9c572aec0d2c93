"""Each profile's per-node rule: which device sets a pod of a given size may take, and which it prefers."""

from __future__ import annotations

import pytest
from superpod.topology import noderules, profiles

A3 = profiles.CLOUDMATRIX_384.rule
A910 = profiles.ASCEND_910A.rule
B910 = profiles.ASCEND_910B.rule
A3_MODULES = A3.modules(16)
A910_MODULES = A910.modules(8)
B910_MODULES = B910.modules(8)


def mask(*devices: int) -> int:
    return sum(1 << device for device in devices)


def devices(value: int) -> list[int]:
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


@pytest.mark.parametrize(
    ("rule", "size", "allowed"),
    [
        pytest.param(A3, 1, True, id="A3 allows a single die"),
        pytest.param(A3, 2, True, id="A3 allows a HiAM pair"),
        pytest.param(A3, 3, False, id="A3 refuses an odd count above one"),
        pytest.param(A3, 16, True, id="A3 allows a whole node of 16 dies"),
        pytest.param(A3, 18, False, id="A3 refuses more than a node"),
        pytest.param(A910, 2, True, id="910A allows two in a ring"),
        pytest.param(A910, 3, False, id="910A refuses three"),
        pytest.param(A910, 4, True, id="910A allows a whole ring"),
        pytest.param(A910, 6, False, id="910A refuses six"),
        pytest.param(A910, 8, True, id="910A allows the whole node"),
        pytest.param(B910, 5, True, id="910B allows any count on its one fabric"),
    ],
)
def test_allowed_pod_sizes(rule, size, allowed):
    assert rule.allows(size) is allowed


@pytest.mark.parametrize(
    ("rule", "modules", "free", "size", "expected"),
    [
        pytest.param(A3, A3_MODULES, mask(0, 1, 2, 3), 2, 2, id="A3 two free pairs host two pairs"),
        pytest.param(
            A3, A3_MODULES, mask(1, 2, 5, 6), 2, 0, id="A3 four free dies from four pairs host no pair"
        ),
        pytest.param(A3, A3_MODULES, mask(1, 2, 5, 6), 1, 4, id="A3 four free dies host four single dies"),
        pytest.param(A3, A3_MODULES, (1 << 16) - 1, 16, 1, id="A3 an empty node hosts one pod of 16"),
        pytest.param(A910, A910_MODULES, mask(0, 1, 2, 4, 5), 2, 2, id="910A pairs count per ring"),
        pytest.param(A910, A910_MODULES, mask(0, 1, 2, 4), 4, 0, id="910A four needs a whole ring"),
        pytest.param(A910, A910_MODULES, mask(*range(8)), 8, 1, id="910A eight needs both rings"),
    ],
)
def test_slot_capacity(rule, modules, free, size, expected):
    assert noderules.slot_capacity(rule, modules, free, size) == expected


@pytest.mark.parametrize(
    ("rule", "modules", "free", "size", "expected"),
    [
        pytest.param(A3, A3_MODULES, mask(1, 2, 3), 1, [1], id="A3 a single die takes the half-used pair"),
        pytest.param(A3, A3_MODULES, mask(1, 2, 3, 4, 5), 2, [2, 3], id="A3 a pair takes a whole free pair"),
        pytest.param(
            A3, A3_MODULES, mask(0, 3, 4, 5, 6, 7), 4, [4, 5, 6, 7], id="A3 four dies take two whole pairs"
        ),
        pytest.param(
            A910,
            A910_MODULES,
            mask(0, 1, 2, 4),
            1,
            [4],
            id="910A a single device prefers the ring with one free",
        ),
        pytest.param(
            A910, A910_MODULES, mask(0, 1, 4, 5, 6), 1, [4], id="910A then the ring with three free over two"
        ),
        pytest.param(
            A910,
            A910_MODULES,
            mask(0, 1, 2, 3, 4, 5),
            1,
            [4],
            id="910A then the ring with two free over four",
        ),
        pytest.param(
            A910,
            A910_MODULES,
            mask(0, 1, 2, 4, 5),
            2,
            [4, 5],
            id="910A a pair prefers the ring with two free",
        ),
        pytest.param(
            A910, A910_MODULES, mask(0, 1, 2, 3, 5), 4, [0, 1, 2, 3], id="910A four take the whole free ring"
        ),
        pytest.param(
            A910, A910_MODULES, mask(0, 1, 2, 4, 5, 6), 4, [], id="910A four across rings is refused"
        ),
    ],
)
def test_best_fit_pick(rule, modules, free, size, expected):
    assert devices(noderules.pick(rule, modules, free, size)) == expected


def test_first_fit_pick_takes_the_lowest_devices_the_rule_allows():
    assert devices(noderules.pick_first(A3, A3_MODULES, mask(1, 2, 3), 1)) == [1]
    assert devices(noderules.pick_first(A910, A910_MODULES, mask(0, 1, 2, 4), 1)) == [0]


@pytest.mark.parametrize(
    ("rule", "numbers", "expected"),
    [
        pytest.param(A3, list(range(16)), A3_MODULES, id="A3 dies 0..15 are the positional pairs"),
        pytest.param(
            A3,
            [0, 1, 3, 4, 5],
            (mask(0, 1), mask(2), mask(3, 4)),
            id="A3 without die 2: die 3 pairs with none",
        ),
        pytest.param(A910, [0, 1, 2, 3, 5, 6], (mask(0, 1, 2, 3), mask(4, 5)), id="910A rings by number"),
        pytest.param(B910, [1, 4, 7], (mask(0, 1, 2),), id="910B is one module whatever is missing"),
    ],
)
def test_modules_follow_the_device_numbers(rule, numbers, expected):
    assert rule.modules_of(numbers) == expected
