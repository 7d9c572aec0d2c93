"""`superpod plan -f SUPERPOD.yaml -f PARTITIONS.yaml [--explain] [--json] [--png FILE]`: an offline what-if.

Reads multi-document YAML: one SuperPod, its SuperPodPartitions (in file order, as `kubectl apply` would
create them), and optionally Node objects, `mindx-dl-deviceinfo-<node>` and NodeD's `mindx-dl-nodeinfo-<node>`
ConfigMaps, PriorityClasses and Namespaces (their labels, for quotas that select namespaces). Nodes come
from those objects when given (membership, devices and health through the operator's own
`superpodmodel.build`); otherwise a healthy inventory is synthesised from the profile, and the output says so.
Each partition is decided by the operator's admission pass (`planpass`): quotas, priorities, preemption.
Prints each partition's placement or reason (`--explain`: and one line saying why, `placement.explain`),
each quota's use, and an occupancy map (rack x node x device, one letter and colour per partition), or
writes it as a PNG.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import yaml

from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import deviceinfo, nodeinfo
from superpod.commands import planpass
from superpod.controller import relocation, superpodmodel
from superpod.placement import allocator as placement_allocator
from superpod.placement import result
from superpod.topology import inventory, tiers, tree

LETTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
FREE, UNHEALTHY, RESERVE, MOVING = ".", "x", "r", "*"
ANSI = [41, 42, 43, 44, 45, 46, 101, 102, 103, 104, 105, 106]  # background colours, one per partition
MOVING_ANSI = (
    "1;30;47"  # bold black on white: devices reserved for a move in progress, in no partition's colour
)
MAP_RACK_LIMIT = 64
PNG_INSTALL = "pip install matplotlib; it is a development dependency of superpod-operator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--filename", dest="files", action="append", required=True, type=Path,
        help="YAML file(s): a SuperPod, SuperPodPartitions, optionally Nodes and device-info ConfigMaps",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--png", type=Path, help="write the occupancy map to this PNG file")
    parser.add_argument(
        "--explain", action="store_true",
        help="say why each partition is placed, waits (quota, capacity, priority) or preempts, one line each",
    )  # fmt: skip


class PlanError(ValueError):
    """The input does not describe one SuperPod and its partitions."""


def run(args: argparse.Namespace) -> int:
    try:
        documents = [doc for path in args.files for doc in _load(path)]
        report = plan(documents)
        report.explain = args.explain
    except (PlanError, OSError, yaml.YAMLError, ValueError) as error:
        print(f"superpod plan: {error}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report.print(sys.stdout, colour=sys.stdout.isatty())
    if args.png:
        write_png(report, args.png)
        if not args.json:
            print(f"wrote {args.png}")
    return 0


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if isinstance(doc, dict)]


class Report:
    """The outcome of a plan: the allocator after every partition, and each partition's decision."""

    def __init__(
        self,
        superpod: api_superpod.SuperPod,
        allocator: placement_allocator.Allocator,
        decisions: list[tuple[str, result.Placement | result.Rejection]],
        synthesised: bool,
        skipped: list[str],
        tenancy: planpass.Outcome | None = None,
    ) -> None:
        self.superpod = superpod
        self.allocator = allocator
        self.decisions = decisions
        self.synthesised = synthesised
        self.skipped = skipped
        self.tenancy = tenancy
        self.explain = False  # print and carry each partition's explanation
        self.making_room: dict[str, str | None] = {}  # moving partition -> the partition it makes room for

    def reserved(self) -> list[tuple[str, int]]:
        """(partition, devices) reserved for each move in progress: the new devices it does not hold yet."""
        found = []
        for holder, placement in sorted(self.allocator.partitions.items()):
            owner = relocation.reserved_for(holder)
            if owner is not None:
                found.append((owner, sum(len(devices) for _, devices in placement.held)))
        return found

    def reserved_lines(self) -> list[str]:
        lines = []
        for owner, devices in self.reserved():
            target = self.making_room.get(owner)
            why = f", making room for {target}" if target else ""
            lines.append(f"{MOVING} {devices} devices reserved for {owner}, moving{why}")
        return lines

    def why(self, pid: str) -> str | None:
        return self.tenancy.explanations.get(pid) if self.explain and self.tenancy is not None else None

    def quota_lines(self) -> list[str]:
        """Per quota at the end: devices used of the nominal share, borrowed."""
        usage = self.tenancy.usage if self.tenancy is not None else ()
        return [f"quota {u.tenant}: {u.used} of {u.nominal} NPUs used, {u.borrowed} borrowed" for u in usage]

    @property
    def name(self) -> str:
        return str(self.superpod.metadata.get("name", ""))

    def letters(self) -> dict[str, str]:
        placed = [pid for pid, decision in self.decisions if isinstance(decision, result.Placement)]
        return {pid: LETTERS[i % len(LETTERS)] for i, pid in enumerate(placed)}

    def to_json(self) -> dict[str, Any]:
        partitions = []
        for pid, decision in self.decisions:
            entry: dict[str, Any] = {"partition": pid}
            if isinstance(decision, result.Placement):
                entry.update(
                    phase=api_partition.Phase.ALLOCATED.value,
                    tierSpan=decision.tier_span,
                    nodeCount=decision.node_count,
                    estimatedBandwidthGBps=decision.bandwidth_gbps,
                    slots=[
                        slot.model_dump(by_alias=True, exclude_none=True) for slot in decision.api_slots()
                    ],
                )
            else:
                entry.update(
                    phase=api_partition.Phase.PENDING.value,
                    reason=decision.reason.value,
                    message=decision.message,
                )
            why = self.why(pid)
            if why is not None:
                entry["explain"] = why
            partitions.append(entry)
        capacity = self.allocator.capacity()
        return {
            "superPod": self.name,
            "profile": self.allocator.tree.profile.name,
            "nodesSynthesised": self.synthesised,
            "nodes": len(self.allocator.tree.nodes),
            "partitions": partitions,
            "skipped": self.skipped,
            "quotas": [
                {"name": u.tenant, "nominal": u.nominal, "used": u.used, "borrowed": u.borrowed}
                for u in (self.tenancy.usage if self.tenancy is not None else ())
            ],
            "capacity": {
                "devices": capacity.api_devices().model_dump(),
                "largestFreeBlock": [block.model_dump() for block in capacity.api_blocks()],
                "fragmentation": capacity.fragmentation,
            },
        }

    def print(self, out: TextIO, *, colour: bool) -> None:
        profile = self.allocator.tree.profile
        nodes = len(self.allocator.tree.nodes)
        source = (
            "synthesised from the profile (no Nodes given)" if self.synthesised else "from the given Nodes"
        )
        out.write(f"SuperPod {self.name}: profile {profile.name}, {nodes} nodes {source}\n")
        letters = self.letters()
        for pid, decision in self.decisions:
            if isinstance(decision, result.Placement):
                out.write(
                    f"  [{_paint(letters[pid], letters[pid], colour)}] {pid}: Allocated, {len(decision.device_ids())} "
                    f"devices on {decision.node_count} node(s), tier {decision.tier_span}, "
                    f"~{decision.bandwidth_gbps:g} GB/s per device; nodes {_node_ranges(decision)}\n"
                )
            else:
                out.write(f"      {pid}: Pending, {decision.reason.value}: {decision.message}\n")
            why = self.why(pid)
            if why is not None and (isinstance(decision, result.Placement) or why != decision.message):
                out.write(f"        why: {why}\n")
        for line in [*self.skipped, *self.quota_lines()]:
            out.write(f"      {line}\n")
        capacity = self.allocator.capacity()
        out.write(
            f"capacity: {capacity.free} free, {capacity.allocated} allocated, {capacity.unhealthy} unhealthy, "
            f"{capacity.reserved} reserved of {capacity.total}; fragmentation {capacity.fragmentation:.3f}\n"
        )
        moving = f", {MOVING} reserved for a move in progress" if self.reserved() else ""
        out.write(f"occupancy ({FREE} free, {RESERVE} reserve, {UNHEALTHY} unhealthy{moving}):\n")
        for line in self.reserved_lines():
            out.write(f"  {line}\n")
        for line in occupancy_lines(self, colour=colour):
            out.write(line + "\n")


