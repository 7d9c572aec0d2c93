"""Two tenants on one simulated SuperPoD: a partition's devices are used by its own pods only.

The fleet is five CloudMatrix 384 nodes; the SuperPod takes four of them (the fifth is a plain Ascend node of
nobody's). team-a's partition `victim` holds two nodes and runs its two pods; team-b has a partition `mine`
of one node and tries, each way issue 15 lists, to get at team-a's devices. After each attempt the guarantee
is checked on what the pods really got (the simulated device plugin's `huawei.com/AscendReal` annotation),
not on the operator's view: no device is held by two partitions, no pod uses a device a partition other than
its own holds, the victim's pods run, and the attacker got a refusal or nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from superpod.cluster import client
from superpod.controller import partitionpods

from tests.integration.admission.conftest import (
    SPOD,
    WEBHOOKS,
    admission_review,
    allocated,
    eventually,
    no_device_used_twice,
    partition,
    partitions_path,
    pod,
    pods_path,
    simulated,
)

JSON = dict[str, Any]
R = "huawei.com/Ascend910"
TAINT = "superpod.dev/partitions-only"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
NODES = [f"cloudmatrix-384-0-{i}" for i in range(5)]
OUTSIDER = NODES[-1]  # not a member of the SuperPod


def superpod() -> JSON:
    return {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPod",
        "metadata": {"name": "cm384-a"},
        "spec": {
            "profile": "cloudmatrix-384",
            "superPodID": 0,
            "reserveNodes": 0,
            "nodeSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [OUTSIDER]}
                ]
            },
        },
    }


@dataclasses.dataclass
class Tenants:
    api: client.KubeClient
    victim: list[JSON]  # team-a's slots, in rank order
    mine: list[JSON]  # team-b's slot


def _pin(node: str) -> JSON:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        }
    }


async def running(api: client.KubeClient, namespace: str, name: str) -> JSON | None:
    found = await api.get_or_none(f"{pods_path(namespace)}/{name}")
    return found if ((found or {}).get("status") or {}).get("phase") == "Running" else None


async def tainted(api: client.KubeClient, members: list[str]) -> bool:
    for name in NODES:
        taints = (await api.get(f"/api/v1/nodes/{name}")).get("spec", {}).get("taints") or []
        ours = [t for t in taints if t["key"] == TAINT]
        if ours != ([{"key": TAINT, "value": "cm384-a", "effect": "NoSchedule"}] if name in members else []):
            return False
    return True


@pytest_asyncio.fixture
async def tenants(cluster, operator) -> AsyncIterator[Tenants]:
    sandbox, api = cluster
    async with simulated(sandbox, nodes=5):
        await api.create(SPOD, superpod())
        await eventually(lambda: tainted(api, NODES[:4]), timeout=15)
        await api.create(partitions_path(), partition("victim", 32, devicesPerPod=16))
        victim = (await allocated(api, "victim"))["status"]["allocation"]
        await api.create(partitions_path("team-b"), partition("mine", 16, namespace="team-b"))
        mine = (await allocated(api, "mine", "team-b"))["status"]["allocation"]
        for index in range(2):
            await api.create(pods_path(), pod(f"victim-{index}", "victim"))
        for index in range(2):
            await eventually(lambda i=index: running(api, "team-a", f"victim-{i}"), timeout=20)
        yield Tenants(api, victim, mine)


async def check_the_guarantee(api: client.KubeClient) -> None:
    """No device held twice; no pod uses a device another partition holds; the victim's pods run."""
    await no_device_used_twice(api)
    for index in range(2):
        victim = await running(api, "team-a", f"victim-{index}")
        assert victim is not None, f"victim-{index} does not run"
        annotations = victim["metadata"]["annotations"]
        assert set(annotations["huawei.com/AscendReal"].split(",")) == set(annotations[R].split(","))


async def refused(coroutine: Any) -> str:
    try:
        await coroutine
    except client.ApiError as error:
        assert error.status in (400, 403), error
        return str(error)
    raise AssertionError("the attacker's request was allowed")


