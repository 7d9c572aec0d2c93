"""Which slots go free: pods that finished, were deleted, or never appeared within the grace period."""

from __future__ import annotations

from types import SimpleNamespace

from superpod.controller import bindings

from tests.unit.admission import builders

KEY = "team-a/train"


def tracker(grace: float = 30.0) -> bindings.Bindings:
    api = SimpleNamespace()  # not called: only the pod events below feed it
    fleet = SimpleNamespace(partitions={})  # no partition known: pod events only record the pods
    return bindings.Bindings(api, fleet, SimpleNamespace(), grace=grace)  # type: ignore[arg-type]


def pod(name: str, phase: str = "Running", partition: str = "train") -> dict:
    return {
        "metadata": {"name": name, "namespace": "team-a", "labels": {"superpod.dev/partition": partition}},
        "status": {"phase": phase},
    }


ALLOCATION = builders.slots(3, bound={0: "running", 1: "done", 2: "deleted"})


def test_finished_and_deleted_pods_free_their_slots_at_once():
    pods = tracker()
    for item in (pod("running"), pod("done", "Succeeded"), pod("deleted")):
        pods.on_pod("", None, item)
    pods.on_pod("", pod("deleted"), None)
    release, next_check = pods.finished_or_gone(KEY, ALLOCATION, now=100.0)
    assert sorted(release) == ["deleted", "done"]
    assert next_check is None


def test_a_pod_that_never_appeared_frees_its_slot_after_the_grace_period():
    pods = tracker(grace=30.0)
    allocation = builders.slots(1, bound={0: "phantom"})
    assert pods.finished_or_gone(KEY, allocation, now=100.0) == ([], 30.0)
    assert pods.finished_or_gone(KEY, allocation, now=120.0) == ([], 10.0)
    pods.on_pod("", None, pod("phantom"))  # it came after all
    assert pods.finished_or_gone(KEY, allocation, now=131.0) == ([], None)


def test_a_phantom_is_released_once_its_grace_is_over():
    pods = tracker(grace=30.0)
    allocation = builders.slots(1, bound={0: "phantom"})
    pods.finished_or_gone(KEY, allocation, now=100.0)
    assert pods.finished_or_gone(KEY, allocation, now=130.0) == (["phantom"], None)


def test_a_pod_relabelled_to_another_partition_leaves_the_first_one():
    pods = tracker()
    pods.on_pod("", None, pod("moved"))
    pods.on_pod("", pod("moved"), pod("moved", partition="other"))
    assert pods.finished_or_gone(KEY, builders.slots(1, bound={0: "moved"}), now=1.0) == (["moved"], None)
    assert "moved" in pods.pods["team-a/other"]


def bound_pod(name: str, node: str, devices: str, phase: str = "Running") -> dict:
    body = pod(name, phase)
    body["metadata"]["annotations"] = {"huawei.com/Ascend910": devices}
    body["spec"] = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                    ]
                }
            }
        }
    }
    return body


def test_a_running_pod_whose_free_slot_no_longer_names_it_is_found_with_that_slot():
    pods = tracker()
    allocation = builders.slots(2, bound={0: "kept"})
    pods.on_pod("", None, bound_pod("kept", "node-0", "Ascend910-0,Ascend910-1"))
    pods.on_pod("", None, bound_pod("recreated", "node-0", "Ascend910-2,Ascend910-3"))
    pods.on_pod("", None, bound_pod("finished", "node-0", "Ascend910-2,Ascend910-3", phase="Failed"))
    pods.on_pod("", None, bound_pod("elsewhere", "node-9", "Ascend910-2,Ascend910-3"))
    assert pods.unrecorded(KEY, allocation, "huawei.com/Ascend910") == [("recreated", 1)]