def _node_ranges(decision: result.Placement) -> str:
    names = list(dict.fromkeys(slot.node for slot in decision.slots))
    return ", ".join(names) if len(names) <= 4 else f"{names[0]} .. {names[-1]}"


def _paint(text: str, letter: str, colour: bool) -> str:
    if colour and letter == MOVING:
        return f"\x1b[{MOVING_ANSI}m{text}\x1b[0m"
    if not colour or letter in (FREE, UNHEALTHY, RESERVE, MOVING):
        return text
    return f"\x1b[30;{ANSI[LETTERS.index(letter) % len(ANSI)]}m{text}\x1b[0m"


def device_grid(report: Report) -> list[tuple[str, list[tuple[str, str]]]]:
    """(rack label, [(node name, one character per device)]) in topology order."""
    allocator = report.allocator
    topology = allocator.tree
    owner: dict[tuple[str, str], str] = {}
    letters = report.letters()
    for pid, placement in allocator.partitions.items():
        glyph = MOVING if relocation.is_reservation(pid) else letters.get(pid, "?")
        for node_name, devices in placement.held:
            for device in devices:
                owner[(node_name, device)] = glyph
    racks: dict[str, list[tuple[str, str]]] = {}
    for node in topology.nodes:
        unhealthy = set(allocator.unhealthy_devices(node.name))
        cells = []
        for device in node.devices:
            if (node.name, device) in owner:
                cells.append(owner[(node.name, device)])
            elif device in unhealthy:
                cells.append(UNHEALTHY)
            else:
                cells.append(RESERVE if node.reserve else FREE)
        racks.setdefault(_rack_label(topology, node), []).append((node.name, "".join(cells)))
    return list(racks.items())


