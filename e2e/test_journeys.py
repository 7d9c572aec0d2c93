"""The user journeys, in the order a platform team lives them: install, SuperPod, partitions, a training job and
its rank table, a failed device and its repair, deletion, and the metrics that show all of it.

Each scenario works in its own namespace on the one SuperPod of the run (see conftest), and leaves the SuperPod
as it found it. They run on the sandbox by default and on any cluster in E2E_KUBECONFIG (e2e/kind/run.sh).
"""

from __future__ import annotations

import json

import aiohttp
import pytest
import yaml
from superpod.api import common
from superpod.api import partition as api_partition
from superpod.cluster import client
from superpod_sandbox.sim import control as sim_control
from superpod_sandbox.sim import devicefaults, lifecycle

from e2e import environment, scenario
from e2e.conftest import SUPERPODS
from tests.conftest import ROOT
from tests.integration.operator.conftest import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEVICES_PER_NODE = 16
RESERVE_NODES = 2
EXAMPLES = (
    "partition-2.yaml",
    "partition-16.yaml",
    "partition-64-blocks-of-16.yaml",
    "partition-256-superpod.yaml",
)


async def superpod_status(target: environment.Target) -> dict:
    return (await target.api.get(f"{SUPERPODS}/{environment.SUPERPOD}")).get("status") or {}


async def free_devices_back_to(target: environment.Target, free: int) -> dict | None:
    status = await superpod_status(target)
    return status if status["devices"]["free"] == free else None


async def test_the_crds_are_installed_established_and_listed_by_kubectl(target: environment.Target):
    established = await target.kubectl(
        "get",
        "crd",
        "superpods.superpod.dev",
        "superpodpartitions.superpod.dev",
        "-o",
        'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status} {end}',
    )
    assert established.stdout.split() == [
        "superpods.superpod.dev=True",
        "superpodpartitions.superpod.dev=True",
    ]
    resources = await target.kubectl("api-resources", "--api-group", "superpod.dev", "-o", "wide")
    assert "spod" in resources.stdout and "spp" in resources.stdout


async def test_the_superpod_discovers_every_simulated_node_and_device(target: environment.Target):
    status = await superpod_status(target)
    nodes = len(target.nodes)
    assert status["nodes"] == status["readyNodes"] == nodes == 48
    assert status["resourceName"] == scenario.RESOURCE
    assert status["devices"]["total"] == nodes * DEVICES_PER_NODE
    assert status["devices"]["reserved"] == RESERVE_NODES * DEVICES_PER_NODE
    assert status["devices"]["unhealthy"] == 0
    shown = await target.kubectl("get", "spod", environment.SUPERPOD)
    assert environment.SUPERPOD in shown.stdout


async def test_the_example_partitions_applied_with_kubectl_are_placed_in_their_tiers(
    target: environment.Target, namespace: str
):
    manifests = []
    for name in EXAMPLES:
        manifest = yaml.safe_load((ROOT / "examples" / name).read_text())
        manifest["metadata"]["namespace"] = namespace
        manifests.append(manifest)
    await target.apply(*manifests)
    await target.kubectl(
        "wait", "spp", "--all", "-n", namespace, "--for=jsonpath={.status.phase}=Allocated", "--timeout=60s"
    )
    listed = await target.api.list(scenario.partitions_path(namespace))
    by_name = {obj["metadata"]["name"]: obj["status"] for obj in listed}
    assert sorted(by_name) == ["train-16", "train-2", "train-256", "train-64"]
    assert not scenario.shared_devices(listed)
    for name, status in by_name.items():
        npus = int(name.removeprefix("train-"))
        assert len(scenario.devices_of(status)) == npus, name
    assert by_name["train-2"]["tierSpan"] == "module"  # one 910C: a HiAM die pair joined by SIO
    assert by_name["train-16"]["tierSpan"] == "node"
    assert by_name["train-16"]["nodeCount"] == 1
    blocks = by_name["train-64"]["allocation"]  # blocks of 16: each block (one pod) on one node of 16
    assert len(blocks) == 4 and all(len(slot["devices"]) == 16 for slot in blocks)
    assert len({slot["node"] for slot in blocks}) == 4
    assert len(by_name["train-256"]["allocation"]) == 16  # 16 pods of 16
    table = await target.kubectl("get", "spp", "-n", namespace)
    assert table.stdout.count("Allocated") == 4
    superpod = await superpod_status(target)
    assert superpod["devices"]["allocated"] >= 2 + 16 + 64 + 256


