"""`SuperPod` (cluster-scoped, short name `spod`): one physical SuperPoD, its interconnect tiers and its nodes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from superpod.api.common import API_VERSION, Condition, LabelSelector, SpecModel, StatusModel

KIND = "SuperPod"
PLURAL = "superpods"
SINGULAR = "superpod"
SHORT_NAMES = ["spod"]


class Profile(StrEnum):
    """Hardware profiles the operator knows (docs/placement.md lists their tiers)."""

    CLOUDMATRIX_384 = "cloudmatrix-384"
    ATLAS_950 = "atlas-950"
    ATLAS_960 = "atlas-960"
    ATLAS_950_SUPERCLUSTER = "atlas-950-supercluster"
    ASCEND_910A = "ascend-910a"
    ASCEND_910B = "ascend-910b"
    NVIDIA_GB200_NVL72 = "nvidia-gb200-nvl72"
    CUSTOM = "custom"


class Isolation(StrEnum):
    """Who may use the devices of a SuperPod's member nodes."""

    PARTITIONS = "Partitions"
    NONE = "None"


ISOLATION_TAINT = "superpod.dev/partitions-only"
"""Key of the NoSchedule taint on the member nodes of a SuperPod with isolation Partitions (value: its name)."""


class DefragmentationPolicy(StrEnum):
    """What the operator may move to place a partition that is Pending because the SuperPod is fragmented."""

    NEVER = "Never"
    UNBOUND = "Unbound"
    MOVABLE = "Movable"


class Defragmentation(SpecModel):
    """When a partition is Pending Fragmented (enough free devices, but not together), the operator may move
    other partitions to make room for it: the fewest devices, then running pods, then partitions. Optionally
    it also compacts in the background (compactAbove)."""

    policy: DefragmentationPolicy = DefragmentationPolicy.UNBOUND
    """What may move: Never (nothing, and no compaction); Unbound (the default: partitions without a running
    pod, whose move disturbs nobody); Movable (those, and partitions with spec.movable true: their pods are
    evicted through the Eviction API, PodDisruptionBudgets respected, and recreated by their controller on the
    new devices)."""
    max_moves_per_hour: int = Field(default=10, ge=0, le=10_000)
    """At most this many partitions are moved in any hour, to make room and by compaction together; a plan
    needing more waits. 0 moves nothing."""
    compact_above: float | None = Field(default=None, ge=0, le=1)
    """Background compaction: while the fragmentation of compactTier (the share of free devices inside domains
    that partitions already use, as the metric superpod_fragmentation_ratio shows) is above this value, the
    operator moves partitions without a running pod out of the least used domains, so whole nodes (or racks)
    come free again. Never a running pod; within maxMovesPerHour; at most one pass every 10 seconds, none
    while a move makes room for a partition. Unset (the default): no background compaction."""
    compact_tier: str | None = Field(default=None, min_length=1, max_length=63)
    """The tier whose domains compaction reopens: node (the default) or a wider tier of the profile, for
    example rack."""


class Borrowing(StrEnum):
    """Whether a quota's tenant may use more than its nominal share when others leave theirs idle."""

    ALLOWED = "Allowed"
    NEVER = "Never"


MAX_QUOTAS = 32
MAX_QUOTA_NAMESPACES = 64


class QuotaSpec(SpecModel):
    """One tenant's nominal share of the SuperPod: the namespaces it covers and how many devices it is owed."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """The tenant's name (a DNS label), shown in partition status, Events and metrics."""
    namespaces: (
        list[Annotated[str, Field(min_length=1, max_length=63, description="A namespace name.")]] | None
    ) = Field(default=None, min_length=1, max_length=MAX_QUOTA_NAMESPACES)
    """Namespaces whose partitions this quota covers. Set this or namespaceSelector, not both."""
    namespace_selector: LabelSelector | None = None
    """Namespaces whose labels match are covered by this quota. Set this or namespaces, not both. A namespace
    that two quotas cover is charged to the first in the list."""
    npus: int = Field(ge=0, le=1_048_576)
    """The tenant's nominal share, in devices: partitions of its namespaces within this many devices are
    admitted before any partition over its share, and devices of it that others borrowed are taken back by
    preemption when the tenant needs them. The shares of all quotas may not exceed the SuperPod's usable
    (non-reserve) devices; status condition QuotasFit says whether they do."""
    borrowing: Borrowing = Borrowing.ALLOWED
    """Allowed: the tenant may use idle devices of other quotas above its share (and loses them by preemption
    when their owner needs them back). Never: its partitions wait with reason QuotaExceeded rather than go
    above its share."""


