"""A bound pod keeps its slot's devices, node, toleration and partition label until it finishes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from superpod.controller import boundpods, podmutation

from tests.unit.admission import builders

JSON = dict[str, Any]
R = "huawei.com/Ascend910"
SLOT = {"rank": 0, "node": "node-0", "devices": ["Ascend910-0", "Ascend910-1"], "pod": "worker-0"}
BINDING = podmutation.Binding(
    name=None, node="node-0", devices=("Ascend910-0", "Ascend910-1"), rank=0, world_size=2, resource=R,
    rank_table=None,
)  # fmt: skip


def bound(phase: str = "Running") -> JSON:
    pod = builders.pod()
    podmutation.apply(pod, BINDING)
    pod["status"] = {"phase": phase}
    return pod


def changed(change: Callable[[JSON], Any]) -> JSON:
    pod = bound()
    change(pod)
    return pod


def _terms(pod: JSON) -> list[JSON]:
    return pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]


UPDATES = [
    ("the device annotation edited", lambda p: p["metadata"]["annotations"].update({R: "Ascend910-8,Ascend910-9"}), "annotation"),
    ("the device annotation removed", lambda p: p["metadata"]["annotations"].pop(R), "annotation"),
    ("another device resource's annotation added", lambda p: p["metadata"]["annotations"].update({"huawei.com/npu": "npu-0"}), "annotation"),
    ("the node affinity given another term", lambda p: _terms(p).append({"matchExpressions": [{"key": "x", "operator": "Exists"}]}), "node affinity"),
    ("the node pin changed", lambda p: _terms(p)[0]["matchFields"][0].update({"values": ["node-7"]}), "node affinity"),
    ("the toleration dropped", lambda p: p["spec"].pop("tolerations"), "toleration"),
    ("the partition label removed", lambda p: p["metadata"]["labels"].pop("superpod.dev/partition"), "label"),
    ("the partition label changed", lambda p: p["metadata"]["labels"].update({"superpod.dev/partition": "other"}), "label"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "named"), UPDATES, ids=[case for case, _, _ in UPDATES])
def test_an_update_moving_a_running_pod_off_its_slot_is_refused(case, change, named):
    message = boundpods.update_refusal(bound(), changed(change), {R, "huawei.com/npu"})
    assert message is not None, case
    assert message.startswith("pod worker-0 of partition train ")
    assert named in message


def test_an_update_of_other_fields_passes():
    def other(pod: JSON) -> None:
        pod["metadata"]["labels"]["team"] = "a"
        pod["metadata"]["annotations"]["huawei.com/AscendReal"] = "Ascend910-0,Ascend910-1"

    assert boundpods.update_refusal(bound(), changed(other), {R}) is None


def test_a_finished_pod_is_no_longer_bound():
    assert boundpods.is_bound(bound())
    assert not boundpods.is_bound(bound("Succeeded"))
    assert not boundpods.is_bound(bound("Failed"))


CREATES = [
    ("as the webhook bound it", lambda p: None, None),
    ("its annotation changed after the binding", lambda p: p["metadata"]["annotations"].update({R: "Ascend910-4"}), "annotation says"),
    ("its nodeName another node", lambda p: p["spec"].update({"nodeName": "node-5"}), "sets spec.nodeName node-5"),
    ("its pin removed", lambda p: p["spec"].pop("affinity"), "node affinity"),
    ("its toleration removed", lambda p: p["spec"].pop("tolerations"), "toleration"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "named"), CREATES, ids=[case for case, _, _ in CREATES])
def test_a_bound_pod_is_created_only_as_its_slot_says(case, change, named):
    message = boundpods.create_refusal(changed(change), SLOT, R)
    if named is None:
        assert message is None, case
    else:
        assert message is not None and named in message, case


def test_a_labelled_pod_with_no_recorded_slot_is_not_created():
    assert "holds no slot" in str(boundpods.create_refusal(bound(), None, R))


@pytest.mark.parametrize(
    ("case", "node", "refused"),
    [("to its slot's node", "node-0", False), ("to another node", "node-3", True)],
)
def test_a_bound_pod_is_bound_only_to_its_slots_node(case, node, refused):
    message = boundpods.binding_refusal(bound(), node)
    assert (message is not None) is refused, case
    if refused:
        assert message == (
            "pod worker-0 of partition train is bound to node node-0 (its slot's); it may not be bound to node node-3"
        )


def test_a_labelled_pod_the_webhook_never_bound_is_not_bound_anywhere():
    pod = copy.deepcopy(builders.pod())
    assert "never bound to a slot" in str(boundpods.binding_refusal(pod, "node-0"))


def test_adding_the_partition_label_by_update_is_refused_with_what_to_do():
    assert "create a new pod with the label" in boundpods.join_refusal(builders.pod())
