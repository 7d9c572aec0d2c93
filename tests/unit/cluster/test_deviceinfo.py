"""Reading the device plugin's mindx-dl-deviceinfo ConfigMaps, from the reference shape and broken variants."""

from __future__ import annotations

import dataclasses
import json

import pytest
from superpod.cluster import deviceinfo

from tests import conftest

REFERENCE = json.loads((conftest.REFERENCE / "deviceinfo-a3.json").read_text())
RESOURCE = "huawei.com/Ascend910"


def _with_document(mutate) -> dict:
    configmap = json.loads(json.dumps(REFERENCE))
    document = json.loads(configmap["data"]["DeviceInfoCfg"])
    mutate(document)
    configmap["data"]["DeviceInfoCfg"] = json.dumps(document)
    return configmap


def test_the_reference_configmap_reads_as_the_device_plugin_meant_it():
    info = deviceinfo.parse(REFERENCE, RESOURCE)
    assert info.node == "a3-node-07"
    assert info.healthy == tuple(f"Ascend910-{i}" for i in range(14))
    assert info.unhealthy == {"Ascend910-14"}
    assert info.network_unhealthy == {"Ascend910-15"}
    assert info.recovering == frozenset()
    assert [(f.device, f.fault_handling) for f in info.faults] == [
        ("Ascend910-14", "SeparateNPU"),
        ("Ascend910-15", "PreSeparateNPU"),
    ]
    assert (info.super_pod_id, info.server_index, info.rack_id) == (0, 7, 1)
    assert info.devices == tuple(f"Ascend910-{i}" for i in range(16))


@pytest.mark.parametrize(
    ("case", "configmap", "message"),
    [
        (
            "a name that is not a device-info ConfigMap",
            {"metadata": {"name": "other"}, "data": {}},
            "does not start",
        ),
        (
            "the DeviceInfoCfg key is missing",
            {"metadata": {"name": "mindx-dl-deviceinfo-n1"}, "data": {}},
            "missing",
        ),
        (
            "DeviceInfoCfg is not JSON",
            {"metadata": {"name": "mindx-dl-deviceinfo-n1"}, "data": {"DeviceInfoCfg": "{oops"}},
            "not JSON",
        ),
        (
            "the DeviceList has no entry for the resource",
            _with_document(lambda d: d["DeviceInfo"]["DeviceList"].pop(RESOURCE)),
            "no huawei.com/Ascend910 entry",
        ),
        (
            "ServerIndex is not a number",
            _with_document(lambda d: d.update(ServerIndex="seven")),
            "ServerIndex must be an integer",
        ),
        (
            "the fault list is not JSON",
            _with_document(lambda d: d["DeviceInfo"]["DeviceList"].update({f"{RESOURCE}-Fault": "[{"})),
            "-Fault list is not JSON",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_malformed_configmap_gives_one_line_naming_it(case, configmap, message):
    with pytest.raises(deviceinfo.DeviceInfoError, match=message) as caught:
        deviceinfo.parse(configmap, RESOURCE)
    assert "ConfigMap kube-system/" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_coordinates_are_minus_one():
    info = deviceinfo.parse(_with_document(lambda d: d.update(SuperPodID=-1, ServerIndex=-2)), RESOURCE)
    assert (info.super_pod_id, info.server_index) == (-1, -2)


def _refresh(document: dict) -> None:
    document["DeviceInfo"]["UpdateTime"] += 300
    document["CheckCode"] = "0" * 64


def _turn_unhealthy(document: dict) -> None:
    _refresh(document)
    document["DeviceInfo"]["DeviceList"][f"{RESOURCE}-Unhealthy"] = "Ascend910-14,Ascend910-3"


def test_a_refresh_that_moves_only_update_time_and_check_code_leaves_the_kept_copy_as_it_was():
    kept = deviceinfo.compact(REFERENCE)
    assert deviceinfo.compact(_with_document(_refresh)) == kept
    assert deviceinfo.compact(_with_document(_turn_unhealthy)) != kept


def test_the_kept_copy_reads_as_the_configmap_but_for_its_update_time():
    for configmap in (REFERENCE, _with_document(_turn_unhealthy)):
        full = deviceinfo.parse(configmap, RESOURCE)
        assert deviceinfo.parse(deviceinfo.compact(configmap), RESOURCE) == dataclasses.replace(
            full, update_time=0
        )


def test_a_document_that_is_not_json_is_kept_as_published_and_reported_by_parse():
    broken = json.loads(json.dumps(REFERENCE))
    broken["data"]["DeviceInfoCfg"] = "{not json"
    kept = deviceinfo.compact(broken)
    assert kept["data"]["DeviceInfoCfg"] == "{not json"
    with pytest.raises(deviceinfo.DeviceInfoError, match="is not JSON"):
        deviceinfo.parse(kept, RESOURCE)
