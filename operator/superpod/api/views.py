"""Typed reading of partitions and SuperPods as the operator holds them: the API's plain dicts, not copied.

The operator keeps every object as the API served it (watch events, replies to its writes) and reads a few
fields of it per decision; parsing each one into the pydantic models of this package would cost a validation per
watch event on the operator's one event loop. These views are the one place that knows where a field lives and
what it is when absent (the defaults the CRD applies), so no module reads `obj["spec"]["superPod"]` on its own.
A view holds a reference: it sees the object as it is, and never changes it.

`newest` decides which of two copies of one object is the later one (the mirror's, a write's reply, a read).
"""

from __future__ import annotations

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod

_PREEMPTED = api_partition.PendingReason.PREEMPTED.value

JSON = common.JSON


def partition_key(namespace: str, name: str) -> str:
    """How the operator names a partition: `namespace/name`."""
    return f"{namespace}/{name}"


class Partition:
    """A SuperPodPartition object, read through typed properties."""

    __slots__ = ("obj",)

    def __init__(self, obj: JSON) -> None:
        self.obj = obj

    # ---- metadata ------------------------------------------------------------------------------------

    @property
    def metadata(self) -> JSON:
        return self.obj.get("metadata") or {}

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def key(self) -> str:
        return partition_key(self.namespace, self.name)

    @property
    def uid(self) -> str | None:
        uid = self.metadata.get("uid")
        return str(uid) if uid is not None else None

    @property
    def generation(self) -> int | None:
        generation = self.metadata.get("generation")
        return int(generation) if generation is not None else None

    @property
    def created(self) -> str:
        """The creationTimestamp (RFC 3339, so it sorts in time order); "" before the API set it."""
        return str(self.metadata.get("creationTimestamp") or "")

    @property
    def deleting(self) -> bool:
        return bool(self.metadata.get("deletionTimestamp"))

    @property
    def protected(self) -> bool:
        """Whether it carries the operator's in-use finalizer."""
        return api_partition.IN_USE_FINALIZER in (self.metadata.get("finalizers") or ())

    # ---- spec ----------------------------------------------------------------------------------------

    @property
    def spec(self) -> JSON:
        return self.obj.get("spec") or {}

    @property
    def superpod(self) -> str:
        return str(self.spec.get("superPod", ""))

    @property
    def npus(self) -> int:
        return int(self.spec.get("npus") or 0)

    @property
    def priority_class_name(self) -> str | None:
        name = self.spec.get("priorityClassName")
        return str(name) if name else None

    @property
    def whole_nodes(self) -> bool:
        return bool(self.spec.get("wholeNodes", False))

    @property
    def repair_policy(self) -> str:
        return str(self.spec.get("repairPolicy") or api_partition.RepairPolicy.AUTO.value)

    @property
    def movable(self) -> bool:
        """spec.movable: its workload tolerates a restart elsewhere."""
        return bool(self.spec.get("movable", False))

    @property
    def deletion_policy(self) -> str:
        return str(self.spec.get("deletionPolicy") or api_partition.DeletionPolicy.WAIT_FOR_PODS.value)

    def parse_spec(self) -> api_partition.PartitionSpec:
        """The spec as the model reads it; pydantic.ValidationError when it cannot be read."""
        return api_partition.PartitionSpec.model_validate(self.spec)

    # ---- status --------------------------------------------------------------------------------------

    @property
    def status(self) -> JSON:
        return self.obj.get("status") or {}

    @property
    def phase(self) -> str:
        """status.phase; Pending before the operator wrote one."""
        return str(self.status.get("phase") or api_partition.Phase.PENDING.value)

    @property
    def handled(self) -> bool:
        """Whether the operator wrote a status phase (placed, Pending with its reason, or Failed)."""
        return bool(self.status.get("phase"))

    @property
    def reason(self) -> str:
        return str(self.status.get("reason") or "")

    @property
    def evicting(self) -> bool:
        """Preempted, its pods not all gone yet: it keeps its allocation in status (so that a restarted
        operator still holds its devices) but is no longer placed."""
        # the reason first, straight from the dict: the operator's pass asks this of every placed partition
        return (
            (self.obj.get("status") or {}).get("reason") == _PREEMPTED
            and self.phase == api_partition.Phase.PENDING.value
            and self.placed
        )

    @property
    def allocation(self) -> list[JSON]:
        """status.allocation: one slot per pod (rank, node, devices, domains, pod), [] when unplaced."""
        return self.status.get("allocation") or []

    @property
    def placed(self) -> bool:
        return bool(self.allocation)

    @property
    def bound_pods(self) -> set[str]:
        """The pods named by a slot."""
        return {str(slot["pod"]) for slot in self.allocation if slot.get("pod")}

    @property
    def any_bound(self) -> bool:
        return any(slot.get("pod") for slot in self.allocation)

    @property
    def bound_devices(self) -> set[str]:
        """`node/device` of every device of a slot that has a pod."""
        return {
            f"{slot['node']}/{device}"
            for slot in self.allocation
            if slot.get("pod")
            for device in slot.get("devices") or []
        }

    @property
    def move(self) -> JSON | None:
        """status.move: the move in progress (allocation, forPartition, started), or None."""
        move = self.status.get("move")
        return move if move else None

    def slots(self) -> list[api_partition.Slot]:
        """status.allocation as the model reads it; pydantic.ValidationError when it cannot be read."""
        return [api_partition.Slot.model_validate(slot) for slot in self.allocation]