async def test_the_example_indexed_job_is_bound_completes_its_rank_table_and_finishes(
    target: environment.Target, namespace: str
):
    """examples/job-train-64.yaml on examples/partition-64-blocks-of-16.yaml, applied with kubectl as users do."""
    partition, job = (
        yaml.safe_load((ROOT / "examples" / name).read_text())
        for name in ("partition-64-blocks-of-16.yaml", "job-train-64.yaml")
    )
    partition["metadata"]["namespace"] = job["metadata"]["namespace"] = namespace
    partition["spec"]["superPod"] = environment.SUPERPOD
    # the workers exit 12 s after they start, not at the example's demo pace (30 s): time enough to see them
    # bound and the rank table completed before they finish (the demo runs the example as it is)
    job["spec"]["template"]["metadata"]["annotations"][lifecycle.EXIT_AFTER] = "12"
    await target.apply(partition)
    placed = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "train-64", "Allocated"), timeout=30
    )
    slots = placed["allocation"]
    assert job["spec"]["completions"] == len(slots)
    await target.apply(job)

    async def started() -> list[dict] | None:
        listed = await target.api.list(
            client.resource_path("v1", "pods", namespace),
            labelSelector="batch.kubernetes.io/job-name=train-64",
        )
        phases = [(p.get("status") or {}).get("phase") for p in listed]
        return listed if len(listed) == len(slots) and set(phases) <= {"Running", "Succeeded"} else None

    pods = await eventually(started, timeout=60)
    by_rank = {slot["rank"]: slot for slot in slots}
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
        slot = by_rank[int(env["RANK"])]
        index = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        assert slot["rank"] == index * 16  # the completion index is the pod's rank hint
        assert pod["spec"]["nodeName"] == slot["node"]
        assert pod["metadata"]["annotations"][scenario.RESOURCE] == ",".join(slot["devices"])
        assert env["WORLD_SIZE"] == "64"

    async def completed() -> tuple[dict, dict] | None:
        bound = await scenario.phase_of(target.api, namespace, "train-64", "Bound") or {}
        configmap = bound.get("rankTable") and await target.api.get_or_none(
            client.resource_path("v1", "configmaps", namespace, bound["rankTable"])
        )
        table = json.loads(((configmap or {}).get("data") or {}).get("hccl.json", "{}"))
        return (bound, table) if table.get("status") == "completed" else None

    bound, table = await eventually(completed, timeout=30)
    assert {slot["pod"] for slot in bound["allocation"]} == {p["metadata"]["name"] for p in pods}
    assert table["version"] == "1.2"  # A3: super_device_id and super_pod_list
    ranks = [device["rank_id"] for server in table["server_list"] for device in server["device"]]
    assert sorted(int(rank) for rank in ranks) == list(range(64))
    waited = await target.kubectl(
        "wait", "-n", namespace, "--for=condition=Complete", "job/train-64", "--timeout=120s"
    )
    assert "job.batch/train-64 condition met" in waited.stdout
    done = await target.api.get(client.resource_path("batch/v1", "jobs", namespace, "train-64"))
    assert (done["status"]["succeeded"], done["status"]["completedIndexes"]) == (4, "0-3")
    # the workers finished: their slots are released and the partition is Allocated again, its devices kept
    released = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "train-64", "Allocated"), timeout=30
    )
    assert scenario.devices_of(released) == scenario.devices_of(placed)


