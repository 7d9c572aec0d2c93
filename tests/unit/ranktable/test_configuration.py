"""The device plugin's configuration annotation is read as written, and bad values are named precisely."""

from __future__ import annotations

import json

import pytest
from superpod.ranktable import configuration, levels

from tests import conftest

SAMPLE = conftest.REFERENCE / "ascend-910-configuration.json"
REFERENCE = json.loads(SAMPLE.read_text())


def _with(**changes):
    """The reference annotation with top-level fields replaced, as JSON text."""
    return json.dumps(REFERENCE | changes)


def _without(*keys):
    """The reference annotation without some top-level fields, as JSON text."""
    return json.dumps({key: value for key, value in REFERENCE.items() if key not in keys})


def _cases(*cases):
    """Parametrize cases whose first element is the sentence naming them."""
    return [pytest.param(*rest, id=case) for case, *rest in cases]


def test_the_reference_annotation_reads_field_for_field():
    parsed = configuration.parse_ascend_configuration(SAMPLE.read_text())

    assert parsed == configuration.AscendPodConfiguration(
        pod_name="train-0",
        server_id="10.0.0.17",
        host_ip="10.0.0.17",
        devices=(
            configuration.AscendDevice("0", "29.7.0.1", "37748736"),
            configuration.AscendDevice("1", "29.7.0.2", "37748737"),
        ),
        super_pod_id=0,
        rack_id=1,
        server_index="7",
        server_ip="10.0.0.17",
    )


@pytest.mark.parametrize(
    ("value", "field", "expected"),
    _cases(
        ("numbers written as strings are read as numbers", _with(rack_id="-1"), "rack_id", -1),
        ("a server index written as a number is read as text", _with(server_index=7), "server_index", "7"),
        ("the A3/A5-only fields may be absent", _without("rack_id", "server_ip"), "rack_id", None),
        ("an unknown super pod id stays as written", _with(super_pod_id=-2), "super_pod_id", -2),
        ("unknown fields are ignored", _with(future_field={"x": 1}), "pod_name", "train-0"),
    ),
)
def test_lenient_about_what_other_device_plugin_versions_write(value, field, expected):
    parsed = configuration.parse_ascend_configuration(value)

    assert getattr(parsed, field) == expected


def test_a_910b_annotation_without_super_device_ids_reads():
    value = json.dumps(
        {
            "pod_name": "p",
            "server_id": "10.0.0.1",
            "host_ip": "10.0.0.1",
            "devices": [{"device_id": 3, "device_ip": "29.1.0.4"}],
        }
    )

    parsed = configuration.parse_ascend_configuration(value)

    assert parsed.devices == (configuration.AscendDevice("3", "29.1.0.4", None),)
    assert parsed.super_pod_id is None


def test_an_atlas_950_level_list_reads_into_typed_levels():
    element = {
        "net_layer": 3,
        "net_instance_id": "az-1",
        "net_type": "CLOS",
        "net_attr": "",
        "rank_addr_list": [
            {"addr_type": "IP", "addr": "10.9.0.1", "ports": ["0/2", "1/2"], "plane_id": "p0"}
        ],
    }
    device = {"device_id": "0", "device_ip": "", "levelList": [{"level": 3, "info": {"ROCE": element}}]}
    value = _with(devices=[device])

    parsed = configuration.parse_ascend_configuration(value)

    assert parsed.devices[0].level_list == (
        levels.DeviceLevel(
            level=3,
            info=(
                (
                    "ROCE",
                    levels.LevelElement(
                        3, "az-1", "CLOS", "", (levels.RankAddress("IP", "10.9.0.1", ("0/2", "1/2"), "p0"),)
                    ),
                ),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("value", "field", "message"),
    _cases(
        ("text that is not JSON", "{pod_name: train-0", "", "not valid JSON"),
        ("an empty annotation", "", "", "not valid JSON"),
        ("a JSON list instead of an object", "[]", "", "expected a JSON object, got a list"),
        ("no server_id", _without("server_id"), "server_id", "missing"),
        ("no host_ip", _without("host_ip"), "host_ip", "missing"),
        ("no pod_name", _without("pod_name"), "pod_name", "missing"),
        ("no devices", _without("devices"), "devices", "missing"),
        ("an empty device list", _with(devices=[]), "devices", "empty"),
        ("devices as an object", _with(devices={"0": {}}), "devices", "expected a list, got an object"),
        (
            "a device without device_ip",
            _with(devices=[{"device_id": "0"}]),
            "devices[0].device_ip",
            "missing",
        ),
        (
            "a second device without device_id",
            _with(devices=[{"device_id": "0", "device_ip": ""}, {"device_ip": ""}]),
            "devices[1].device_id",
            "missing",
        ),
        ("a server_id of the wrong type", _with(server_id=["10.0.0.1"]), "server_id", "expected a string"),
        ("a null host_ip", _with(host_ip=None), "host_ip", "is null"),
        (
            "a super_pod_id that is not a number",
            _with(super_pod_id="sp-0"),
            "super_pod_id",
            "expected an integer",
        ),
        ("a boolean rack_id", _with(rack_id=True), "rack_id", "expected an integer, got a boolean"),
        (
            "a level without info",
            _with(devices=[{"device_id": "0", "device_ip": "", "levelList": [{"level": 0}]}]),
            "devices[0].levelList[0].info",
            "missing",
        ),
    ),
)
def test_a_malformed_annotation_is_rejected_naming_the_field(value, field, message):
    with pytest.raises(configuration.ConfigurationError) as raised:
        configuration.parse_ascend_configuration(value)

    assert raised.value.field == field
    assert message in str(raised.value)
    assert configuration.ANNOTATION in str(raised.value)
    assert isinstance(raised.value, ValueError)
