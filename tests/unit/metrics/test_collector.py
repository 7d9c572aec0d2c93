"""The fleet collector, read back from its /metrics text: values derived from the snapshot at scrape time."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import parser
from superpod.metrics import collector, snapshot

from tests.unit.metrics import builders

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(fleet: builders.Fleet) -> Samples:
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector.FleetCollector(lambda: snapshot.capture(fleet)))
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


@pytest.fixture
def fleet() -> builders.Fleet:
    allocator = builders.allocator(nodes=8, reserve=2)
    builders.place(allocator, "team-a/train", 32)
    builders.place(allocator, "team-b/eval", 4, per_pod=4)
    observed = {node.name: node for node in builders.inventory.synthesize(builders.PROFILE, 8)}
    pod = builders.SuperPod("sp", allocator=allocator, observed=observed)
    return builders.Fleet(
        superpods={"sp": pod},
        partitions={
            "team-a/train": builders.partition("team-a/train", "sp", "Bound", "Placed"),
            "team-b/eval": builders.partition("team-b/eval", "sp", "Allocated", "Placed"),
            "team-c/big": builders.partition("team-c/big", "sp", "Pending", "InsufficientCapacity"),
            "team-c/new": builders.partition("team-c/new", "sp"),
        },
    )


def test_device_states_add_up_to_every_device_and_match_the_allocator(fleet):
    samples = scrape(fleet)
    states = {
        state: value(samples, "superpod_devices", superpod="sp", state=state)
        for state in collector.DEVICE_STATES
    }
    assert sum(states.values()) == 8 * 16
    assert states == {"free": 60.0, "allocated": 36.0, "unhealthy": 0.0, "reserved": 32.0}


def test_per_node_states_sum_to_the_superpod_counts(fleet):
    samples = scrape(fleet)
    for state in collector.DEVICE_STATES:
        per_node = sum(
            samples[(name, labels)]
            for name, labels in samples
            if name == "superpod_node_devices" and ("state", state) in labels
        )
        assert per_node == value(samples, "superpod_devices", superpod="sp", state=state), state


def test_each_held_device_has_one_info_series_whose_id_is_npu_exporters(fleet):
    samples = scrape(fleet)
    info = series(samples, "superpod_partition_device_info")
    train = [labels for labels in info if labels["partition"] == "train"]
    assert len(train) == 32 and len(info) == 36
    for labels in info:
        assert set(labels) == {"superpod", "namespace", "partition", "node", "device", "id"}
        assert labels["device"] == f"Ascend910-{labels['id']}"
    assert len({(labels["node"], labels["id"]) for labels in info}) == len(info)


def test_a_placed_partition_reports_devices_nodes_tier_span_and_bandwidth(fleet):
    samples = scrape(fleet)
    keys = {"superpod": "sp", "namespace": "team-a", "partition": "train"}
    assert value(samples, "superpod_partition_devices", **keys) == 32
    assert value(samples, "superpod_partition_nodes", **keys) == 2
    # 32 devices on two nodes: the superpod tier (index 2 of module, node, superpod) at 392 GB/s per device
    assert value(samples, "superpod_partition_tier_span", **keys, tier="superpod") == 2
    assert value(samples, "superpod_partition_estimated_bandwidth_bytes_per_second", **keys) == 392e9


def test_every_phase_and_pending_reason_is_present_at_zero_or_more(fleet):
    samples = scrape(fleet)
    phases = {p: value(samples, "superpod_partitions", superpod="sp", phase=p) for p in collector.PHASES}
    assert phases == {
        "Pending": 2.0,
        "Allocated": 1.0,
        "Bound": 1.0,
        "Degraded": 0.0,
        "Failed": 0.0,
        "Terminating": 0.0,
    }
    reasons = {
        r: value(samples, "superpod_pending_partitions", superpod="sp", reason=r)
        for r in collector.PENDING_REASONS
    }
    assert reasons["InsufficientCapacity"] == 1 and reasons["Other"] == 1  # no status yet: no known reason
    assert sum(reasons.values()) == phases["Pending"]


@pytest.mark.parametrize(
    ("status_phase", "expected"),
    [
        pytest.param("Bound", {"Bound": 1}, id="the current phase is 1 and the others 0"),
        pytest.param(None, {"Pending": 1}, id="a partition without a status is Pending"),
        pytest.param("Exploded", {}, id="an unknown phase sets none of the known ones"),
    ],
)
def test_a_partition_phase_series_marks_its_current_phase(status_phase, expected):
    fleet = builders.Fleet(
        superpods={"sp": builders.SuperPod("sp")},
        partitions={"ns/p": builders.partition("ns/p", "sp", status_phase)},
    )
    samples = scrape(fleet)
    got = {
        phase: value(
            samples, "superpod_partition_phase", superpod="sp", namespace="ns", partition="p", phase=phase
        )
        for phase in collector.PHASES
    }
    assert got == {phase: float(expected.get(phase, 0)) for phase in collector.PHASES}


def test_a_superpod_without_usable_nodes_still_shows_every_state_at_zero():
    samples = scrape(builders.Fleet(superpods={"empty": builders.SuperPod("empty")}))
    for state in collector.DEVICE_STATES:
        assert value(samples, "superpod_devices", superpod="empty", state=state) == 0
    for phase in collector.PHASES:
        assert value(samples, "superpod_partitions", superpod="empty", phase=phase) == 0
    for reason in collector.PENDING_REASONS:
        assert value(samples, "superpod_pending_partitions", superpod="empty", reason=reason) == 0
    assert value(samples, "superpod_info", superpod="empty", profile="cloudmatrix-384") == 1


def test_node_health_readiness_switch_faults_and_left_out_nodes_come_from_the_inventory(fleet):
    pod = fleet.superpods["sp"]
    assert pod.allocator is not None
    sick = sorted(pod.observed)[0]
    down = sorted(pod.observed)[1]
    pod.observed[sick] = builders.dataclasses.replace(
        pod.observed[sick], unhealthy=frozenset({"Ascend910-0", "Ascend910-1"})
    )
    pod.allocator.set_health(sick, pod.observed[sick].unhealthy)
    pod.observed[down] = builders.dataclasses.replace(pod.observed[down], ready=False)
    pod.problems = {
        sick: builders.Problem(sick, "UBSwitchFault"),
        "node-ghost": builders.Problem("node-ghost", "DeviceInfoInvalid"),
    }
    samples = scrape(fleet)
    assert value(samples, "superpod_node_unhealthy_devices", superpod="sp", node=sick) == 2
    assert value(samples, "superpod_node_ub_switch_faults", superpod="sp", node=sick) == 1
    assert value(samples, "superpod_node_ub_switch_faults", superpod="sp", node=down) == 0
    assert value(samples, "superpod_nodes", superpod="sp", state="ready") == 7
    assert value(samples, "superpod_nodes", superpod="sp", state="not_ready") == 1
    assert value(samples, "superpod_nodes", superpod="sp", state="left_out") == 1


def test_domains_count_empty_partial_full_and_reserved_nodes(fleet):
    samples = scrape(fleet)
    nodes = {
        state: value(samples, "superpod_domains", superpod="sp", tier="node", state=state)
        for state in collector.DOMAIN_STATES
    }
    # train fills two nodes, eval takes 4 devices of a third, two reserve nodes, three untouched
    assert nodes == {"empty": 3.0, "partial": 1.0, "full": 2.0, "reserved": 2.0}


def test_fragmentation_and_largest_blocks_are_the_allocators_capacity(fleet):
    capacity = fleet.superpods["sp"].allocator.capacity()
    samples = scrape(fleet)
    for tier, size in capacity.largest_free_block:
        assert value(samples, "superpod_largest_free_block_devices", superpod="sp", tier=tier) == size
    for tier, ratio in capacity.fragmentation_by_tier:
        assert value(samples, "superpod_fragmentation_ratio", superpod="sp", tier=tier) == pytest.approx(
            ratio
        )


def test_values_follow_the_fleet_between_scrapes_without_bookkeeping(fleet):
    before = scrape(fleet)
    builders.place(fleet.superpods["sp"].allocator, "team-c/more", 16)
    after = scrape(fleet)
    assert value(after, "superpod_devices", superpod="sp", state="allocated") == (
        value(before, "superpod_devices", superpod="sp", state="allocated") + 16
    )


def test_the_catalogue_names_every_family_the_collector_and_instruments_serve(fleet):
    served = {name for name, _ in scrape(fleet)}
    families = {family.name for family in collector.families(snapshot.capture(fleet))}
    catalogue = {s.name for s in collector.SERIES}
    assert families <= catalogue
    assert {name for name in served} <= {
        f"{s.name}{suffix}"
        for s in collector.SERIES
        for suffix in ("", "_bucket", "_count", "_sum", "_created")
    }


@pytest.mark.parametrize(
    ("reason", "faults"),
    [
        pytest.param("UBSwitchFault", 1, id="a separating UB switch fault counts"),
        pytest.param("UBSwitchDegraded", 1, id="a reported-only UB switch fault counts"),
        pytest.param("NodeNotReady", 0, id="another node problem is no switch fault"),
    ],
)
def test_ub_switch_faults_come_from_the_inventorys_node_problems(fleet, reason, faults):
    node = sorted(fleet.superpods["sp"].observed)[2]
    fleet.superpods["sp"].problems = {node: builders.Problem(node, reason)}
    assert value(scrape(fleet), "superpod_node_ub_switch_faults", superpod="sp", node=node) == faults