def _rack_label(topology: tree.TopologyTree, node: tree.TreeNode) -> str:
    profile = topology.profile
    for level in range(1, len(topology.levels)):
        if topology.tier_name(level) == tiers.RACK:
            return topology.levels[level][node.domains[level]].id
    if node.rack >= 0:
        prefix = f"superpod-{node.superpod_index}/" if node.superpod_index >= 0 else ""
        return f"{prefix}rack-{node.rack}"
    per = profile.display_rack_nodes or 8
    return f"nodes {node.index // per * per}-{node.index // per * per + per - 1}"


def occupancy_lines(report: Report, *, colour: bool) -> list[str]:
    grid = device_grid(report)
    width = max(len(label) for label, _ in grid) if grid else 0
    lines = []
    shown = 0
    hidden = 0
    for label, nodes in grid:
        busy = any(ch not in (FREE, RESERVE) for _, cells in nodes for ch in cells)
        if shown >= MAP_RACK_LIMIT or (len(grid) > MAP_RACK_LIMIT and not busy):
            hidden += 1
            continue
        shown += 1
        rendered = " ".join("".join(_paint(ch, ch, colour) for ch in cells) for _, cells in nodes)
        lines.append(f"  {label.ljust(width)}  {rendered}")
    if hidden:
        lines.append(f"  ... {hidden} more racks not shown (see --json or --png)")
    return lines