class TierSpec(SpecModel):
    """One interconnect tier of a custom topology, listed from the tightest (smallest) to the widest."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Tier name, used by partitions' maxTier (for example node, rack, superpod)."""
    domain_size: int = Field(ge=1, le=1_048_576)
    """Devices in one domain of this tier; a multiple of the previous tier's domainSize."""
    bandwidth_g_bps: float = Field(ge=0, alias="bandwidthGBps")
    """Bandwidth per device inside one domain of this tier, in GB/s, one direction."""
    latency_microseconds: float | None = Field(default=None, ge=0)
    """Typical one-way latency inside one domain of this tier, in microseconds."""


class SuperPodSpec(SpecModel):
    """The hardware profile of the SuperPoD and which Kubernetes nodes belong to it."""

    profile: Profile
    """Hardware profile: cloudmatrix-384, atlas-950, atlas-960, atlas-950-supercluster, ascend-910a,
    ascend-910b, nvidia-gb200-nvl72 or custom (then tiers is required)."""
    tiers: list[TierSpec] | None = Field(default=None, min_length=1, max_length=8)
    """Interconnect tiers, tightest first; only with profile custom, where it is required."""
    node_selector: LabelSelector | None = None
    """Nodes whose labels match belong to this SuperPoD (ANDed with superPodID when both are set)."""
    super_pod_id: int | None = Field(default=None, ge=0, alias="superPodID")
    """Nodes whose device-plugin label huawei.com/topotree.superpodid equals this value belong to this
    SuperPoD."""
    resource_name: str | None = Field(default=None, min_length=1, max_length=253)
    """Extended resource the device plugin advertises; defaults to the profile's (huawei.com/Ascend910,
    huawei.com/npu for the 950 family, nvidia.com/gpu for GB200)."""
    reserve_nodes: int | None = Field(default=None, ge=0, le=1024)
    """Nodes kept free for fault recovery, used only by repair; defaults to 2 for cloudmatrix-384, else 0."""
    isolation: Isolation = Isolation.PARTITIONS
    """Who may use the devices of member nodes. Partitions (the default): only pods bound to a partition. The
    operator keeps the taint superpod.dev/partitions-only=<SuperPod name>:NoSchedule on every member node, the
    admission webhook gives its toleration to partition pods only, and a pod without a partition that reaches
    for this SuperPod's devices (tolerating the taint, naming devices in the device plugin's annotation, or
    asking for the device resource on member nodes) is refused. Pods already running stay. None: no taint and
    no such refusals; any pod may take free devices of member nodes."""
    defragmentation: Defragmentation = Field(default_factory=Defragmentation)
    """What the operator may move, and how often, to place a partition the SuperPoD is too fragmented for
    (Pending, reason Fragmented), and whether it compacts in the background to keep whole nodes free."""
    quotas: list[QuotaSpec] | None = Field(default=None, max_length=MAX_QUOTAS)
    """Tenants' nominal shares of this SuperPod (docs/tenancy.md). Partitions in namespaces no quota covers
    may use only the devices no quota holds (usable devices minus the sum of the shares) and never borrow.
    Unset: no quotas, partitions are admitted by priority, then age."""


QUOTA_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.namespaces) != has(self.namespaceSelector)",
        "message": "set namespaces or namespaceSelector, exactly one of them",
    },
]


