"""Binding and Allocate decisions of the kubelet/device-plugin stand-in."""

from __future__ import annotations

import pytest
from superpod_sandbox.sim import hardware, layout, nodes, scheduling

A3 = hardware.describe("cloudmatrix-384")
FLEET = layout.build(A3, node_count=3)
NOW = "2026-11-29T01:00:00Z"
R = A3.resource


def _pod(
    devices=0, *, annotation=None, node_name=None, selector=None, affinity=None, tolerations=None
) -> dict:
    spec: dict = {
        "containers": [{"name": "main", "resources": {"limits": {R: str(devices)}} if devices else {}}]
    }
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = selector
    if affinity:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": affinity}
            }
        }
    if tolerations:
        spec["tolerations"] = tolerations
    metadata: dict = {"name": "p", "namespace": "ns"}
    if annotation:
        metadata["annotations"] = {R: annotation}
    return {"metadata": metadata, "spec": spec, "status": {"phase": "Pending"}}


def _view(index=0, *, in_use=(), unhealthy=(), promised=0, node=None) -> scheduling.NodeView:
    sim = FLEET.nodes[index]
    return scheduling.NodeView(
        node=node or nodes.node_object(FLEET, sim, NOW),
        sim=sim,
        usable=frozenset(sim.devices) - frozenset(unhealthy),
        in_use=frozenset(in_use),
        promised=promised,
    )


NAME_1 = FLEET.nodes[1].name


@pytest.mark.parametrize(
    ("case", "pod", "fits_node_1"),
    [
        ("no constraint", _pod(), True),
        ("nodeName naming it", _pod(node_name=NAME_1), True),
        ("nodeName naming another", _pod(node_name="other"), False),
        ("nodeSelector on its server label", _pod(selector={nodes.SERVER_LABEL: "1"}), True),
        ("nodeSelector on another server", _pod(selector={nodes.SERVER_LABEL: "2"}), False),
        (
            "affinity In",
            _pod(
                affinity=[
                    {
                        "matchExpressions": [
                            {"key": nodes.SERVER_LABEL, "operator": "In", "values": ["1", "2"]}
                        ]
                    }
                ]
            ),
            True,
        ),
        (
            "affinity NotIn",
            _pod(
                affinity=[
                    {"matchExpressions": [{"key": nodes.SERVER_LABEL, "operator": "NotIn", "values": ["1"]}]}
                ]
            ),
            False,
        ),
        (
            "affinity Exists",
            _pod(affinity=[{"matchExpressions": [{"key": "accelerator", "operator": "Exists"}]}]),
            True,
        ),
        (
            "affinity Exists on a missing label",
            _pod(affinity=[{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]),
            False,
        ),
        (
            "affinity DoesNotExist",
            _pod(affinity=[{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
            True,
        ),
        (
            "affinity Gt",
            _pod(
                affinity=[
                    {"matchExpressions": [{"key": nodes.SERVER_LABEL, "operator": "Gt", "values": ["0"]}]}
                ]
            ),
            True,
        ),
        (
            "matchFields on its name",
            _pod(
                affinity=[{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NAME_1]}]}]
            ),
            True,
        ),
        (
            "matchFields on another name",
            _pod(affinity=[{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]}]),
            False,
        ),
        (
            "terms are ORed",
            _pod(
                affinity=[
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]},
                    {"matchExpressions": [{"key": "accelerator", "operator": "Exists"}]},
                ]
            ),
            True,
        ),
        ("an empty term matches nothing", _pod(affinity=[{}]), False),
    ],
)
def test_node_constraints(case, pod, fits_node_1):
    node = nodes.node_object(FLEET, FLEET.nodes[1], NOW)
    assert (scheduling.node_mismatch(pod, node) is None) == fits_node_1, case