async def test_a_failed_device_is_reported_and_repaired_then_healed(
    target: environment.Target, namespace: str
):
    free_before = (await superpod_status(target))["devices"]["free"]
    await target.apply(
        scenario.partition("auto", namespace, 8, maxTier="node"),
        scenario.partition("manual", namespace, 4, maxTier="node", repairPolicy="Manual"),
    )
    auto = await eventually(lambda: scenario.phase_of(target.api, namespace, "auto", "Allocated"), timeout=30)
    manual = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "manual", "Allocated"), timeout=30
    )
    broken = sorted(scenario.devices_of(auto))[0]
    flaky = sorted(scenario.devices_of(manual))[0]
    code, out = await scenario.superpod_cli(  # as an operator of the simulator types it
        "sim",
        "fault",
        "--kubeconfig",
        target.kubeconfig,
        "--node",
        broken[0],
        "--device",
        broken[1],
        "--kind",
        "unhealthy",
    )
    assert code == 0, out
    await sim_control.inject(
        target.api, flaky[0], devicefaults.Kind.NETWORK, flaky[1]
    )  # the same, in-process

    async def repaired() -> dict | None:
        status = await scenario.phase_of(target.api, namespace, "auto", "Allocated")
        return status if status and broken not in scenario.devices_of(status) else None

    after = await eventually(repaired, timeout=30)
    assert len(scenario.devices_of(after)) == 8 and after["tierSpan"] == "node"
    degraded = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "manual", "Degraded"), timeout=30
    )
    assert scenario.devices_of(degraded) == scenario.devices_of(manual)  # Manual: reported, not moved
    assert any(f"{flaky[0]}/{flaky[1]}" in c.get("message", "") for c in degraded["conditions"])
    events = await target.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=Repaired", "-o", "name"
    )
    assert events.stdout.strip()

    for node, device in (broken, flaky):
        await sim_control.heal(target.api, node, None, device)
    healed = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "manual", "Allocated"), timeout=30
    )
    assert scenario.devices_of(healed) == scenario.devices_of(manual)

    async def counts_back() -> dict | None:
        status = await superpod_status(target)
        devices = status["devices"]
        return status if devices["unhealthy"] == 0 and devices["free"] == free_before - 12 else None

    await eventually(counts_back, timeout=30)


async def settled_free(target: environment.Target) -> int:
    """The SuperPod's free count once no partition is being deleted (a deleted partition keeps its devices until
    its pods are gone, so an earlier journey's may still be releasing) and it agrees with what partitions hold."""

    async def settled() -> dict | None:
        partitions = await target.api.list("/apis/superpod.dev/v1alpha1/superpodpartitions")
        if any(obj["metadata"].get("deletionTimestamp") for obj in partitions):
            return None
        held = sum(len(scenario.devices_of(obj.get("status") or {})) for obj in partitions)
        status = await superpod_status(target)
        return status if status["devices"]["allocated"] == held else None

    settled_status: dict = await eventually(settled, timeout=60)
    return int(settled_status["devices"]["free"])


async def test_deleting_a_partition_releases_its_devices(target: environment.Target, namespace: str):
    free_before = await settled_free(target)
    await target.apply(scenario.partition("short-lived", namespace, 16, maxTier="node"))
    await eventually(lambda: scenario.phase_of(target.api, namespace, "short-lived", "Allocated"), timeout=30)
    await eventually(lambda: free_devices_back_to(target, free_before - 16), timeout=30)
    await target.kubectl("delete", "spp", "short-lived", "-n", namespace, "--wait=true", "--timeout=60s")
    assert await target.api.get_or_none(scenario.partitions_path(namespace, "short-lived")) is None
    await eventually(lambda: free_devices_back_to(target, free_before), timeout=30)
    released = await target.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=Released", "-o", "name"
    )
    assert released.stdout.strip()


