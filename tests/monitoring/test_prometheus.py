"""A real Prometheus scrapes the operator's exporter and the simulated NPU-Exporters of the scene.

Every dashboard query returns data with its variables filled in; the recording rules attribute NPU-Exporter
traffic and errors to partitions and tiers (checked against the exporter's own pod labels); the alerts that
the scene's faults should start are active.
"""

from __future__ import annotations

import time

import pytest
from superpod.metrics import dashboard, rules

from tests.monitoring import scene, stage

VARIABLES = {"superpod": "cm384-a", "namespace": "team-a", "partition": "llm-pretrain"}
POLL = 45.0  # seconds: NPU-Exporter targets are scraped every 5 s and rates need two samples

QUERIES = [
    pytest.param(target.expr, id=f"{panel.title} / {target.legend or 'value'}")
    for panel in dashboard.PANELS
    for target in panel.targets
]


def test_prometheus_scrapes_the_operator_and_both_npu_exporters(monitored):
    targets = monitored.targets()
    jobs = sorted(target["labels"]["job"] for target in targets)
    assert jobs == [stage.NPU_JOB, stage.NPU_JOB, rules.OPERATOR_JOB]
    assert len(monitored.wait_for("up == 1 and on (job, instance) scrape_samples_scraped > 0")) >= 2


@pytest.mark.parametrize("expr", QUERIES)
def test_every_dashboard_query_returns_data_with_its_variables_filled_in(monitored, expr):
    filled = dashboard.fill(expr, VARIABLES)
    assert "$" not in filled
    result = monitored.wait_for(filled, timeout=POLL)
    assert result, f"no data for {filled}"


def _by_tier(result: list[dict]) -> dict[str, float]:
    return {series["metric"]["tier"]: float(series["value"][1]) for series in result}


def test_partition_traffic_is_the_sum_over_its_devices_on_both_tiers(monitored, world):
    record = rules.PARTITION_TRANSMIT
    result = monitored.wait_for(f'{record}{{namespace="team-a", partition="llm-pretrain"}} > 0', timeout=POLL)
    assert set(_by_tier(result)) == {"hccs", "roce"}  # the job spans two SuperPoDs: RoCE between them
    # the same traffic from the exporter's own pod labels, without the operator's info series
    direct = monitored.query(
        'sum(npu_chip_info_hccs_bandwidth_info_total_tx{pod_name=~"llm-pretrain-[0-9]+"}) * 1e6'
        f' - on () sum({record}{{namespace="team-a", partition="llm-pretrain", tier="hccs"}})'
    )
    assert direct and abs(float(direct[0]["value"][1])) < 1.0, direct


@pytest.mark.parametrize(
    ("record", "exporter_side"),
    [
        pytest.param(
            rules.TIER_TRANSMIT,
            "sum(npu_chip_info_hccs_bandwidth_info_total_tx{{{nodes}}}) * 1e6",
            id="hccs traffic",
        ),
        pytest.param(
            rules.TIER_ERRORS,
            "sum("
            + " + ".join(
                f"rate(npu_chip_info_hccs_statistic_info_crc_err_cnt_{link}{{{{{{nodes}}}}}}[2m])"
                for link in range(1, 8)
            )
            + ")",
            id="hccs CRC errors",
        ),
    ],
)
def test_a_superpods_tier_sums_are_the_sums_over_its_nodes(monitored, world, record, exporter_side):
    nodes = 'node=~"{}"'.format("|".join(world.superpods["cm384-a"].observed))
    recorded = monitored.wait_for(f'{record}{{superpod="cm384-a", tier="hccs"}} > 0', timeout=POLL)
    assert recorded, record
    at, value = recorded[0]["value"]
    # the exporter's own series summed over the SuperPoD's nodes, evaluated at the recorded sample's time
    (timestamp,) = monitored.query(f'timestamp({record}{{superpod="cm384-a", tier="hccs"}})')
    direct = monitored.api("query", query=exporter_side.format(nodes=nodes), time=timestamp["value"][1])[
        "result"
    ]
    assert direct and float(value) == pytest.approx(float(direct[0]["value"][1]), rel=0.02), (
        at,
        value,
        direct,
    )


def test_a_device_with_a_network_fault_shows_roce_errors_on_its_partition(monitored):
    record = rules.PARTITION_ERRORS
    result = monitored.wait_for(f'{record}{{partition="llm-pretrain", tier="roce"}} > 0', timeout=POLL)
    assert result


def test_per_tier_traffic_covers_each_superpod(monitored):
    result = monitored.wait_for(f"{rules.TIER_TRANSMIT} > 0", timeout=POLL)
    assert {(s["metric"]["superpod"], s["metric"]["tier"]) for s in result} >= {
        ("cm384-a", "hccs"),
        ("cm384-b", "hccs"),
        ("cm384-a", "roce"),
    }


def test_the_faults_of_the_scene_start_their_alerts(monitored, world):
    moe = world.superpods["cm384-a"].allocator.placement_of("team-a/moe-expert")
    assert moe is not None
    expected = {
        ("SuperPodPartitionDegraded", "partition", "llm-pretrain"),
        ("SuperPodPartitionDegraded", "partition", "rl"),
        ("SuperPodUBSwitchFault", "node", moe.slots[0].node),
        ("SuperPodDeviceUnhealthy", "superpod", "cm384-a"),
    }
    deadline = time.monotonic() + POLL
    while True:
        alerts = [alert["labels"] for alert in monitored.api("alerts")["alerts"]]
        seen = {(labels["alertname"], key, value) for labels in alerts for key, value in labels.items()}
        if expected <= seen or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert expected <= seen
    assert not any(labels["alertname"] == "SuperPodOperatorDown" for labels in alerts)


def test_the_scene_is_what_the_assertions_assume(world):
    phases = {key: obj["status"]["phase"] for key, obj in world.partitions.items()}
    assert phases["team-a/llm-pretrain"] == phases["team-c/rl"] == "Degraded"
    assert {ask.job for ask in scene.ASKS if ask.name.startswith("llm-pretrain")} == {"team-a/pretrain"}
