"""Adversarial edges of pod admission: stale memory, dry runs, odd pod shapes, malformed reviews, failures.

The webhook runs here on a real `Binder` against a small in-memory API server that enforces resourceVersions as
kube-apiserver does (a status patch with an old one gets 409), so a grant that skipped the server shows.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import types
from typing import Any

import pytest
from superpod.cluster import client
from superpod.controller import admission, binder, podmutation, podrequest
from superpod_sandbox.apiserver.patches import jsonpatch

from tests.unit.admission import builders

JSON = dict[str, Any]
RESOURCE = "huawei.com/Ascend910"
PATH = "/apis/superpod.dev/v1alpha1/namespaces/team-a/superpodpartitions/train"


class PartitionServer:
    """One partition, read and status-patched with kube's optimistic concurrency (409 on a stale version)."""

    def __init__(self, allocation: list[JSON]) -> None:
        self.obj: JSON = {
            "apiVersion": "superpod.dev/v1alpha1",
            "kind": "SuperPodPartition",
            "metadata": {
                "name": "train",
                "namespace": "team-a",
                "uid": "uid-1",
                "resourceVersion": "100",
                "generation": 1,
            },
            "spec": {"superPod": "cm384-a", "npus": 2 * len(allocation)},
            "status": builders.status(allocation),
        }
        self.reads = 0
        self.patches = 0

    def rebind(self, allocation: list[JSON]) -> None:
        """Another writer (another replica) changes the allocation."""
        self.obj["status"]["allocation"] = allocation
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)

    async def get_or_none(self, path: str) -> JSON | None:
        assert path == PATH
        self.reads += 1
        return copy.deepcopy(self.obj)

    async def patch(self, path: str, body: JSON) -> JSON:
        assert path == f"{PATH}/status"
        if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise client.ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})
        self.patches += 1
        self.obj["status"] = {**self.obj["status"], **body["status"]}
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.obj)


def webhook_on(server: PartitionServer, mirrored: JSON | None = None) -> admission.Webhook:
    """The webhook of a replica whose fleet mirror holds `mirrored` (default: what the server holds now)."""
    fleet = types.SimpleNamespace(
        api=server,
        partitions={"team-a/train": copy.deepcopy(mirrored or server.obj)},
        superpods={
            "cm384-a": types.SimpleNamespace(
                profile=types.SimpleNamespace(name="cloudmatrix-384", resource_name=RESOURCE)
            )
        },
    )
    return admission.Webhook(fleet, binder.Binder(server))  # type: ignore[arg-type]


def review(obj: Any, *, namespace: str = "team-a", dry_run: bool = False, **request: Any) -> JSON:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-7",
            "operation": "CREATE",
            "namespace": namespace,
            "object": obj,
            "dryRun": dry_run,
            **request,
        },
    }


def patched(pod: JSON, answer: JSON) -> JSON:
    operations = json.loads(base64.b64decode(answer["response"]["patch"]))
    result: JSON = jsonpatch.json_patch(copy.deepcopy(pod), operations)
    return result


def annotation(pod: JSON) -> str:
    return str(pod["metadata"]["annotations"][RESOURCE])


def placement(pod: JSON) -> tuple[str, str]:
    """The node the pod is pinned to and its devices there."""
    required = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return required["nodeSelectorTerms"][0]["matchFields"][-1]["values"][0], annotation(pod)


async def test_a_pod_recreated_under_its_name_is_not_granted_a_slot_another_replica_gave_away():
    # memory (mirror and binder) says worker-0 holds slot 0; meanwhile another replica released it (worker-0
    # was deleted) and gave slot 0 to worker-9. The new worker-0 must not be sent to slot 0's devices.
    server = PartitionServer(builders.slots(2, bound={0: "worker-0"}))
    webhook = webhook_on(server)
    server.rebind(builders.slots(2, bound={0: "worker-9"}))
    answer = await webhook.review(review(builders.pod("worker-0")))
    assert answer["response"]["allowed"]
    assert annotation(patched(builders.pod("worker-0"), answer)) == "Ascend910-2,Ascend910-3"
    allocation = server.obj["status"]["allocation"]
    assert [slot.get("pod") for slot in allocation] == ["worker-9", "worker-0"]


async def test_a_dry_run_is_not_allowed_on_stale_memory_of_a_free_slot():
    server = PartitionServer(builders.slots(1))
    webhook = webhook_on(server)
    server.rebind(builders.slots(1, bound={0: "worker-9"}))  # the last slot went to a pod on another replica
    answer = await webhook.review(review(builders.pod("worker-0"), dry_run=True))
    assert not answer["response"]["allowed"]
    assert "full" in answer["response"]["status"]["message"]
    assert server.patches == 0


