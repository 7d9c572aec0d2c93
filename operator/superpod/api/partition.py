"""`SuperPodPartition` (namespaced, short name `spp`): a tenant's slice of a SuperPod, placed by the operator."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from superpod.api.common import API_VERSION, Condition, SpecModel, StatusModel

KIND = "SuperPodPartition"
PLURAL = "superpodpartitions"
SINGULAR = "superpodpartition"
SHORT_NAMES = ["spp"]
IN_USE_FINALIZER = "superpod.dev/in-use"
"""Added by the operator to every partition: a deleted partition goes only once no pod of it runs."""


class RepairPolicy(StrEnum):
    AUTO = "Auto"
    MANUAL = "Manual"


class DeletionPolicy(StrEnum):
    """What deleting a partition does to its pods that still run."""

    WAIT_FOR_PODS = "WaitForPods"
    EVICT_PODS = "EvictPods"


class Phase(StrEnum):
    PENDING = "Pending"
    ALLOCATED = "Allocated"
    BOUND = "Bound"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class PendingReason(StrEnum):
    """Why a partition is not placed (status.reason while Pending or Failed)."""

    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    """Fewer free devices than requested."""
    FRAGMENTED = "Fragmented"
    """Enough free devices, but no placement meets the block and tier constraints."""
    UNSATISFIABLE = "Unsatisfiable"
    """No empty SuperPod of this shape could ever hold the request."""
    SUPER_POD_NOT_FOUND = "SuperPodNotFound"
    """spec.superPod names no SuperPod."""
    SUPER_POD_NOT_READY = "SuperPodNotReady"
    """The SuperPod has not discovered its nodes yet."""
    QUOTA_EXCEEDED = "QuotaExceeded"
    """Placing it would take its quota above its nominal share, and borrowing is not possible."""
    PRIORITY_CLASS_NOT_FOUND = "PriorityClassNotFound"
    """spec.priorityClassName names no PriorityClass."""
    PRIORITY_CLASS_FORBIDDEN = "PriorityClassForbidden"
    """spec.priorityClassName names a class Kubernetes reserves for its own components (a system- name, or a
    value above 1000000000): no partition may use it."""
    PREEMPTING = "Preempting"
    """It preempted the partitions its message names and takes their devices once their pods are gone."""
    PREEMPTED = "Preempted"
    """It lost its devices to a partition of higher priority, or to its quota's owner reclaiming them."""


class PartitionSpec(SpecModel):
    """How many devices the partition needs and how tightly they must be connected."""

    super_pod: str = Field(min_length=1, max_length=253)
    """Name of the SuperPod (cluster-scoped) to place the partition on."""
    npus: int = Field(ge=1, le=1_048_576)
    """Number of devices (NPU dies on A3, chips elsewhere, GPUs on GB200) the partition needs."""
    block_size: int | None = Field(default=None, ge=1, le=1_048_576)
    """Devices per block: each block is placed inside one domain of the lowest tier that can hold it
    (like MindCluster's sp-block). Defaults to npus, so the whole partition is one block."""
    max_tier: str | None = Field(default=None, min_length=1, max_length=63)
    """Widest tier the whole partition may span (a tier name of the SuperPod's profile, for example node,
    rack or superpod). Unset: any tier of the SuperPod."""
    devices_per_pod: int | None = Field(default=None, ge=1, le=1024)
    """Devices each training pod uses; the allocation is cut into slots of this size, each on one node.
    Defaults to the largest pod size the profile allows on one node that divides blockSize (16 for 64 NPUs
    on cloudmatrix-384)."""
    whole_nodes: bool = False
    """Take whole nodes only, so no other partition shares a node with this one."""
    deletion_policy: DeletionPolicy = DeletionPolicy.WAIT_FOR_PODS
    """What `kubectl delete` does while pods of the partition still run. The partition keeps its devices,
    slots and rank table until none of its pods runs (phase Terminating, finalizer superpod.dev/in-use).
    WaitForPods: wait for the pods to finish or be deleted by their owner. EvictPods: evict them through the
    Eviction API, honouring PodDisruptionBudgets (a refused eviction is retried with backoff and reported in
    the status and an Event, never bypassed). May be changed at any time, also while the partition is
    Terminating."""
    repair_policy: RepairPolicy = RepairPolicy.AUTO
    """Auto: move slots off failed devices to healthy ones in the same tier. Manual: only report."""
    movable: bool = False
    """The workload tolerates a restart elsewhere (checkpointing training, stateless inference): with the
    SuperPod's defragmentation policy Movable, the operator may move this partition while its pods run, to
    make room for a partition that cannot be placed otherwise. Its pods are then evicted (PodDisruptionBudgets
    are respected) and must be recreated by their controller; they bind to the new devices, ranks in the same
    order, with a new rank table; new pods are refused while the move is under way (status.move, the Moving
    condition). A partition without a running pod may be moved whatever this says (policy Unbound or
    Movable, and by background compaction)."""
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """A scheduling.k8s.io/v1 PriorityClass, as pods name one: its value is the partition's priority (higher
    is admitted first, and may preempt lower partitions of the same quota) and its preemptionPolicy
    (PreemptLowerPriority or Never) says whether the partition may preempt at all. Unset: the globalDefault
    PriorityClass, else priority 0. A name that no PriorityClass has keeps the partition Pending
    (PriorityClassNotFound); so does a class Kubernetes reserves for its own components
    (system-node-critical, system-cluster-critical: PriorityClassForbidden)."""