async def test_the_operator_and_the_npu_exporter_metrics_show_the_fleet(
    target: environment.Target, namespace: str
):
    if target.operator_metrics_url is None or target.exporter_url is None:
        pytest.skip("E2E_OPERATOR_METRICS_URL and E2E_EXPORTER_URL are not set for this cluster")
    await target.apply(scenario.partition("watched", namespace, 16, maxTier="node"))
    placed = await eventually(
        lambda: scenario.phase_of(target.api, namespace, "watched", "Allocated"), timeout=30
    )
    node, device = sorted(scenario.devices_of(placed))[0]
    devices = len(target.nodes) * DEVICES_PER_NODE

    async def scrape(url: str) -> str:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
            return await response.text()

    async def operator_sees_the_partition() -> str | None:
        text = await scrape(target.operator_metrics_url or "")
        held = scenario.samples(
            text,
            "superpod_partition_devices",
            superpod=environment.SUPERPOD,
            namespace=namespace,
            partition="watched",
        )
        return text if held == [16.0] else None

    text = await eventually(operator_sees_the_partition, timeout=30)
    assert sum(scenario.samples(text, "superpod_devices", superpod=environment.SUPERPOD)) == devices
    exporter_node = (target.exporter_url or "").replace("/metrics", f"/nodes/{node}/metrics")
    exporter = await scrape(exporter_node)  # one node, with NPU-Exporter's exact label set
    assert scenario.samples(exporter, "npu_chip_info_health_status", id=device.rpartition("-")[2]) == [1.0]
    assert len(scenario.samples(exporter, "npu_chip_info_health_status")) == DEVICES_PER_NODE


async def test_two_tenants_share_the_superpod_with_quotas_borrowing_reclaim_and_priority(
    target: environment.Target, namespace: str
):
    """team-a (this namespace) is owed all but 64 usable devices and may borrow; team-b (a second namespace)
    is owed 64 and may not. team-a borrows team-b's idle share, team-b takes it back (the borrower's pods are
    evicted first), asks for more than its share, then its urgent job preempts its own lower-priority one."""

    async def unused() -> dict | None:  # the journey needs the SuperPod to itself
        status = await superpod_status(target)
        return status if status["devices"]["allocated"] == 0 else None

    status = await eventually(unused, timeout=60)
    usable = status["devices"]["total"] - status["devices"]["reserved"]
    team_b = f"{namespace}-b"
    urgent = f"{namespace}-urgent"
    await target.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team_b}},
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": urgent},
            "value": 1000,
            "preemptionPolicy": "PreemptLowerPriority",
        },
    )
    quotas = [
        {"name": "team-a", "namespaces": [namespace], "npus": usable - 64, "borrowing": "Allowed"},
        {"name": "team-b", "namespaces": [team_b], "npus": 64, "borrowing": "Never"},
    ]
    await target.kubectl(
        "patch",
        "spod",
        environment.SUPERPOD,
        "--type",
        "merge",
        "-p",
        json.dumps({"spec": {"quotas": quotas}}),
    )
    try:
        await _tenants_journey(target, namespace, team_b, urgent, usable)
    finally:
        await target.kubectl(
            "patch",
            "spod",
            environment.SUPERPOD,
            "--type",
            "json",
            "-p",
            '[{"op": "remove", "path": "/spec/quotas"}]',
        )
        await target.kubectl("delete", "priorityclass", urgent, "--ignore-not-found")
        await target.kubectl("delete", "spp", "--all", "-n", namespace, "--wait=true", "--timeout=60s")
        await target.kubectl("delete", "namespace", team_b, "--wait=true", "--timeout=60s")
    await eventually(lambda: free_devices_back_to(target, status["devices"]["free"]), timeout=60)


