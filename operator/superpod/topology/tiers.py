"""Interconnect tiers: the levels of a topology tree and the portable names users write in `maxTier`.

A tier groups devices into domains: every device of one domain talks to every other one of the same domain
over the tier's link. Names are shared by all profiles (`module`, `node`, `rack`, `superpod`, `cluster`) so a
partition's `maxTier` means the same on every profile; a custom profile may add its own names.
"""

from __future__ import annotations

import dataclasses

MODULE = "module"
NODE = "node"
RACK = "rack"
SUPERPOD = "superpod"
CLUSTER = "cluster"

CANONICAL_ORDER: tuple[str, ...] = (MODULE, NODE, RACK, SUPERPOD, CLUSTER)
"""The standard tier names from the tightest to the widest."""


@dataclasses.dataclass(frozen=True)
class Tier:
    """One interconnect level of a profile."""

    name: str  # portable name, for example node or rack
    domain_size: int  # devices in one full domain of this tier
    bandwidth_gbps: float  # per device, one direction, inside one domain
    latency_us: float  # typical one-way latency inside one domain
    link: str = ""  # the physical link, for humans (SIO, HCCS, UB, RoCE, NVLink)
