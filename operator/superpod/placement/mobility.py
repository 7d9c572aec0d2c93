"""Which placed partitions may move: the SuperPod's policy and what each partition runs."""

from __future__ import annotations

import dataclasses
import enum


class Policy(enum.StrEnum):
    """What may move to place a partition or to compact the SuperPod."""

    NEVER = "Never"  # nothing
    UNBOUND = "Unbound"  # partitions without a running pod
    MOVABLE = "Movable"  # those, and partitions marked movable (their workload tolerates a restart)


@dataclasses.dataclass(frozen=True)
class Workload:
    """What runs on a placed partition, as far as moving it is concerned."""

    running_pods: int = 0  # its pods running now; 0: unbound, nothing to disturb
    movable: bool = False  # spec.movable: its workload tolerates a restart elsewhere


def may_move(policy: Policy, workload: Workload) -> bool:
    if policy is Policy.NEVER:
        return False
    if workload.running_pods == 0:
        return True
    return policy is Policy.MOVABLE and workload.movable