async def test_a_plain_pod_of_another_tenant_never_lands_on_a_partitions_node(tenants):
    api = tenants.api
    for name in ("plain-0", "plain-1"):
        await api.create(pods_path("team-b"), pod(name, None, devices=16, namespace="team-b"))

    first = await eventually(lambda: running(api, "team-b", "plain-0"), timeout=20)
    assert first["spec"]["nodeName"] == OUTSIDER  # the only node without the taint

    async def unschedulable() -> bool:
        events = await api.list("/api/v1/namespaces/team-b/events")
        return any(
            e["involvedObject"]["name"] == "plain-1"
            and e["reason"] == "FailedScheduling"
            and TAINT in e["message"]
            for e in events
        )

    await eventually(unschedulable, timeout=20)  # the outsider is full; every member node is tainted
    assert "nodeName" not in (await api.get(f"{pods_path('team-b')}/plain-1"))["spec"]
    await check_the_guarantee(api)


@pytest.mark.parametrize(
    ("case", "spec"),
    [
        ("its node affinity pins it to the victim's node", lambda node: {"affinity": _pin(node)}),
        ("it tolerates the taint", lambda node: {"tolerations": [{"operator": "Exists"}]}),
        ("it names the victim's node in spec.nodeName", lambda node: {"nodeName": node}),
    ],
)
async def test_an_unlabelled_pod_naming_the_victims_devices_is_refused(tenants, case, spec):
    api = tenants.api
    slot = tenants.victim[0]
    attacker = pod("thief", None, devices=16, namespace="team-b")
    attacker["metadata"]["annotations"] = {R: ",".join(slot["devices"])}
    attacker["spec"].update(spec(slot["node"]))

    message = await refused(api.create(pods_path("team-b"), attacker))

    assert 'admission webhook "validate-pods.superpod.dev" denied the request: pod thief' in message, case
    assert (
        "label the pod superpod.dev/partition=<name> with a SuperPodPartition of namespace team-b" in message
    )
    assert await api.get_or_none(f"{pods_path('team-b')}/thief") is None
    await check_the_guarantee(api)


async def test_a_bound_pod_cannot_be_edited_or_bound_onto_the_victims_devices(tenants):
    """A custom scheduler leaves a window between admission and binding: edits and a foreign binding."""
    api = tenants.api
    waiting = pod("sneaky", "mine", namespace="team-b")
    waiting["spec"]["schedulerName"] = "custom"  # the simulator binds only default-scheduler pods
    admitted = await api.create(pods_path("team-b"), waiting)
    path = f"{pods_path('team-b')}/sneaky"
    victim = tenants.victim[0]
    assert admitted["metadata"]["annotations"][R] == ",".join(tenants.mine[0]["devices"])

    # device names repeat on every node (Ascend910-0..15): bound to the victim's node, the pod's own annotation
    # would already take the victim's devices; an edit would pick others than its slot's
    edits = [
        ("the device annotation", {"metadata": {"annotations": {R: ",".join(victim["devices"][8:])}}}),
        ("the partition label", {"metadata": {"labels": {"superpod.dev/partition": None}}}),
        # kube-apiserver itself refuses this one for a pod without scheduling gates; the sandbox leaves it to us
        ("the node affinity", {"spec": {"affinity": _pin(victim["node"])}}),
    ]
    for what, change in edits:
        message = await refused(api.patch(path, change))
        assert (
            'admission webhook "validate-pods.superpod.dev" denied the request: pod sneaky of partition mine'
            in (message)
        ), what
    assert (await api.get(path))["metadata"]["annotations"][R] == ",".join(tenants.mine[0]["devices"])

    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "sneaky"}}
    elsewhere = {**binding, "target": {"apiVersion": "v1", "kind": "Node", "name": victim["node"]}}
    message = await refused(api.create(f"{path}/binding", elsewhere))
    assert (
        f"is bound to node {tenants.mine[0]['node']} (its slot's); it may not be bound to node {victim['node']}"
        in (message)
    )
    assert "nodeName" not in (await api.get(path))["spec"]

    home = {**binding, "target": {"apiVersion": "v1", "kind": "Node", "name": tenants.mine[0]["node"]}}
    await api.create(f"{path}/binding", home)
    started = await eventually(lambda: running(api, "team-b", "sneaky"), timeout=20)
    used = started["metadata"]["annotations"]["huawei.com/AscendReal"].split(",")
    assert set(used) == set(tenants.mine[0]["devices"])
    await check_the_guarantee(api)


