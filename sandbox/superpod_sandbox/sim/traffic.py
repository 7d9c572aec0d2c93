"""How much each device sends over each interconnect tier while training pods run: a pure model.

Pods of one job talk to each other: a job is the pods of one namespace sharing the partition label
`superpod.dev/partition` (else `job-name`, `batch.kubernetes.io/job-name` or `volcano.sh/job-name`; else the pod
alone). Collective traffic is spread evenly over a device's peers (all-to-all / ring all-reduce steady state), so
a device of a job of D devices, with n_node of them on its node and n_pod in its SuperPoD, sends

    rate(tier) = DUTY * bandwidth(tier) * peers(tier) / (D - 1)

with peers(node) = n_node - 1 (HCCS / HCCS-L1 / UB inside the server), peers(superpod) = n_pod - n_node
(HCCS-L2 / UB between servers of the SuperPoD; on hardware without SuperPoDs these peers count as RoCE) and
peers(roce) = D - n_pod (RoCE between SuperPoDs or servers). `bandwidth(tier)` is the profile's per-device
bandwidth of that tier (superpod.topology), RoCE 50 GB/s (400 Gb/s) where the profile has no cluster tier. A
job on more nodes therefore moves more of its bytes to the higher tier. Receive equals send (symmetric
collectives). A device that is unhealthy or recovering, or on a node that is down, sends nothing; a device with a
network fault sends nothing over RoCE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from superpod.api import common
from superpod.topology import profiles, tiers

DUTY = 0.5
"""Fraction of a tier's bandwidth a busy device uses on average (compute and communication alternate)."""
GIGABYTE = 1e9
JOB_LABELS = (common.PARTITION_LABEL, "job-name", "batch.kubernetes.io/job-name", "volcano.sh/job-name")


@dataclasses.dataclass(frozen=True)
class Member:
    """One device of a running job."""

    node: str
    device: str
    superpod: str  # the SuperPoD (fleet) the node belongs to; "" for nodes outside the simulated fleet
    pod: str  # namespace/name
    namespace: str
    pod_name: str
    container: str


@dataclasses.dataclass(frozen=True)
class Rates:
    """Bytes per second one device sends on each tier."""

    node: float = 0.0
    superpod: float = 0.0
    roce: float = 0.0

    @property
    def intra_superpod(self) -> float:
        """What NPU-Exporter's HCCS counters see: traffic inside the server and inside the SuperPoD."""
        return self.node + self.superpod


@dataclasses.dataclass(frozen=True)
class Bandwidths:
    """Per-device bandwidth of each tier, bytes per second."""

    node: float
    superpod: float
    roce: float

    @classmethod
    def of(cls, profile: profiles.HardwareProfile) -> Bandwidths:
        by_name = {tier.name: tier.bandwidth_gbps * GIGABYTE for tier in profile.tiers}
        node = by_name[tiers.NODE]
        roce = by_name.get(tiers.CLUSTER, profiles.ROCE_400G * GIGABYTE)
        return cls(node=node, superpod=by_name.get(tiers.SUPERPOD, roce), roce=roce)


def job_key(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    namespace = str(metadata.get("namespace", "default"))
    for label in JOB_LABELS:
        if labels.get(label):
            return f"{namespace}/{label}={labels[label]}"
    return f"{namespace}/pod={metadata.get('name')}"


def rates(
    jobs: Mapping[str, Iterable[Member]],
    bandwidths: Bandwidths,
    *,
    has_superpod: bool,
    silent: frozenset[tuple[str, str]] = frozenset(),
    no_roce: frozenset[tuple[str, str]] = frozenset(),
) -> dict[tuple[str, str], Rates]:
    """(node, device) -> rates, for every member of every job.

    `silent` devices send nothing (unhealthy, recovering, node down); `no_roce` devices send nothing over RoCE.
    """
    result: dict[tuple[str, str], Rates] = {}
    for members in jobs.values():
        group = list(members)
        total = len(group)
        if total < 2:
            continue
        per_node: dict[str, int] = {}
        per_superpod: dict[str, int] = {}
        for member in group:
            per_node[member.node] = per_node.get(member.node, 0) + 1
            if member.superpod:
                per_superpod[member.superpod] = per_superpod.get(member.superpod, 0) + 1
        for member in group:
            key = (member.node, member.device)
            if key in silent:
                result[key] = Rates()
                continue
            same_node = per_node[member.node] - 1
            same_superpod = (
                (per_superpod.get(member.superpod, 0) - per_node[member.node]) if member.superpod else 0
            )
            if not has_superpod:
                same_superpod = 0
            farther = total - 1 - same_node - same_superpod
            share = DUTY / (total - 1)
            roce = 0.0 if key in no_roce else share * bandwidths.roce * farther
            result[key] = Rates(
                node=share * bandwidths.node * same_node,
                superpod=share * bandwidths.superpod * same_superpod,
                roce=roce,
            )
    return result
