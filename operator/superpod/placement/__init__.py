"""Placement: where each partition goes on a SuperPod. Pure code: no Kubernetes, no I/O, no clock.

The operator's whole interface::

    from superpod import placement, topology

    tree = topology.tree.build(profile, observed_nodes)      # once per change of the node set
    allocator = placement.Allocator(tree)
    for pid, slots in existing:                              # after a restart, from partition statuses
        allocator.restore(pid, slots)                        # -> Placement | Conflict (never double-books)

    request = placement.PlacementRequest.from_spec(partition.spec)
    decision = allocator.plan_partition(request)             # pure: Placement | Rejection
    if isinstance(decision, placement.Placement):
        allocator.commit(pid, decision)                      # ValueError if a device is no longer free
        status.allocation = decision.api_slots()             # tier_span, node_count, bandwidth too
    else:
        status.reason, message = decision.reason, decision.message

    allocator.release(pid)                                   # partition deleted
    affected = allocator.set_health(node, unhealthy, ready=True)   # device plugin update
    allocator.repair(pid, ["node-3/Ascend910-5"])            # -> Placement (committed) | Rejection
    summary = allocator.capacity()                           # -> Capacity: counts, largest blocks,
                                                             #    fragmentation (SuperPod status)

- `Placement.slots` are in rank order; each `PlacedSlot` has `rank`, `node`, `devices`, `domains`
  (tier -> domain id) and `to_api()` gives `api.partition.Slot`.
- `Rejection.reason` is an `api.partition.PendingReason`: InsufficientCapacity (fewer free devices than asked),
  Fragmented (enough free devices, no placement meets the constraints), Unsatisfiable (no empty SuperPod of
  this shape could hold it, or the request is malformed); `message` is one line.
- `plan_defragmentation(allocator, request, policy=MovePolicy.UNBOUND, workloads={pid: Workload(...)})`
  -> `Moves` (moves in a safe order, then the request's placement) | `Rejection`: what to move so that a
  Fragmented request fits (`superpod.placement.defrag`); `moves.carry_out` applies moves to an allocator.
- Reserve nodes are used only by `repair`. Fragmentation is defined in `superpod.placement.state`.
- `baselines` holds the comparison policies (first-fit, random spread, Kueue-like greedy best-fit);
  `trace` generates and replays churn traces for `superpod bench`.
"""

from superpod.placement.allocator import Allocator
from superpod.placement.capacity import Capacity
from superpod.placement.defrag import plan_defragmentation
from superpod.placement.mobility import Policy as MovePolicy
from superpod.placement.mobility import Workload
from superpod.placement.moves import Move, Moves
from superpod.placement.request import PlacementRequest
from superpod.placement.result import Conflict, PlacedSlot, Placement, Rejection

__all__ = [
    "Allocator",
    "Capacity",
    "Conflict",
    "Move",
    "MovePolicy",
    "Moves",
    "PlacedSlot",
    "Placement",
    "PlacementRequest",
    "Rejection",
    "Workload",
    "plan_defragmentation",
]