async def test_a_running_pod_keeps_its_slot_when_its_label_goes(tenants):
    api = tenants.api
    path = f"{pods_path()}/victim-0"
    message = await refused(api.patch(path, {"metadata": {"labels": {"superpod.dev/partition": None}}}))
    assert "its label superpod.dev/partition cannot change or go until the pod finishes" in message

    await check_the_guarantee(api)

    # the webhook's refusal is the first line; without it (removed by mistake), the slot still follows the pod
    await api.delete(f"{VALIDATING}/superpod-operator")
    await api.patch(path, {"metadata": {"labels": {"superpod.dev/partition": None}}})
    await asyncio.sleep(
        partitionpods.GRACE_SECONDS + 1.0
    )  # the operator has read the pod that left its watch
    slots = (await api.get(f"{partitions_path()}/victim"))["status"]["allocation"]
    assert [slot.get("pod") for slot in slots] == ["victim-0", "victim-1"]
    message = await refused(api.create(pods_path(), pod("next", "victim")))
    assert "partition team-a/victim is full" in message
    assert await running(api, "team-a", "victim-0") is not None

    await api.delete(path)  # once the pod goes, its slot is free again

    async def freed() -> bool:
        current = (await api.get(f"{partitions_path()}/victim"))["status"]["allocation"]
        return not current[0].get("pod")

    await eventually(freed, timeout=20)


async def test_reviews_posted_straight_to_the_webhook_release_their_slots_within_seconds(tenants):
    api = tenants.api
    configuration = await api.get(f"{WEBHOOKS}/superpod-operator")
    async with aiohttp.ClientSession() as session:
        outcome = await admission_review(session, configuration, pod("ghost", "mine", namespace="team-b"))
    assert outcome.allowed
    claimed = (await api.get(f"{partitions_path('team-b')}/mine"))["status"]["allocation"]
    assert claimed[0].get("pod") == "ghost"

    async def released() -> bool:
        slots = (await api.get(f"{partitions_path('team-b')}/mine"))["status"]["allocation"]
        return not slots[0].get("pod")

    started = asyncio.get_running_loop().time()
    await eventually(released, timeout=15)
    assert asyncio.get_running_loop().time() - started < 10  # the grace is 2 s, then a read; not 30 s
    real = await api.create(pods_path("team-b"), pod("real", "mine", namespace="team-b"))
    assert real["metadata"]["annotations"][R] == ",".join(tenants.mine[0]["devices"])


async def test_the_taint_follows_membership_isolation_and_the_superpod(tenants):
    api = tenants.api
    spod = f"{SPOD}/cm384-a"
    last = NODES[3]
    label = "huawei.com/topotree.superpodid"
    await api.patch(f"/api/v1/nodes/{last}", {"metadata": {"labels": {label: "9"}}})
    await eventually(lambda: tainted(api, NODES[:3]), timeout=15)  # a node that leaves loses the taint
    await api.patch(f"/api/v1/nodes/{last}", {"metadata": {"labels": {label: "0"}}})
    await eventually(lambda: tainted(api, NODES[:4]), timeout=15)  # and gets it back when it joins

    await api.patch(spod, {"spec": {"isolation": "None"}})
    await eventually(lambda: tainted(api, []), timeout=15)
    await api.patch(spod, {"spec": {"isolation": "Partitions"}})
    await eventually(lambda: tainted(api, NODES[:4]), timeout=15)

    await api.patch(
        f"/api/v1/nodes/{NODES[0]}", {"spec": {"taints": None}}
    )  # an admin removes it: it comes back
    await eventually(lambda: tainted(api, NODES[:4]), timeout=15)

    await api.delete(spod)
    await eventually(lambda: tainted(api, []), timeout=15)


async def test_a_superpod_deleted_while_the_operator_was_down_leaves_no_taint_behind(tenants, operator):
    api = tenants.api
    spod = f"{SPOD}/cm384-a"
    await operator.kill()
    await api.delete(spod)
    await api.patch(
        spod, {"metadata": {"finalizers": None}}
    )  # an admin unsticks it: nobody untainted its nodes
    assert await api.get_or_none(spod) is None
    assert await tainted(api, NODES[:4])

    await operator.start()
    await eventually(lambda: tainted(api, []), timeout=15)  # the taints of a SuperPod that is gone are swept
