"""Which slots go free: pods that finished or were deleted; pods the mirror lost or never showed are read first."""

from __future__ import annotations

import pytest
from superpod.controller import partitionpods

from tests.unit.admission import builders

KEY = "team-a/train"


class Pods:
    """The API's pods, as `get_or_none` reads them (the only call the tracker makes)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.reads: list[str] = []

    async def get_or_none(self, path: str) -> dict | None:
        self.reads.append(path.rpartition("/")[2])
        return self.objects.get(path.rpartition("/")[2])


def tracker(grace: float = 30.0, api: Pods | None = None) -> partitionpods.PartitionPods:
    return partitionpods.PartitionPods(api or Pods(), lambda key: None, grace=grace)  # type: ignore[arg-type]


def pod(name: str, phase: str = "Running", partition: str | None = "train", deleting: bool = False) -> dict:
    labels = {"superpod.dev/partition": partition} if partition else {}
    metadata = {"name": name, "namespace": "team-a", "labels": labels, "uid": f"uid-{name}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": metadata, "status": {"phase": phase}}


ALLOCATION = builders.slots(3, bound={0: "running", 1: "done", 2: "deleted"})


def test_finished_and_deleted_pods_free_their_slots_at_once():
    pods = tracker()
    for item in (pod("running"), pod("done", "Succeeded"), pod("deleted", deleting=True)):
        pods.on_pod("", None, item)
    pods.on_pod("", pod("deleted", deleting=True), None)
    release, confirm, next_check = pods.finished_or_gone(KEY, ALLOCATION, now=100.0)
    assert sorted(release) == ["deleted", "done"]
    assert (confirm, next_check) == ([], None)


def test_a_pod_that_never_appeared_is_read_once_the_grace_period_is_over():
    pods = tracker(grace=2.0)
    allocation = builders.slots(1, bound={0: "phantom"})
    assert pods.finished_or_gone(KEY, allocation, now=100.0) == ([], [], 2.0)
    assert pods.finished_or_gone(KEY, allocation, now=101.5) == ([], [], 0.5)
    assert pods.finished_or_gone(KEY, allocation, now=102.0) == ([], ["phantom"], None)
    pods.on_pod("", None, pod("phantom"))  # it came after all
    assert pods.finished_or_gone(KEY, allocation, now=103.0) == ([], [], None)


@pytest.mark.parametrize(
    ("case", "leaves", "in_the_api", "released", "detached"),
    [
        (
            "a pod whose label was removed still runs: its slot stays",
            lambda p: p.pop("labels"),
            True,
            [],
            True,
        ),
        (
            "a pod relabelled to another partition still runs: its slot stays",
            lambda p: p["labels"].update({"superpod.dev/partition": "other"}),
            True,
            [],
            True,
        ),
        ("an unscheduled pod deleted at once is gone: its slot goes", None, False, ["left"], False),
    ],
)
async def test_a_pod_that_left_the_mirror_without_a_deletion_is_read_before_its_slot_goes(
    case, leaves, in_the_api, released, detached
):
    api = Pods()
    pods = tracker(api=api)
    allocation = builders.slots(1, bound={0: "left"})
    pods.on_pod("", None, pod("left"))
    now = pod("left")
    if leaves is not None:
        leaves(now["metadata"])
    if in_the_api:
        api.objects["left"] = now
    pods.on_pod("", pod("left"), now if leaves is not None else None)  # as the label-selected watch shows it

    release, confirm, _ = pods.finished_or_gone(KEY, allocation, now=1.0)
    assert (release, confirm) == ([], ["left"]), case
    assert await pods.confirm(KEY, confirm) == (released, detached), case

    if in_the_api:  # once it finishes, the next read frees the slot
        api.objects["left"] = {**now, "status": {"phase": "Succeeded"}}
        assert await pods.confirm(KEY, confirm) == (["left"], False), case


async def test_a_pod_of_the_same_name_that_is_another_pod_does_not_keep_the_slot():
    api = Pods()
    pods = tracker(api=api)
    pods.on_pod("", None, pod("web-0"))
    unlabelled = pod("web-0", partition=None)
    api.objects["web-0"] = {**unlabelled, "metadata": {**unlabelled["metadata"], "uid": "another"}}
    pods.on_pod("", pod("web-0"), None)
    assert await pods.confirm(KEY, ["web-0"]) == (["web-0"], False)


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
