"""The histograms and counters the controller observes, and the /metrics endpoint serving them with the fleet."""

from __future__ import annotations

import socket

import aiohttp
import prometheus_client
import pytest
from prometheus_client import parser
from superpod import metrics
from superpod.metrics import exporter, instruments, snapshot

from tests.unit.metrics import builders


def _sample(name: str, **labels: str) -> float:
    found = instruments.REGISTRY.get_sample_value(name, labels)
    assert found is not None, (name, labels)
    return found


def test_every_instrument_series_exists_before_anything_is_observed():
    text = prometheus_client.generate_latest(instruments.REGISTRY).decode()
    for resource in instruments.RESOURCES:
        assert f'superpod_reconcile_errors_total{{resource="{resource}"}}' in text
        assert f'superpod_reconcile_seconds_count{{resource="{resource}"}}' in text
    for name in (
        "superpod_placement_decision_seconds_count",
        "superpod_webhook_duration_seconds_count",
        "superpod_webhook_errors_total",
    ):
        assert f"\n{name} " in text
    assert "process_resident_memory_bytes" in text


@pytest.mark.parametrize(
    ("observe", "series", "labels", "delta"),
    [
        pytest.param(
            lambda: metrics.observe_placement(0.003),
            "superpod_placement_decision_seconds_count",
            {},
            1,
            id="a placement decision",
        ),
        pytest.param(
            lambda: metrics.observe_reconcile("superpod", 0.2),
            "superpod_reconcile_seconds_count",
            {"resource": "superpod"},
            1,
            id="a superpod reconcile",
        ),
        pytest.param(
            lambda: metrics.count_reconcile_error("partition"),
            "superpod_reconcile_errors_total",
            {"resource": "partition"},
            1,
            id="a reconcile error",
        ),
        pytest.param(
            lambda: metrics.observe_webhook(0.01, error=True),
            "superpod_webhook_errors_total",
            {},
            1,
            id="a webhook error",
        ),
        pytest.param(
            lambda: metrics.observe_webhook(0.01),
            "superpod_webhook_errors_total",
            {},
            0,
            id="a webhook success is no error",
        ),
    ],
)
def test_each_observation_moves_its_series(observe, series, labels, delta):
    before = _sample(series, **labels)
    observe()
    assert _sample(series, **labels) == before + delta


def test_a_mirror_shows_at_zero_from_its_start_and_counts_each_watch_restart():
    metrics.count_watch_restarts("test-ns/widgets", 0)
    assert _sample("superpod_watch_restarts_total", resource="test-ns/widgets") == 0
    metrics.count_watch_restarts("test-ns/widgets", 1)
    metrics.count_watch_restarts("test-ns/widgets", 1)
    assert _sample("superpod_watch_restarts_total", resource="test-ns/widgets") == 2


def test_a_placement_lands_in_the_bucket_of_its_duration():
    before = _sample("superpod_placement_decision_seconds_bucket", le="0.005")
    below = _sample("superpod_placement_decision_seconds_bucket", le="0.0025")
    metrics.observe_placement(0.004)
    assert _sample("superpod_placement_decision_seconds_bucket", le="0.005") == before + 1
    assert _sample("superpod_placement_decision_seconds_bucket", le="0.0025") == below


def test_an_unknown_resource_is_refused():
    with pytest.raises(ValueError, match="resource must be one of"):
        metrics.observe_reconcile("pod", 0.1)


def _fleet() -> builders.Fleet:
    allocator = builders.allocator(nodes=4)
    builders.place(allocator, "ns/p", 16)
    return builders.Fleet(
        superpods={"sp": builders.SuperPod("sp", allocator=allocator)},
        partitions={"ns/p": builders.partition("ns/p", "sp", "Bound")},
    )


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def test_the_exporter_serves_instruments_and_fleet_on_a_free_port():
    fleet = _fleet()
    async with exporter.serving(
        lambda: snapshot.capture(fleet), host="127.0.0.1", port=_free_port()
    ) as served:
        assert served is not None
        text = await _get(served.url)
    names = {family.name for family in parser.text_string_to_metric_families(text)}
    assert {
        "superpod_devices",
        "superpod_partition_device_info",
        "superpod_placement_decision_seconds",
    } <= names
    assert 'superpod_partition_devices{namespace="ns",partition="p",superpod="sp"} 16.0' in text


async def test_port_zero_serves_nothing():
    async with exporter.serving(lambda: snapshot.capture(_fleet()), host="127.0.0.1", port=0) as served:
        assert served is None


async def test_a_stopped_exporter_leaves_its_registry_and_a_new_one_can_take_its_place():
    registry = prometheus_client.CollectorRegistry()
    fleet = _fleet()
    served = exporter.Exporter(lambda: snapshot.capture(fleet), registry=registry)
    await served.start()
    assert served.port != 0
    assert "superpod_devices" in await _get(served.url)
    await served.stop()
    assert "superpod_devices" not in prometheus_client.generate_latest(registry).decode()
    again = exporter.Exporter(lambda: snapshot.capture(fleet), registry=registry)
    await again.start()
    await again.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_moves_count_partitions_and_devices_and_keep_fragmentation_before_and_after():
    moves = _sample_or_zero("superpod_partition_moves_total", superpod="sp-moves", reason="MakeRoom")
    devices = _sample_or_zero("superpod_devices_moved_total", superpod="sp-moves")
    instruments.count_moves(
        "sp-moves", "MakeRoom", partitions=2, devices=24, before=(("node", 0.5),), after=(("node", 0.125),)
    )
    assert _sample("superpod_partition_moves_total", superpod="sp-moves", reason="MakeRoom") == moves + 2
    assert _sample("superpod_devices_moved_total", superpod="sp-moves") == devices + 24
    ratio = "superpod_defragmentation_fragmentation_ratio"
    assert _sample(ratio, superpod="sp-moves", tier="node", when="before") == 0.5
    assert _sample(ratio, superpod="sp-moves", tier="node", when="after") == 0.125
    with pytest.raises(ValueError, match="reason must be one of"):
        instruments.count_moves("sp-moves", "Whim", partitions=1, devices=1, before=(), after=())


def _sample_or_zero(name: str, **labels: str) -> float:
    return instruments.REGISTRY.get_sample_value(name, labels) or 0.0
