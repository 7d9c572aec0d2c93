"""What the device plugin and kubelet stand-in write on a pod after Allocate."""

from __future__ import annotations

import json

from superpod.ranktable import configuration
from superpod_sandbox.sim import hardware, layout, podstatus

from tests import conftest

REFERENCE = json.loads((conftest.REFERENCE / "ascend-910-configuration.json").read_text())
A3 = layout.build(hardware.describe("cloudmatrix-384"))
B = layout.build(hardware.describe("ascend-910b"), node_count=2)


def test_the_configuration_annotation_has_the_reference_shape_and_types():
    value = podstatus.configuration(A3, A3.nodes[7], "train-0", ["Ascend910-1", "Ascend910-0"])
    document = json.loads(value)
    reference = {key: item for key, item in REFERENCE.items() if not key.startswith("_")}
    assert list(document) == list(reference)
    for key, item in reference.items():
        assert type(document[key]) is type(item), key
    assert document["devices"] == [
        {"device_id": "0", "device_ip": "29.0.7.1", "super_device_id": "112"},
        {"device_id": "1", "device_ip": "29.0.7.2", "super_device_id": "113"},
    ]
    assert (document["server_id"], document["host_ip"], document["server_ip"]) == ("10.0.7.1",) * 3
    assert (document["super_pod_id"], document["rack_id"], document["server_index"]) == (0, 1, "7")


def test_the_rank_table_parser_reads_the_annotation():
    parsed = configuration.parse_ascend_configuration(
        podstatus.configuration(A3, A3.nodes[7], "train-0", ["Ascend910-0", "Ascend910-1"])
    )
    assert parsed.pod_name == "train-0"
    assert [(d.device_id, d.super_device_id) for d in parsed.devices] == [("0", "112"), ("1", "113")]


def test_a_910b_server_has_no_super_device_ids_and_reports_minus_two():
    document = json.loads(podstatus.configuration(B, B.nodes[1], "p", ["Ascend910-3"]))
    assert document["devices"] == [{"device_id": "3", "device_ip": "29.0.1.4"}]
    assert (document["super_pod_id"], document["server_index"]) == (-2, "-2")


def test_allocation_annotations_record_the_real_devices_in_go_string_order():
    annotations = podstatus.allocation_annotations(A3, A3.nodes[0], "p", ["Ascend910-2", "Ascend910-10"])
    assert annotations[podstatus.REAL_ANNOTATION] == "Ascend910-10,Ascend910-2"
    assert annotations[podstatus.KUBELET_DEVICES_ANNOTATION] == "Ascend910-10,Ascend910-2"
    assert configuration.ANNOTATION in annotations
    pod = {"metadata": {"annotations": annotations}}
    assert podstatus.used_devices(pod) == ("Ascend910-10", "Ascend910-2")
    assert podstatus.allocation_annotations(A3, A3.nodes[0], "p", []) == {}


def test_a_started_pod_is_running_with_its_ips_and_ready_conditions():
    pod = {"metadata": {"uid": "u1"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    status = podstatus.running_status(pod, "10.0.0.1", "100.64.0.2", "2026-11-29T01:00:00Z")
    assert (status["phase"], status["hostIP"], status["podIP"]) == ("Running", "10.0.0.1", "100.64.0.2")
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["containerStatuses"][0]["state"]["running"]


def test_gb200_pods_get_only_the_simulators_record_of_their_gpus():
    gb200 = layout.build(hardware.describe("nvidia-gb200-nvl72"), node_count=1)
    annotations = podstatus.allocation_annotations(gb200, gb200.nodes[0], "p", ["nvidia-1", "nvidia-0"])
    assert annotations == {podstatus.SIMULATED_DEVICES_ANNOTATION: "nvidia-0,nvidia-1"}
    assert podstatus.used_devices({"metadata": {"annotations": annotations}}) == ("nvidia-0", "nvidia-1")


def test_atlas_950_devices_carry_the_network_levels_the_v2_rank_table_needs():
    a5 = layout.build(hardware.describe("atlas-950"), node_count=10)
    annotations = podstatus.allocation_annotations(a5, a5.nodes[9], "p", ["npu-5"])
    assert configuration.NPU_ANNOTATION in annotations
    parsed = configuration.parse_ascend_configuration(annotations[configuration.NPU_ANNOTATION])
    (device,) = parsed.devices
    assert [level.level for level in device.level_list] == [0, 1, 3]
    ub = device.level_list[0].element("UB")
    assert ub is not None and ub.net_instance_id == "0_9" and ub.net_type == "TOPO_FILE_DESC"
    assert ub.rank_addr_list[0].addr == f"{0:016x}0000000900050101"
    roce = device.level_list[2].element("ROCE")
    assert roce is not None and roce.rank_addr_list[0].addr == a5.nodes[9].device_ip(5)