class DeviceCounts(StatusModel):
    """Device counts of the SuperPoD, by state."""

    total: int = 0
    """Devices on member nodes."""
    free: int = 0
    """Healthy devices not allocated to any partition and not on reserve nodes."""
    allocated: int = 0
    """Devices allocated to partitions."""
    unhealthy: int = 0
    """Devices the device plugin reports unhealthy, network-unhealthy, recovering or faulty, or on NotReady
    nodes."""
    reserved: int = 0
    """Healthy, unallocated devices on reserve nodes."""


class TierBlock(StatusModel):
    """The largest block that could be placed inside one domain of a tier right now."""

    tier: str
    """Tier name."""
    devices: int = 0
    """Largest number of free devices in one domain of this tier."""


class QuotaStatus(StatusModel):
    """What one quota's tenant is owed and uses."""

    name: str
    """The quota's name."""
    nominal: int = 0
    """Its nominal share, in devices."""
    used: int = 0
    """Devices its placed partitions are charged (their npus)."""
    borrowed: int = 0
    """Devices used above the nominal share (idle shares of others)."""
    pending: int = 0
    """Its partitions waiting to be placed."""


class SuperPodStatus(StatusModel):
    """What the operator observed of the SuperPoD and its capacity."""

    observed_generation: int | None = None
    """The metadata.generation this status was computed from."""
    resource_name: str | None = None
    """The extended resource in effect (from the spec or the profile)."""
    nodes: int | None = None
    """Member nodes found."""
    ready_nodes: int | None = None
    """Member nodes that are Ready and publish valid device information."""
    devices: DeviceCounts | None = None
    """Device counts by state."""
    partitions: int | None = None
    """Partitions placed on this SuperPoD."""
    largest_free_block: list[TierBlock] | None = None
    """Per tier, the largest free block one domain can hold."""
    fragmentation: float | None = Field(default=None, ge=0, le=1)
    """Share of free devices that sit on nodes some partition already uses: 0 means every free device is on an
    untouched node, so whole-node requests can use it; 1 means no node is untouched (see docs/placement.md)."""
    quotas: list[QuotaStatus] | None = None
    """Per quota: nominal share, devices used and borrowed, partitions pending."""
    conditions: list[Condition] | None = None
    """Ready (nodes discovered and devices known), Degraded (unhealthy devices or bad inputs) and, with
    quotas, QuotasFit (False with reason QuotasExceedCapacity while the shares add up to more than the usable
    devices)."""


class SuperPod(SpecModel):
    """A Huawei Ascend SuperPoD (or another scale-up domain): its interconnect tiers and member nodes."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SuperPodSpec
    status: SuperPodStatus | None = None


CEL_RULES: list[dict[str, str]] = [
    {
        "rule": "self.profile == 'custom' ? has(self.tiers) : !has(self.tiers)",
        "message": "tiers is required with profile custom and not allowed with any other profile",
    },
    {
        "rule": "has(self.nodeSelector) || has(self.superPodID)",
        "message": "set nodeSelector or superPodID (or both) to say which nodes belong to this SuperPod",
    },
    {
        "rule": "!has(self.tiers) || self.tiers.all(t, self.tiers.exists_one(u, u.name == t.name))",
        "message": "tier names must be unique",
    },
    {
        "rule": "!has(self.tiers) || self.tiers.size() < 2 || "
        "self.tiers.all(t, self.tiers.all(u, t.domainSize >= u.domainSize || u.domainSize % t.domainSize == 0))",
        "message": "each tier's domainSize must be a multiple of every smaller tier's domainSize",
    },
    {
        "rule": "!has(self.quotas) || self.quotas.all(q, self.quotas.exists_one(r, r.name == q.name))",
        "message": "quota names must be unique",
    },
    {
        "rule": "!has(self.quotas) || self.quotas.all(q, !has(q.namespaces) || q.namespaces.all(n, "
        "self.quotas.exists_one(r, has(r.namespaces) && n in r.namespaces)))",
        "message": "a namespace may be listed by one quota only",
    },
    {
        "rule": "self.profile == oldSelf.profile",
        "message": "profile is immutable; create a new SuperPod to change the hardware profile",
    },
]
