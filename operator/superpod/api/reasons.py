"""The words the operator writes for users: condition types, condition and status reasons, Event reasons.

Every reason a status, a condition or an Event carries is a member of one of these enums (with
`partition.PendingReason` and `partition.Phase`), so a reason is spelled once and a user's `kubectl wait
--for=condition=...` or alert rule can be checked against this list. Reasons are CamelCase, as Kubernetes
conventions ask.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    """The conditions of a partition (Allocated, Bound, Degraded, Conflict, RankTableWritten) and of a SuperPod
    (Ready, Degraded, Overlap)."""

    ALLOCATED = "Allocated"
    TERMINATING = "Terminating"
    BOUND = "Bound"
    DEGRADED = "Degraded"
    READY = "Ready"
    QUOTAS_FIT = "QuotasFit"
    RANK_TABLE_WRITTEN = "RankTableWritten"
    MOVING = "Moving"
    CONFLICT = "Conflict"
    OVERLAP = "Overlap"


class ConflictReason(StrEnum):
    """Why a partition's recorded placement (status.allocation) could not be restored or verified: the reason of
    its Conflict condition (True while its devices are quarantined), of its Conflict Event and the `reason` label
    of `superpod_partition_conflicts`."""

    DEVICE_HELD_ELSEWHERE = "DeviceHeldElsewhere"
    """It names devices another partition's placement holds (an older claim keeps them)."""
    DEVICE_MISSING = "DeviceMissing"
    """It names devices its node no longer has (the device list shrank)."""
    NODE_OUTSIDE_SUPER_POD = "NodeOutsideSuperPod"
    """It names a node that is not a member of the SuperPod (its nodeSelector narrowed, the node is gone)."""
    ALLOCATION_INVALID = "AllocationInvalid"
    """It cannot be read, or it was written on a partition whose phase says it holds nothing."""
    RESOLVED = "Resolved"
    """Conflict condition False: the partition was re-placed or released; the message says what it was."""


class PartitionReason(StrEnum):
    """`status.reason` of a partition and the reasons of its conditions (besides `PendingReason`)."""

    PLACED = "Placed"
    """Allocated (and Bound): the partition holds its devices."""
    DEVICE_FAILED = "DeviceFailed"
    """Degraded: a held device failed; the repair is under way or waits for a pod to go."""
    REPAIR_IMPOSSIBLE = "RepairImpossible"
    """Degraded: a held device failed and no healthy room for its slot was found."""
    INVALID_SPEC = "InvalidSpec"
    """Failed: the spec cannot be read."""
    ALL_SLOTS_BOUND = "AllSlotsBound"
    """Bound condition True: every slot has a pod."""
    WAITING_FOR_PODS = "WaitingForPods"
    """Bound condition False: some slot has no pod yet."""
    HEALTHY = "Healthy"
    """Degraded condition False: every held device is healthy."""
    MAKING_ROOM = "MakingRoom"
    """Moving condition True: the partition is being moved to make room for another; its pods are evicted."""
    MOVED = "Moved"
    """Moving condition False: the last move is done; the partition holds its new devices."""
    MOVE_ABANDONED = "MoveAbandoned"
    """Moving condition False: the move was given up (its new devices failed or were taken); the partition
    keeps its devices."""
    PODS_RUNNING = "PodsRunning"
    """Terminating (deletionPolicy WaitForPods): pods of the deleted partition still run; it keeps its devices
    until they finish or are deleted."""
    EVICTING_PODS = "EvictingPods"
    """Terminating (deletionPolicy EvictPods): the pods are being evicted."""
    EVICTION_BLOCKED = "EvictionBlocked"
    """Terminating (deletionPolicy EvictPods), or Moving: an eviction was refused (a PodDisruptionBudget);
    retried with backoff."""


class RankTableReason(StrEnum):
    """Reasons of a partition's RankTableWritten condition (the rank table ConfigMap's writer)."""

    WRITTEN = "Written"
    ANNOTATION_IGNORED = "AnnotationIgnored"
    ALLOCATION_INVALID = "AllocationInvalid"
    WRITE_REFUSED = "WriteRefused"
    CONFIGMAP_NOT_OWNED = "ConfigMapNotOwned"


class SuperPodReason(StrEnum):
    """Reasons of a SuperPod's Ready and Degraded conditions (besides `NodeProblemReason`)."""

    INVALID_SPEC = "InvalidSpec"
    NO_NODES = "NoNodes"
    DISCOVERED = "Discovered"
    HEALTHY = "Healthy"
    NODES_SHARED = "NodesShared"
    """Overlap True: another SuperPod selects some of the same nodes."""
    NO_OVERLAP = "NoOverlap"
    QUOTAS_FIT = "QuotasFit"
    QUOTAS_EXCEED_CAPACITY = "QuotasExceedCapacity"


class NodeProblemReason(StrEnum):
    """Why a member node was left out of a SuperPod or serves it degraded (its Degraded condition, an Event)."""

    DEVICE_INFO_INVALID = "DeviceInfoInvalid"
    NO_DEVICES = "NoDevices"
    NODE_NOT_READY = "NodeNotReady"
    NODE_LOST = "NodeLost"
    UB_SWITCH_FAULT = "UBSwitchFault"
    UB_SWITCH_DEGRADED = "UBSwitchDegraded"
    NODED_PRE_SEPARATE = "NodeDPreSeparate"
    NODED_UNHEALTHY = "NodeDUnHealthy"

    @classmethod
    def noded(cls, node_status: str) -> str:
        """The reason for NodeD's verdict on a node (`PreSeparate`, `UnHealthy`, or another it may add)."""
        return f"NodeD{node_status}"


UB_SWITCH_REASONS = frozenset({NodeProblemReason.UB_SWITCH_FAULT, NodeProblemReason.UB_SWITCH_DEGRADED})
"""Node problems that are a fault of the node's UB (HCCS-L2) switch, out of service or only reported."""


class EventReason(StrEnum):
    """Reasons of the Events the operator posts about partitions (a Pending one posts its `PendingReason`)."""

    ALLOCATED = "Allocated"
    RELEASED = "Released"
    TERMINATING = "Terminating"
    """The partition was deleted while pods of it run: it keeps its devices until they are gone."""
    EVICTED = "Evicted"
    """Pods of a deleted partition (deletionPolicy EvictPods), or of a partition being moved, were evicted."""
    EVICTION_BLOCKED = "EvictionBlocked"
    """An eviction was refused (a PodDisruptionBudget); it is retried with backoff."""
    REPAIRED = "Repaired"
    DEVICE_FAILED = "DeviceFailed"
    RANK_TABLE_WRITTEN = "RankTableWritten"
    RANK_TABLE_COMPLETED = "RankTableCompleted"
    MOVING = "Moving"
    """A move of the partition began, naming the partition it makes room for."""
    MOVED = "Moved"
    """The partition holds its new devices; its pods bind there."""
    MOVE_ABANDONED = "MoveAbandoned"
    """A move could not be finished (its new devices were taken meanwhile); the partition keeps its devices."""
    DEFRAGMENTING = "Defragmenting"
    """Other partitions are being moved to make room for this one."""
    COMPACTION_REFUSED = "CompactionRefused"
    """On a SuperPod (Warning): background compaction cannot run as configured; the message says why."""
    CONFLICT = "Conflict"
    PREEMPTED = "Preempted"
    """On a victim: it lost its devices to the partition the message names."""
    PREEMPTING = "Preempting"
    """On a preemptor: it takes the devices of the partitions the message names once their pods are gone."""
