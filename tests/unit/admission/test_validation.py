"""The validating webhook's decisions per kind of review, from memory and at most one read."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from superpod.api import superpod as api_superpod
from superpod.controller import membership, podmutation, validation

from tests.unit.admission import builders

JSON = dict[str, Any]
R = "huawei.com/Ascend910"
BINDING = podmutation.Binding(
    name=None, node="node-0", devices=("Ascend910-0", "Ascend910-1"), rank=0, world_size=4, resource=R,
    rank_table=None,
)  # fmt: skip


def bound(name: str = "worker-0", phase: str = "Pending") -> JSON:
    pod = builders.pod(name)
    podmutation.apply(pod, BINDING)
    pod["status"] = {"phase": phase}
    return pod


def plain(name: str = "intruder", devices: int = 16, **spec: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": "team-b"},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {R: str(devices)}}}], **spec},
    }


class Reads:
    """The API as the validator reads it: partitions and pods by path."""

    def __init__(self, objects: dict[str, JSON] | None = None) -> None:
        self.objects = objects or {}
        self.paths: list[str] = []

    async def get_or_none(self, path: str) -> JSON | None:
        self.paths.append(path)
        return self.objects.get(path)


PARTITION_PATH = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions/train"


def partition(bound_to: str | None = "worker-0") -> JSON:
    allocation = builders.slots(2, bound={0: bound_to} if bound_to else {})
    return {
        "metadata": {"name": "train", "namespace": "team-a", "resourceVersion": "5", "uid": "u"},
        "spec": {"superPod": "cm384-a"},
        "status": builders.status(allocation),
    }


def validator(
    memory: JSON | None = None,
    api: Reads | None = None,
    mirrored: list[JSON] = (),
    namespace: str | None = None,
) -> validation.Validator:
    view = membership.Membership()
    view.on_superpod(
        "cm384-a",
        api_superpod.SuperPodSpec.model_validate(
            {"profile": "cloudmatrix-384", "nodeSelector": {"matchLabels": {"pool": "sp"}}}
        ),
        R,
    )
    for name, pool in (("node-0", "sp"), ("node-1", "sp"), ("cpu-0", "cpu")):
        view.on_node(name, None, {"metadata": {"name": name, "labels": {"pool": pool}}})
    reads = api or Reads()
    fleet = SimpleNamespace(
        partitions={"team-a/train": memory} if memory else {},
        superpods={"cm384-a": SimpleNamespace(resource=R)},
        api=reads,
    )
    binder = SimpleNamespace(known=lambda namespace, name: None, api=reads)
    objects = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in mirrored}
    bindings = SimpleNamespace(
        pods=SimpleNamespace(seen=lambda namespace, name: objects.get(f"{namespace}/{name}"))
    )
    return validation.Validator(fleet, binder, bindings, view, namespace=namespace)  # type: ignore[arg-type]


def review(operation: str, obj: JSON, old: JSON | None = None, **extra: Any) -> JSON:
    namespace = obj["metadata"].get("namespace", "team-a")
    return {
        "uid": "1",
        "operation": operation,
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "name": obj["metadata"].get("name", ""),
        "object": obj,
        "oldObject": old,
        **extra,
    }


def binding(pod: str, node: str, namespace: str = "team-a") -> JSON:
    body = {"kind": "Binding", "metadata": {"name": pod, "namespace": namespace}, "target": {"name": node}}
    return review("CREATE", body, subResource="binding")


def relabelled(pod: JSON, **labels: str) -> JSON:
    changed = copy.deepcopy(pod)
    changed["metadata"]["labels"] = labels
    return changed


CASES = [
    ("a plain pod asking for devices on a member by nodeName", validator(), review("CREATE", plain(nodeName="node-1")), "intruder"),
    ("a plain pod asking for devices with no constraint", validator(), review("CREATE", plain()), None),
    ("a partition pod created as its slot says", validator(partition()), review("CREATE", bound()), None),
    (
        "a partition pod whose slot memory lacks but a read finds",
        validator(partition(None), Reads({PARTITION_PATH: partition()})),
        review("CREATE", bound()),
        None,
    ),
    (
        "a partition pod created again under its name after its old slot was freed",
        validator(partition(None), Reads({PARTITION_PATH: partition(None)})),
        review("CREATE", bound()),
        None,
    ),
    (
        "a partition pod whose slot another pod holds",
        validator(partition("someone-else"), Reads({PARTITION_PATH: partition("someone-else")})),
        review("CREATE", bound()),
        "holds no slot",
    ),
    ("a dry run of a partition pod", validator(), review("CREATE", bound(), dryRun=True), None),
    ("a running bound pod losing its label", validator(), review("UPDATE", relabelled(bound()), bound()), "label"),
    ("a finished bound pod losing its label", validator(), review("UPDATE", relabelled(bound("w", "Succeeded")), bound("w", "Succeeded")), None),
    (
        "a pod given the partition label by an update",
        validator(),
        review("UPDATE", relabelled(builders.pod(), **{"superpod.dev/partition": "train"}), relabelled(builders.pod())),
        "only be set when a pod is created",
    ),
    ("a binding of a bound pod to its node", validator(mirrored=[bound()]), binding("worker-0", "node-0"), None),
    ("a binding of a bound pod to another node", validator(mirrored=[bound()]), binding("worker-0", "node-1"), "may not be bound to node node-1"),
    (
        "a binding of an unseen pod asking for devices to a member node",
        validator(api=Reads({"/api/v1/namespaces/team-b/pods/intruder": plain()})),
        binding("intruder", "node-1", "team-b"),
        "node node-1 is a member of SuperPod cm384-a",
    ),
    ("a binding of an unseen pod to a non-member node", validator(), binding("intruder", "cpu-0", "team-b"), None),
    (
        "a labelled pod outside the served namespace is judged as a pod without a partition",
        validator(namespace="team-b"),
        review("CREATE", bound()),
        "SuperPod cm384-a",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "judge", "request_", "refused"), CASES, ids=[case for case, *_ in CASES])
async def test_each_kind_of_review_is_decided(case, judge, request_, refused):
    answer = await judge.review({"apiVersion": "admission.k8s.io/v1", "request": request_})
    response = answer["response"]
    assert response["uid"] == "1"
    if refused is None:
        assert response["allowed"], (case, response)
    else:
        assert not response["allowed"], case
        assert response["status"]["code"] == 403
        assert refused in response["status"]["message"], (case, response["status"]["message"])


async def test_a_binding_to_a_non_member_node_reads_nothing():
    api = Reads()
    judge = validator(api=api)
    await judge.review({"request": binding("anyone", "cpu-0", "team-b")})
    assert api.paths == []