async def _tenants_journey(
    target: environment.Target, team_a: str, team_b: str, urgent_class: str, usable: int
) -> None:
    api = target.api

    async def no_device_shared() -> None:
        listed = await api.list(client.resource_path(common.API_VERSION, api_partition.PLURAL))
        assert not scenario.shared_devices(listed)

    # team-a fills its share, then borrows team-b's idle one for a job with running pods
    await target.apply(
        scenario.partition("own", team_a, usable - 64, blockSize=16),
        scenario.partition("extra", team_a, 32, devicesPerPod=16),
    )
    for name in ("own", "extra"):
        await eventually(lambda n=name: scenario.phase_of(api, team_a, n, "Allocated"), timeout=60)
    await target.apply(*(scenario.training_pod(f"extra-{i}", team_a, "extra", 16, i) for i in range(2)))

    async def borrowing() -> dict | None:
        found = await scenario.phase_of(api, team_a, "extra", "Allocated", "Bound")
        return found if found and found.get("borrowing") is True else None

    extra = await eventually(borrowing, timeout=30)
    assert extra["quota"] == "team-a" and extra["borrowedNpus"] == 32
    own = await scenario.phase_of(api, team_a, "own", "Allocated")
    assert own is not None and own["borrowing"] is False
    wide = await target.kubectl("get", "spp", "-n", team_a, "-o", "wide")
    assert "BORROWING" in wide.stdout and "QUOTA" in wide.stdout and "PRIORITY" in wide.stdout
    rows = {line.split()[0]: line.split() for line in wide.stdout.splitlines()[1:]}
    assert "true" in rows["extra"] and "false" in rows["own"]
    await eventually(lambda: _pods_running(target, team_a, "extra", 2), timeout=60)
    await no_device_shared()

    # team-b wants its share back: the borrower is preempted, its pods evicted before team-b gets the devices
    await target.apply(scenario.partition("back", team_b, 64, devicesPerPod=16))
    back = await eventually(lambda: scenario.phase_of(api, team_b, "back", "Allocated"), timeout=60)
    assert await _pods_running(target, team_a, "extra", 0)
    assert scenario.devices_of(extra) <= scenario.devices_of(back)
    victim = await scenario.phase_of(api, team_a, "extra", "Pending")
    assert (
        victim is not None and victim["reason"] == "Preempted" and victim["preemptedBy"] == f"{team_b}/back"
    )
    assert (await scenario.phase_of(api, team_a, "own", "Allocated")) is not None  # team-a's own share kept
    events = await target.kubectl(
        "get",
        "events",
        "-n",
        team_a,
        "--field-selector",
        "reason=Preempted",
        "-o",
        "jsonpath={.items[*].message}",
    )
    assert f"preempted by {team_b}/back" in events.stdout
    await no_device_shared()

    # more than team-b's share: it may not borrow
    await target.apply(scenario.partition("more", team_b, 16))
    more = await eventually(lambda: scenario.phase_of(api, team_b, "more", "Pending"), timeout=30)
    assert more["reason"] == "QuotaExceeded" and more["message"].startswith(
        "quota team-b: 64 of 64 NPUs in use"
    )

    # team-b's urgent job preempts team-b's own lower-priority partition, nothing of team-a
    await target.apply(scenario.partition("urgent", team_b, 16, priorityClassName=urgent_class))
    placed = await eventually(lambda: scenario.phase_of(api, team_b, "urgent", "Allocated"), timeout=60)
    assert placed["priority"] == 1000
    preempted = await scenario.phase_of(api, team_b, "back", "Pending")
    assert preempted is not None and preempted["reason"] == "Preempted"
    assert preempted["preemptedBy"] == f"{team_b}/urgent"
    assert (await scenario.phase_of(api, team_a, "own", "Allocated")) is not None
    # what `back` gave up leaves room in team-b's share for `more`; `back` itself waits, still Preempted
    await eventually(lambda: scenario.phase_of(api, team_b, "more", "Allocated"), timeout=30)

    async def back_waits_again() -> dict | None:
        found = await scenario.phase_of(api, team_b, "back", "Pending")
        return found if found and "waits to be placed again: QuotaExceeded" in found["message"] else None

    assert (await eventually(back_waits_again, timeout=30))["reason"] == "Preempted"

    async def team_b_uses_32_with_1_pending() -> list[dict] | None:
        # the quota's figures are written with the SuperPod's status, which may lag the partitions' phases
        usage = (await superpod_status(target)).get("quotas") or []
        mine = [(q.get("used"), q.get("pending")) for q in usage if q["name"] == "team-b"]
        return usage if mine == [(32, 1)] else None

    await eventually(team_b_uses_32_with_1_pending, timeout=30)
    # team-b's share is half idle again: team-a borrows it again for `extra`, whose Preempted reason is gone
    again = await eventually(borrowing, timeout=30)
    assert again["reason"] == "Placed" and again.get("preemptedBy") is None
    await no_device_shared()


