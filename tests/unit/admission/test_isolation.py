"""Pods without a partition that reach for an isolated SuperPod's devices are refused; every other pod passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from superpod.controller import isolation

JSON = dict[str, Any]
R = "huawei.com/Ascend910"
TAINT = "superpod.dev/partitions-only"
SUPERPOD = isolation.IsolatedSuperPod("cm384-a", R, frozenset({"a3-0", "a3-1"}))


def node(name: str, **labels: str) -> JSON:
    return {"metadata": {"name": name, "labels": labels}}


NODES = {
    "a3-0": node("a3-0", pool="superpod", zone="z1"),
    "a3-1": node("a3-1", pool="superpod", zone="z2"),
    "cpu-0": node("cpu-0", pool="cpu", zone="z1"),
}


def pod(
    devices: int = 0,
    *,
    annotation: str | None = None,
    tolerations: list[JSON] | None = None,
    node_name: str | None = None,
    selector: dict[str, str] | None = None,
    terms: list[JSON] | None = None,
    resource: str = R,
    init_devices: int = 0,
) -> JSON:
    container: JSON = {"name": "main", "image": "busybox"}
    if devices:
        container["resources"] = {"limits": {resource: str(devices)}}
    spec: JSON = {"containers": [container]}
    if init_devices:
        spec["initContainers"] = [{"name": "init", "resources": {"requests": {resource: str(init_devices)}}}]
    if tolerations is not None:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    if terms is not None:
        spec["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        }
    metadata: JSON = {"name": "intruder", "namespace": "team-b"}
    if annotation is not None:
        metadata["annotations"] = {resource: annotation}
    return {"metadata": metadata, "spec": spec}


def pin(name: str) -> list[JSON]:
    return [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [name]}]}]


REFUSED = [
    (
        "a pod tolerating the taint and asking for devices",
        pod(16, tolerations=[{"key": TAINT, "operator": "Exists"}]),
    ),
    ("a pod tolerating every taint and asking for devices", pod(16, tolerations=[{"operator": "Exists"}])),
    (
        "a pod tolerating the taint's value exactly and asking for devices",
        pod(
            16, tolerations=[{"key": TAINT, "operator": "Equal", "value": "cm384-a", "effect": "NoSchedule"}]
        ),
    ),
    ("a pod setting nodeName to a member and asking for devices", pod(16, node_name="a3-0")),
    ("a pod asking only in an init container, with nodeName a member", pod(init_devices=8, node_name="a3-1")),
    (
        "a pod naming devices in the annotation, its node affinity pinned to a member",
        pod(annotation="Ascend910-0,Ascend910-1", terms=pin("a3-0")),
    ),
    ("a pod whose nodeSelector selects member nodes only", pod(16, selector={"pool": "superpod"})),
    (
        "a pod whose node affinity admits member nodes only",
        pod(16, terms=[{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["superpod"]}]}]),
    ),
    (
        "a pod naming devices and tolerating the taint, asking for none",
        pod(annotation="Ascend910-3", tolerations=[{"operator": "Exists"}]),
    ),
]

ALLOWED = [
    ("a plain pod asking for devices (the taint keeps it off member nodes)", pod(16)),
    (
        "a DaemonSet-like pod tolerating every taint but asking for no device",
        pod(tolerations=[{"operator": "Exists"}]),
    ),
    ("a pod asking for devices on a non-member node by nodeName", pod(16, node_name="cpu-0")),
    ("a pod whose nodeSelector admits member and other nodes", pod(16, selector={"zone": "z1"})),
    ("a pod whose selector matches no node at all", pod(16, selector={"pool": "none"})),
    (
        "a pod tolerating the taint for a NoExecute effect only",
        pod(16, tolerations=[{"key": TAINT, "operator": "Exists", "effect": "NoExecute"}]),
    ),
    (
        "a pod asking for another device resource on a member",
        pod(4, node_name="a3-0", resource="nvidia.com/gpu", tolerations=[{"operator": "Exists"}]),
    ),
    ("a pod naming devices but unable to reach member nodes", pod(2, annotation="Ascend910-0,Ascend910-1")),
    (
        "a pod tolerating the taint, pinned to a member, asking for nothing",
        pod(node_name="a3-0", tolerations=[{"operator": "Exists"}]),
    ),
]


@pytest.mark.parametrize(("case", "body"), REFUSED, ids=[case for case, _ in REFUSED])
def test_a_pod_without_a_partition_reaching_for_the_devices_is_refused_with_what_to_do(case, body):
    message = isolation.refusal(body, [SUPERPOD], NODES)
    assert message is not None, case
    assert message.startswith("pod intruder ")
    assert (
        "label the pod superpod.dev/partition=<name> with a SuperPodPartition of namespace team-b" in message
    )
    assert "SuperPod cm384-a" in message


@pytest.mark.parametrize(("case", "body"), ALLOWED, ids=[case for case, _ in ALLOWED])
def test_every_other_pod_passes(case, body):
    assert isolation.refusal(body, [SUPERPOD], NODES) is None, case


def test_a_superpod_that_does_not_isolate_refuses_nothing():
    assert isolation.refusal(pod(16, node_name="a3-0"), [], NODES) is None


def test_an_update_is_refused_only_for_what_it_adds():
    pending = pod(16)
    tolerating = copy.deepcopy(pending)
    tolerating["spec"]["tolerations"] = [{"operator": "Exists"}]
    assert isolation.update_refusal(pending, tolerating, [SUPERPOD], NODES) is not None
    # a pod that ran on a member before isolation was turned on may still be labelled by its controller
    before = pod(16, node_name="a3-0")
    relabelled = copy.deepcopy(before)
    relabelled["metadata"]["labels"] = {"app": "x"}
    assert isolation.update_refusal(before, relabelled, [SUPERPOD], NODES) is None


def test_the_message_names_the_way_in():
    message = isolation.refusal(pod(16, node_name="a3-0"), [SUPERPOD], NODES)
    assert message is not None
    assert "asks for 16 huawei.com/Ascend910 and sets spec.nodeName a3-0, a member node" in message