async def test_a_dry_run_claims_nothing_and_a_real_create_after_it_gets_the_slot():
    server = PartitionServer(builders.slots(1))
    webhook = webhook_on(server)
    dry = await webhook.review(review(builders.pod("worker-0"), dry_run=True))
    assert dry["response"]["allowed"] and server.patches == 0
    assert "pod" not in server.obj["status"]["allocation"][0]
    real = await webhook.review(review(builders.pod("worker-1")))
    assert real["response"]["allowed"]
    assert server.obj["status"]["allocation"][0]["pod"] == "worker-1"


async def test_a_generate_name_pod_is_recorded_under_the_name_its_patch_gives_it():
    server = PartitionServer(builders.slots(2))
    pod = builders.pod()
    del pod["metadata"]["name"]
    pod["metadata"]["generateName"] = "worker-"
    answer = await webhook_on(server).review(review(pod, name=""))
    name = patched(pod, answer)["metadata"]["name"]
    assert name.startswith("worker-") and len(name) == len("worker-") + podrequest.NAME_SUFFIX_LENGTH
    assert server.obj["status"]["allocation"][0]["pod"] == name


async def test_a_pod_without_name_or_generate_name_is_refused_not_given_a_random_name():
    server = PartitionServer(builders.slots(2))
    pod = builders.pod()
    del pod["metadata"]["name"]
    answer = await webhook_on(server).review(review(pod, name=""))
    assert not answer["response"]["allowed"]
    assert answer["response"]["status"] == {
        "message": "pod has neither metadata.name nor metadata.generateName; set one",
        "code": 403,
    }
    assert server.patches == 0


async def test_a_pod_object_without_a_namespace_binds_in_the_requests_namespace():
    server = PartitionServer(builders.slots(2))
    pod = builders.pod("worker-0")
    del pod["metadata"]["namespace"]
    answer = await webhook_on(server).review(review(pod, namespace="team-a"))
    assert answer["response"]["allowed"], answer["response"].get("status")
    operations = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert all(not op["path"].startswith("/metadata/namespace") for op in operations)
    assert server.obj["status"]["allocation"][0]["pod"] == "worker-0"


async def test_a_failure_while_building_the_patch_fails_closed_with_a_clear_message(monkeypatch):
    def broken(pod: JSON, binding: podmutation.Binding) -> list[JSON]:
        raise TypeError("a pod shape the patch cannot handle")

    monkeypatch.setattr(podmutation, "json_patch", broken)
    server = PartitionServer(builders.slots(2))
    answer = await webhook_on(server).review(review(builders.pod("worker-0")))
    assert answer["response"]["uid"] == "u-7"
    assert not answer["response"]["allowed"]
    assert answer["response"]["status"]["code"] == 500
    assert "a pod shape the patch cannot handle" in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    "request_part",
    [
        pytest.param({"object": None}, id="a create without an object"),
        pytest.param({"object": {"kind": "Pod"}}, id="a pod without metadata"),
        pytest.param({"operation": "DELETE", "object": None}, id="a delete"),
        pytest.param({"operation": "CONNECT"}, id="a connect"),
    ],
)
async def test_malformed_or_other_reviews_are_allowed_unchanged_with_the_requests_uid(request_part):
    server = PartitionServer(builders.slots(2))
    body = review(builders.pod("worker-0"))
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    body["request"].update(request_part)
    answer = await webhook_on(server).review(body)
    assert answer == {
        "apiVersion": "admission.k8s.io/v1beta1",
        "kind": "AdmissionReview",
        "response": {"uid": "u-7", "allowed": True},
    }
    assert server.patches == 0


def with_metadata(**metadata: Any) -> JSON:
    pod = builders.pod("worker-0")
    pod["metadata"].update(metadata)
    return pod


def with_spec(**spec: Any) -> JSON:
    return builders.pod("worker-0", **spec)


