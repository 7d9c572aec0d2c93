"""Which slot of a partition each admitted pod gets, and the partition status that records it: pure functions.

A slot is bound when `status.allocation[i].pod` names a pod. `decide` takes a partition's current status and a
batch of pod requests and returns a decision per request (a slot, or a denial whose message goes back to the
user through kubectl) and the allocation with the new bindings; `release` unbinds pods; `status.binding` derives
the fields to write: the allocation, the phase (Bound when every slot has a pod, Allocated again when one is
freed) and the Bound condition. The caller writes them with the partition's resourceVersion, so two writers
(two requests, two replicas) never both believe they hold a slot.

Denials say exactly what is wrong: the partition is Pending or Failed (with its reason and message), full,
the pod's index is out of range or taken, or the pod's device request does not fit the slot size.

Slots are copied one level deep: binding changes only a slot's `pod`, so the slots returned share their
`devices` and `domains` with the status they came from (callers replace those, never change them in place).
Deep copies of a 64-slot allocation cost about 0.75 ms each, several per claim, on the webhook's event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from superpod.api import common, reasons
from superpod.api import partition as api_partition
from superpod.controller import podrequest
from superpod.controller import status as derive

JSON = common.JSON
# pods of a Degraded partition still bind (a restarted pod must find its slot); its phase stays Degraded
ADMITTING = derive.BINDABLE | {api_partition.Phase.DEGRADED.value}
NAMED_PODS = 3  # pods named in a "full" denial


@dataclasses.dataclass(frozen=True)
class Granted:
    index: int  # position of the slot in rank order
    slot: JSON  # rank, node, devices (and domains) of the slot


@dataclasses.dataclass(frozen=True)
class Denied:
    message: str


Decision = Granted | Denied


def ordered_allocation(status: JSON | None) -> list[JSON]:
    """A copy of the partition's slots in rank order (each slot copied, its values shared)."""
    return sorted(
        (dict(slot) for slot in (status or {}).get("allocation") or []), key=lambda slot: slot["rank"]
    )


def phase_refusal(partition: str, status: JSON | None, *, deleting: bool = False) -> str | None:
    """Why no pod can bind to the partition now, or None when it can."""
    if deleting:
        return (
            f"partition {partition} is being deleted: it takes no new pods (its devices go back to the SuperPod "
            f"once its running pods are gone); label the pod for another partition"
        )
    status = status or {}
    phase = status.get("phase") or api_partition.Phase.PENDING.value
    conflict: JSON = next(
        (c for c in status.get("conditions") or () if c.get("type") == reasons.ConditionType.CONFLICT),
        {},
    )
    if conflict.get("status") == "True":
        return (
            f"partition {partition} is in conflict ({conflict.get('reason')}: {conflict.get('message')});"
            " pods can bind once the operator has placed it again"
        )
    move = status.get("move")
    if move:
        return (
            f"partition {partition} is being moved to make room for {move.get('forPartition') or 'another'}:"
            " its pods are evicted, and pods bind again, on its new devices, once they are all gone"
        )
    if phase in ADMITTING and status.get("allocation"):
        return None
    reason = status.get("reason") or "NotPlaced"
    message = status.get("message") or "the operator has not placed it yet"
    return f"partition {partition} is {phase} ({reason}: {message}); pods can bind once it is Allocated"


def _size_mismatch(
    partition: str, request: podrequest.PodRequest, sizes: Collection[int], resource: str
) -> str:
    wanted = " or ".join(str(size) for size in sorted(sizes))
    return (
        f"pod {request.pod} requests {request.devices} {resource} but the slots of partition {partition} "
        f"hold {wanted} devices each; request {wanted} or leave the request out (the webhook adds it)"
    )


def decide(
    partition: str,
    status: JSON | None,
    requests: Sequence[podrequest.PodRequest],
    *,
    resource: str,
    deleting: bool = False,
) -> tuple[list[Decision], list[JSON]]:
    """A decision per request (in request order) and the allocation with the granted, non-dry-run bindings."""
    refusal = phase_refusal(partition, status, deleting=deleting)
    if refusal is not None:
        return [Denied(refusal) for _ in requests], ordered_allocation(status)
    allocation = ordered_allocation(status)
    holder = {slot["pod"]: index for index, slot in enumerate(allocation) if slot.get("pod")}
    decisions: list[Decision | None] = [None] * len(requests)
    # pods with an index first, so that a pod without one never takes a slot an indexed pod of the batch names
    order = sorted(range(len(requests)), key=lambda i: requests[i].index is None)
    for position in order:
        request = requests[position]
        decision = _choose(partition, allocation, holder, request, resource)
        if isinstance(decision, Granted) and not request.dry_run:
            allocation[decision.index]["pod"] = request.pod
            holder[request.pod] = decision.index
        decisions[position] = decision
    return [d for d in decisions if d is not None], allocation


def _fits(slot: JSON, request: podrequest.PodRequest) -> bool:
    return request.devices is None or request.devices == len(slot["devices"])


def _choose(
    partition: str,
    allocation: list[JSON],
    holder: dict[str, int],
    request: podrequest.PodRequest,
    resource: str,
) -> Decision:
    sizes = {len(slot["devices"]) for slot in allocation}
    if request.pod in holder:  # admitted again under the same name (a retried create): the same slot
        index = holder[request.pod]
        slot = allocation[index]
        if not _fits(slot, request):
            return Denied(_size_mismatch(partition, request, {len(slot["devices"])}, resource))
        return Granted(index, dict(slot))
    if request.index is not None:
        index = request.index.value
        if index >= len(allocation):
            return Denied(
                f"pod {request.pod} has index {index} ({request.index.source}) but partition {partition} "
                f"has {len(allocation)} slots (indexes 0..{len(allocation) - 1})"
            )
        slot = allocation[index]
        if slot.get("pod"):
            return Denied(
                f"slot {index} (rank {slot['rank']}) of partition {partition}, asked for by pod {request.pod} "
                f"({request.index.source}), is already bound to pod {slot['pod']}"
            )
        if not _fits(slot, request):
            return Denied(_size_mismatch(partition, request, {len(slot["devices"])}, resource))
        return Granted(index, dict(slot))
    free = [index for index, slot in enumerate(allocation) if not slot.get("pod")]
    if not free:
        pods = sorted(slot["pod"] for slot in allocation)
        named = ", ".join(pods[:NAMED_PODS]) + (
            f" and {len(pods) - NAMED_PODS} more" if len(pods) > NAMED_PODS else ""
        )
        return Denied(
            f"partition {partition} is full: all {len(allocation)} slots are bound (to pods {named})"
        )
    fitting = [index for index in free if _fits(allocation[index], request)]
    if not fitting:
        return Denied(_size_mismatch(partition, request, sizes, resource))
    return Granted(fitting[0], dict(allocation[fitting[0]]))


def release(status: JSON | None, pods: Collection[str]) -> list[JSON]:
    """The allocation with `pods` unbound."""
    allocation = ordered_allocation(status)
    for slot in allocation:
        if slot.get("pod") in pods:
            del slot["pod"]
    return allocation
