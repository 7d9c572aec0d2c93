"""Hardware profiles and the topology tree: pure data, no I/O.

- `tiers`: the tier names users write in `maxTier` (module, node, rack, superpod, cluster) and `Tier`.
- `profiles`: the built-in hardware profiles and custom profiles from `spec.tiers`.
- `noderules`: which devices of one node a pod may take (HiAM pairs, HCCS rings), on bit masks.
- `inventory`: `ObservedNode`, what the device plugin tells about a node; synthetic inventories.
- `tree`: `TopologyTree`, a profile plus observed nodes, immutable.
"""

from superpod.topology import inventory, noderules, profiles, tiers, tree
from superpod.topology.inventory import ObservedNode
from superpod.topology.profiles import HardwareProfile
from superpod.topology.tree import TopologyTree

__all__ = [
    "HardwareProfile",
    "ObservedNode",
    "TopologyTree",
    "inventory",
    "noderules",
    "profiles",
    "tiers",
    "tree",
]