def write_png(report: Report, path: Path) -> None:
    """The occupancy map as an image: one row per rack, its nodes side by side, one column per device.

    matplotlib is not a dependency of the operator (nor in its image): without it, a one-line error."""
    try:
        import matplotlib
    except ModuleNotFoundError as error:
        raise SystemExit(f"--png needs matplotlib, which is not installed ({PNG_INSTALL})") from error

    matplotlib.use("Agg")
    from matplotlib import colors as mcolors
    from matplotlib import pyplot as plt

    grid = device_grid(report)
    gap = -1  # a thin grey column between nodes
    rows = []
    for _, nodes in grid:
        row: list[int] = []
        for position, (_, cells) in enumerate(nodes):
            if position:
                row.append(gap)
            row.extend(_code(ch) for ch in cells)
        rows.append(row)
    width = max((len(row) for row in rows), default=1)
    matrix = [row + [gap] * (width - len(row)) for row in rows]
    palette = ["#a0a0a0", "#ffffff", "#e0e0e0", "#000000", "#ff8c00"]
    palette += [mcolors.to_hex(plt.get_cmap("tab20")(i % 20)) for i in range(len(LETTERS))]
    figure, axes = plt.subplots(
        figsize=(min(24.0, max(4.0, width * 0.12)), min(40.0, max(2.0, len(rows) * 0.22)))
    )
    axes.imshow(
        matrix,
        aspect="auto",
        interpolation="nearest",
        cmap=mcolors.ListedColormap(palette),
        vmin=-1,
        vmax=len(palette) - 2,
    )
    step = max(1, len(grid) // 60)
    axes.set_yticks(range(0, len(grid), step), [label for label, _ in grid][::step], fontsize=6)
    axes.set_xticks([])
    axes.set_xlabel("nodes of the rack, side by side; one column per device")
    letters = report.letters()
    axes.set_title(
        f"{report.name} ({report.allocator.tree.profile.name}): {len(letters)} partitions; "
        "white free, light grey reserve, black unhealthy, orange reserved for a move in progress",
        fontsize=8,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _code(cell: str) -> int:
    """Colour index of one map character (see write_png's palette, which starts at -1)."""
    fixed = {FREE: 0, RESERVE: 1, UNHEALTHY: 2, MOVING: 3}
    return fixed[cell] if cell in fixed else 4 + LETTERS.index(cell) if cell in LETTERS else 2


def plan(documents: Iterable[dict[str, Any]]) -> Report:
    """Place every partition of the one SuperPod in `documents`, in order."""
    superpods: list[dict[str, Any]] = []
    partitions, nodes, configmaps, health, others = [], {}, {}, {}, []
    for doc in documents:
        kind = doc.get("kind")
        object_name = str((doc.get("metadata") or {}).get("name", ""))
        if kind == api_superpod.KIND:
            superpods.append(doc)
        elif kind == api_partition.KIND:
            partitions.append((api_partition.SuperPodPartition.model_validate(doc), doc))
        elif kind == "Node":
            nodes[object_name] = doc
        elif kind == "ConfigMap" and (member := deviceinfo.node_of(object_name)) is not None:
            configmaps[str(member)] = doc
        elif kind == "ConfigMap" and (verdict := nodeinfo.parse(doc)) is not None:
            health[verdict.node] = verdict
        else:
            others.append(doc)  # PriorityClasses and Namespaces, for quotas and priorities
    if len(superpods) != 1:
        raise PlanError(f"expected exactly one SuperPod in the input, found {len(superpods)}")
    superpod = api_superpod.SuperPod.model_validate(superpods[0])
    model = superpodmodel.build(
        superpodmodel.configure(superpods[0].get("spec") or {}), nodes, configmaps, health
    )
    if model.error is not None or model.profile is None:
        raise PlanError(f"SuperPod {superpod.metadata.get('name')}: {model.error}")
    synthesised = not model.observed
    if synthesised:
        model = superpodmodel.with_inventory(
            model, {node.name: node for node in inventory.synthesize(model.profile)}, {}
        )
    allocator = model.allocator
    assert allocator is not None
    skipped = []
    name = superpod.metadata.get("name")
    arrivals: dict[str, dict[str, Any]] = {}
    for partition, doc in partitions:
        pid = f"{partition.metadata.get('namespace', 'default')}/{partition.metadata.get('name', '?')}"
        if partition.spec.super_pod != name:
            skipped.append(f"{pid}: skipped, it names SuperPod {partition.spec.super_pod}, not {name}")
            continue
        if pid in arrivals:
            raise PlanError(f"partition {pid} appears twice")
        arrivals[pid] = _with_namespace(doc, pid)
    tenancy = planpass.decide(allocator, model.spec, list(arrivals.items()), planpass.facts(others))
    decisions = list(tenancy.decisions.items())
    return Report(superpod, allocator, decisions, synthesised, skipped, tenancy)


def _with_namespace(doc: dict[str, Any], pid: str) -> dict[str, Any]:
    """The partition's object with the namespace the plan gives it (default when it names none)."""
    metadata = dict(doc.get("metadata") or {})
    metadata["namespace"] = pid.split("/", 1)[0]
    return {**doc, "metadata": metadata}