def test_a_tainted_down_node_takes_only_pods_that_tolerate_it():
    node = nodes.node_object(FLEET, FLEET.nodes[0], NOW)
    node["spec"]["taints"] = nodes.unreachable_taints(NOW)
    node["status"]["conditions"] = nodes.ready_conditions(NOW, ready=False)
    assert "taint" in scheduling.node_mismatch(_pod(), node)
    tolerating = _pod(tolerations=[{"operator": "Exists"}])
    assert scheduling.node_mismatch(tolerating, node) == "node(s) were not ready"


def test_binding_packs_onto_the_fullest_node_that_fits_and_explains_a_refusal():
    views = [_view(0, in_use=[f"Ascend910-{i}" for i in range(10)]), _view(1), _view(2, promised=14)]
    assert scheduling.choose_node(_pod(4), views, R) == (FLEET.nodes[0].name, "")
    assert scheduling.choose_node(_pod(8), views, R) == (FLEET.nodes[1].name, "")
    node, reason = scheduling.choose_node(_pod(8, selector={nodes.SERVER_LABEL: "2"}), views, R)
    assert node is None
    assert reason == (
        "0/3 nodes are available: 1 Insufficient huawei.com/Ascend910, "
        "2 node(s) didn't match Pod's node selector (huawei.com/topotree.serverid)."
    )


def test_allocate_takes_exactly_the_annotated_devices():
    allocation = scheduling.allocate(
        _pod(2, annotation="Ascend910-7,Ascend910-6"), _view(), R, A3.profile.rule
    )
    assert allocation == scheduling.Allocation(devices=("Ascend910-6", "Ascend910-7"))


@pytest.mark.parametrize(
    ("case", "pod", "view", "error"),
    [
        (
            "a device in use",
            _pod(2, annotation="Ascend910-0,Ascend910-1"),
            _view(in_use=["Ascend910-1"]),
            "device Ascend910-1 is already in use by ns/q",
        ),
        (
            "an unhealthy device",
            _pod(1, annotation="Ascend910-3"),
            _view(unhealthy=["Ascend910-3"]),
            "device Ascend910-3 is unhealthy",
        ),
        ("a device the node lacks", _pod(1, annotation="Ascend910-16"), _view(), "does not exist"),
        (
            "a count that differs from the request",
            _pod(2, annotation="Ascend910-0"),
            _view(),
            "names 1 devices, the pod requests 2",
        ),
        (
            "too few free devices",
            _pod(4),
            _view(in_use=[f"Ascend910-{i}" for i in range(13)]),
            "requested 4 huawei.com/Ascend910, 3 free",
        ),
    ],
)
def test_allocate_refuses_like_the_device_plugin(case, pod, view, error):
    allocation = scheduling.allocate(pod, view, R, A3.profile.rule, {"Ascend910-1": "ns/q"})
    assert allocation.devices == ()
    assert error in allocation.error, case


def test_an_annotation_on_a_pod_that_requests_no_device_gets_it_nothing():
    allocation = scheduling.allocate(
        _pod(0, annotation="Ascend910-0,Ascend910-1"), _view(), R, A3.profile.rule
    )
    assert allocation == scheduling.Allocation()


def test_allocate_without_an_annotation_takes_whole_hiam_pairs_on_a3():
    view = _view(in_use=["Ascend910-0", "Ascend910-3"])
    allocation = scheduling.allocate(_pod(2), view, R, A3.profile.rule)
    assert allocation.devices == ("Ascend910-4", "Ascend910-5")
    assert scheduling.allocate(_pod(1), view, R, A3.profile.rule).devices in {
        ("Ascend910-1",),
        ("Ascend910-2",),
    }


def test_requests_sum_containers_and_respect_init_containers():
    pod = _pod(2)
    pod["spec"]["containers"].append({"name": "side", "resources": {"requests": {R: "2"}}})
    pod["spec"]["initContainers"] = [{"name": "init", "resources": {"limits": {R: "8"}}}]
    assert scheduling.requested_devices(pod, R) == 8