class Slot(StatusModel):
    """The devices of one pod of the partition, on one node."""

    rank: int = Field(ge=0)
    """First HCCL rank of this slot; ranks are contiguous along the topology."""
    node: str
    """Node the slot's devices are on."""
    devices: list[Annotated[str, Field(description="A device name, for example Ascend910-3.")]]
    """Device names as the device plugin names them (for example Ascend910-0)."""
    domains: (
        dict[str, Annotated[str, Field(description="The domain of this tier holding the slot.")]] | None
    ) = None
    """The slot's coordinates: tier name -> domain identifier (for example rack -> rack-3)."""
    pod: str | None = None
    """The pod bound to this slot at admission, if any."""


class PartitionMove(StatusModel):
    """A move in progress: the devices reserved for the partition, taken once its pods are gone."""

    allocation: list[Slot]
    """The allocation the partition gets when the move is done, one entry per slot, in rank order (slot i of
    the allocation moves to slot i here)."""
    for_partition: str | None = None
    """The partition (namespace/name) the move makes room for."""
    started: str | None = None
    """When the move began (RFC 3339)."""


class PartitionStatus(StatusModel):
    """Where the partition was placed and what state it is in."""

    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    phase: Phase | None = None
    """Pending, Allocated, Bound (every slot has a pod), Degraded (a device failed), Failed, or Terminating
    (deleted while pods of it still run; it keeps its devices until they are gone)."""
    reason: str | None = None
    """CamelCase reason for the phase, for example InsufficientCapacity or Fragmented."""
    message: str | None = None
    """Human-readable explanation of the phase."""
    in_use_by: list[Annotated[str, Field(description="The name of a pod of the partition.")]] | None = None
    """While Terminating: pods of the partition that still run and hold its devices (at most 20 names;
    inUseByCount has the number)."""
    in_use_by_count: int | None = None
    """While Terminating: how many pods of the partition still run."""
    allocation: list[Slot] | None = None
    """The placement, one entry per slot, in rank order."""
    tier_span: str | None = None
    """Lowest tier whose single domain holds the whole partition."""
    node_count: int | None = None
    """Number of nodes the partition uses."""
    estimated_bandwidth_g_bps: float | None = Field(default=None, alias="estimatedBandwidthGBps")
    """Per-device bandwidth of the tier the partition spans, in GB/s, from the profile's tier model."""
    rank_table: str | None = None
    """Name of the ConfigMap holding the HCCL rank table (hccl.json)."""
    move: PartitionMove | None = None
    """Set while the operator moves the partition (its pods running) to make room for another: the devices of
    move.allocation are reserved for it (nobody else gets them), its pods are evicted through the Eviction API
    and new pods are refused until they are all gone; then the allocation becomes move.allocation and this is
    cleared (see the Moving condition)."""
    quota: str | None = None
    """The quota (SuperPod spec.quotas) the partition is charged to; unset when no quota covers its
    namespace."""
    priority: int | None = None
    """The value of its PriorityClass when the operator last decided on it."""
    borrowing: bool | None = None
    """While placed: whether the partition borrows, that is whether some of its devices lie beyond its
    quota's nominal share. A quota's partitions fill its share in admission order (highest priority first,
    then the oldest), so its lowest-priority, youngest partitions are the borrowing ones. While its quota
    borrows, any partition of it may be preempted when the owners of the borrowed devices need them back."""
    borrowed_npus: int | None = None
    """While placed and borrowing: how many of its devices lie beyond its quota's nominal share."""
    preempted_by: str | None = None
    """After a preemption: namespace/name of the partition that took its devices."""
    conditions: list[Condition] | None = None
    """Allocated, Bound and Degraded conditions with reasons; Moving while the partition is moved to make room
    for another (MakingRoom, EvictionBlocked while a PodDisruptionBudget refuses, then Moved or
    MoveAbandoned); RankTableWritten once the rank table could not be written as asked
    (ConfigMapNotOwned, WriteRefused, AllocationInvalid, AnnotationIgnored); Terminating while a deleted
    partition waits for its pods (PodsRunning, EvictingPods, EvictionBlocked)."""


class SuperPodPartition(SpecModel):
    """A tenant's slice of a SuperPod: N devices placed with topology-aware affinity. Its name is at most 63
    characters: its pods name it in their superpod.dev/partition label."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: PartitionSpec
    status: PartitionStatus | None = None


IMMUTABLE_MESSAGE = "is immutable; delete and recreate the partition to change its placement"

CEL_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(self.blockSize) || self.blockSize <= self.npus",
        "message": "blockSize must not exceed npus",
    },
    {
        "rule": "!has(self.blockSize) || self.npus % self.blockSize == 0",
        "message": "npus must be a multiple of blockSize",
    },
    {
        "rule": "!has(self.devicesPerPod) || self.npus % self.devicesPerPod == 0",
        "message": "devicesPerPod must divide npus",
    },
    {
        "rule": "!has(self.devicesPerPod) || !has(self.blockSize) || self.blockSize % self.devicesPerPod == 0",
        "message": "devicesPerPod must divide blockSize, so that no pod straddles two blocks",
    },
]

NAME_RULES: list[dict[str, str]] = [
    {
        # the pods of a partition name it in a label, and a label value holds at most 63 characters
        "rule": "size(self.metadata.name) <= 63",
        "message": "metadata.name must be at most 63 characters: the pods of the partition name it in their "
        "superpod.dev/partition label, whose values stop at 63",
    },
]

# Fields that decide the placement; the operator does not move a placed partition, so they are fixed.
IMMUTABLE_FIELDS = ["superPod", "npus", "blockSize", "maxTier", "devicesPerPod", "wholeNodes"]