MAIN = {"name": "main", "image": "busybox"}
SIDECAR = {"name": "sidecar", "image": "busybox", "env": [{"name": "RANK", "value": "99"}]}
SHAPES = [
    pytest.param(with_metadata(annotations={"a.b/c~d": "x"}), id="annotations with slash and tilde keys"),
    pytest.param(
        with_metadata(annotations={RESOURCE: "Ascend910-7"}), id="a stale device annotation of its own"
    ),
    pytest.param(with_spec(affinity={"podAntiAffinity": {}}), id="affinity without node affinity"),
    pytest.param(
        with_spec(
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": {"matchExpressions": []}}
                    ]
                }
            }
        ),
        id="only preferred node affinity",
    ),
    pytest.param(
        with_spec(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}]},
                        ]
                    }
                }
            }
        ),
        id="two required node selector terms",
    ),
    pytest.param(
        with_spec(initContainers=[dict(MAIN, name="init")], containers=[MAIN, SIDECAR]),
        id="init containers and two containers, one with a RANK of its own",
    ),
    pytest.param(
        with_spec(containers=[dict(MAIN, resources={})]), id="a resources section without requests or limits"
    ),
    pytest.param(
        with_spec(containers=[dict(MAIN, resources={"requests": {RESOURCE: "2"}})]),
        id="a request without a limit",
    ),
    pytest.param(
        with_spec(
            containers=[dict(MAIN, volumeMounts=[{"name": "data", "mountPath": "/data"}])],
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
        id="volumes and mounts of its own",
    ),
    pytest.param(builders.pod("worker-0"), id="no annotations, env, volumes or affinity"),
    pytest.param(with_metadata(annotations={}), id="an empty annotations map"),
]


@pytest.mark.parametrize("pod", SHAPES)
async def test_the_patch_applies_to_any_pod_shape_and_keeps_the_users_data(pod):
    server = PartitionServer(builders.slots(2))
    original = copy.deepcopy(pod)
    answer = await webhook_on(server).review(review(pod))
    assert pod == original
    assert answer["response"]["allowed"], answer["response"].get("status")
    result = patched(pod, answer)  # the sandbox's RFC 6902 patch refuses a path whose parent is missing
    assert annotation(result) == "Ascend910-0,Ascend910-1"
    for key, value in (original["metadata"].get("annotations") or {}).items():
        if key != RESOURCE:
            assert result["metadata"]["annotations"][key] == value
    assert result["metadata"]["labels"] == original["metadata"]["labels"]
    assert result["spec"].get("initContainers") == original["spec"].get("initContainers")
    for container in result["spec"]["containers"]:
        names = [item["name"] for item in container["env"]]
        assert sorted(names) == sorted(set(names)), "one entry per name"
        assert {item["name"]: item.get("value") for item in container["env"]}["RANK"] == "0"
        limits = container.get("resources", {}).get("limits", {})
        requests = container.get("resources", {}).get("requests", {})
        assert limits.get(RESOURCE) == requests.get(RESOURCE, limits.get(RESOURCE))
    for volume in original["spec"].get("volumes") or []:
        assert volume in result["spec"]["volumes"]
    terms = result["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    pin = {"key": "metadata.name", "operator": "In", "values": ["node-0"]}
    assert all(pin in term["matchFields"] for term in terms["nodeSelectorTerms"])
    assert podmutation.json_patch(result, _binding_of(result)) == []


def _binding_of(pod: JSON) -> podmutation.Binding:
    """The binding the pod got (what a second admission of the patched pod would inject)."""
    env = {item["name"]: item.get("value") for item in pod["spec"]["containers"][0]["env"]}
    return podmutation.Binding(
        name=None,
        node="node-0",
        devices=tuple(annotation(pod).split(",")),
        rank=int(env["RANK"]),
        world_size=int(env["WORLD_SIZE"]),
        resource=RESOURCE,
        rank_table=next(
            (
                v["configMap"]["name"]
                for v in pod["spec"].get("volumes") or []
                if v["name"] == "superpod-rank-table"
            ),
            None,
        ),
    )


class InterleavingServer(PartitionServer):
    """Yields to the other replica between a read or a write's version check and its effect."""

    async def get_or_none(self, path: str) -> JSON | None:
        await asyncio.sleep(0)
        return await super().get_or_none(path)

    async def patch(self, path: str, body: JSON) -> JSON:
        await asyncio.sleep(0)
        return await super().patch(path, body)


async def test_two_replicas_admitting_at_once_give_every_slot_once_and_lose_no_claim():
    server = InterleavingServer(builders.slots(8))
    replicas = [webhook_on(server), webhook_on(server)]
    answers = await asyncio.gather(
        *(replicas[i % 2].review(review(builders.pod(f"worker-{i}"))) for i in range(10))
    )
    allowed = {
        f"worker-{i}": placement(patched(builders.pod(f"worker-{i}"), answer))
        for i, answer in enumerate(answers)
        if answer["response"]["allowed"]
    }
    assert len(allowed) == 8 and len(set(allowed.values())) == 8
    recorded = {
        slot["pod"]: (slot["node"], ",".join(slot["devices"])) for slot in server.obj["status"]["allocation"]
    }
    assert recorded == allowed
    denied = [
        answer["response"]["status"]["message"] for answer in answers if not answer["response"]["allowed"]
    ]
    assert len(denied) == 2 and all("is full" in message for message in denied)
    assert sum(replica.binder.conflicts for replica in replicas) > 0  # the replicas did race