async def _pods_running(target: environment.Target, namespace: str, partition: str, count: int) -> bool:
    listed = await target.api.list(
        client.resource_path("v1", "pods", namespace), labelSelector=f"superpod.dev/partition={partition}"
    )
    return sum(1 for pod in listed if (pod.get("status") or {}).get("phase") == "Running") == count


async def test_two_tenants_share_a_superpod(target: environment.Target, namespace: str):
    """Two tenant namespaces, each with a partition and a running pod: neither gets at the other's devices,
    and deleting a partition whose pod runs keeps its devices until the pod is gone."""
    other = f"{namespace}-b"
    await target.api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    try:
        tenants = {namespace: "team-a", other: "team-b"}
        for where, name in tenants.items():
            await target.apply(scenario.partition(name, where, 16, maxTier="node"))
        for where, name in tenants.items():  # pods bind once their partition is placed
            await eventually(
                lambda w=where, n=name: scenario.phase_of(target.api, w, n, "Allocated"), timeout=30
            )
            await target.apply(scenario.training_pod(f"{name}-worker-0", where, name, 16, 0))
        running = {}
        for where, name in tenants.items():
            running[name] = await eventually(
                lambda w=where, n=name: scenario.running_pod(target.api, w, f"{n}-worker-0"), timeout=30
            )
        held = await eventually(
            lambda: scenario.phase_of(target.api, namespace, "team-a", "Bound"), timeout=30
        )
        slot = held["allocation"][0]

        # team-b's plain pod naming team-a's devices and node is refused by admission
        thief = scenario.training_pod("thief", other, "team-b", 16, 0)
        thief["metadata"]["labels"] = {}
        thief["metadata"]["annotations"] = {scenario.RESOURCE: ",".join(slot["devices"])}
        thief["spec"]["nodeName"] = slot["node"]
        refused = await target.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(thief), check=False)
        assert refused.returncode != 0 and "denied the request" in refused.stderr, refused
        assert await target.api.get_or_none(client.resource_path("v1", "pods", other, "thief")) is None

        # deleting team-a's partition while its pod runs: Terminating, the devices stay held
        await target.kubectl("delete", "spp", "team-a", "-n", namespace, "--wait=false")
        terminating = await eventually(
            lambda: scenario.phase_of(target.api, namespace, "team-a", "Terminating"), timeout=30
        )
        assert terminating["inUseBy"] == ["team-a-worker-0"]
        assert scenario.devices_of(terminating) == scenario.devices_of(held)
        await scenario.no_device_used_twice(target.api, [namespace, other])

        await target.kubectl("delete", "pod", "team-a-worker-0", "-n", namespace, "--wait=true")
        await target.kubectl(
            "wait", "spp", "team-a", "-n", namespace, "--for=delete", "--timeout=60s", check=False
        )
        assert await target.api.get_or_none(scenario.partitions_path(namespace, "team-a")) is None
        await scenario.no_device_used_twice(target.api, [namespace, other])
    finally:
        await target.api.delete(f"/api/v1/namespaces/{other}")