class SuperPod:
    """A SuperPod object, read through typed properties."""

    __slots__ = ("obj",)

    def __init__(self, obj: JSON) -> None:
        self.obj = obj

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def generation(self) -> int | None:
        generation = (self.obj.get("metadata") or {}).get("generation")
        return int(generation) if generation is not None else None

    @property
    def spec(self) -> JSON:
        return self.obj.get("spec") or {}

    @property
    def status(self) -> JSON | None:
        return self.obj.get("status")

    @property
    def defragmentation(self) -> JSON:
        return self.spec.get("defragmentation") or {}

    @property
    def defragmentation_policy(self) -> str:
        """spec.defragmentation.policy: Never, Unbound (the default) or Movable."""
        default = api_superpod.DefragmentationPolicy.UNBOUND.value
        return str(self.defragmentation.get("policy") or default)

    @property
    def compact_above(self) -> float | None:
        """spec.defragmentation.compactAbove: the fragmentation above which compaction runs (None: never)."""
        value = self.defragmentation.get("compactAbove")
        return float(value) if value is not None else None

    @property
    def compact_tier(self) -> str | None:
        """spec.defragmentation.compactTier (None: the node tier)."""
        value = self.defragmentation.get("compactTier")
        return str(value) if value else None

    @property
    def max_moves_per_hour(self) -> int:
        """spec.defragmentation.maxMovesPerHour (default 10)."""
        value = self.defragmentation.get("maxMovesPerHour")
        return int(value) if value is not None else api_superpod.Defragmentation().max_moves_per_hour


def newest(one: JSON | None, other: JSON | None) -> JSON | None:
    """The later of two copies of one object (by resourceVersion), or the one there is.

    resourceVersions are opaque by contract but etcd revisions in practice: `one` wins only when both are
    numbers and its is the greater; otherwise, and when the copies are of different objects (uid), `other`
    wins. A wrong guess costs one 409 and a read.
    """
    if one is None or other is None:
        return other or one
    mine, theirs = one["metadata"], other["metadata"]
    if mine.get("uid") != theirs.get("uid"):
        return other
    version, their_version = str(mine.get("resourceVersion")), str(theirs.get("resourceVersion"))
    if version.isdecimal() and their_version.isdecimal() and int(version) > int(their_version):
        return one
    return other
