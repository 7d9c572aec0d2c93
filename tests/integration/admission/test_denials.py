"""Every refusal reaches the user: the real kubectl prints the webhook's specific message and exits non-zero."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from tests.conftest import TOOLS_BIN
from tests.integration.admission.conftest import (
    a3_superpod,
    allocated,
    eventually,
    partition,
    partitions_path,
    pod,
    pods_path,
)

KUBECTL = str(TOOLS_BIN / "kubectl")


async def kubectl_apply(kubeconfig: str, manifest: dict, tmp_path) -> tuple[int, str]:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    process = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", str(tmp_path / "cache"), "apply", "-f", str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return int(process.returncode or 0), output.decode()


CASES = [
    pytest.param(
        pod("lost", "nowhere"),
        "no SuperPodPartition nowhere in namespace team-a (label superpod.dev/partition); a pod binds only to a "
        "partition of its own namespace",
        id="a partition that does not exist",
    ),
    pytest.param(
        pod("stranger", "train", namespace="team-b"),
        "no SuperPodPartition train in namespace team-b (label superpod.dev/partition); a pod binds only to a "
        "partition of its own namespace",
        id="a partition of another namespace, in the same words as one that does not exist",
    ),
    pytest.param(
        pod("early", "too-big"),
        "partition team-a/too-big is Pending (Unsatisfiable: asked 48 NPUs: ",
        id="a Pending partition, with its reason and message",
    ),
    pytest.param(
        pod("extra", "train"),
        "partition team-a/train is full: all 1 slots are bound (to pods first)",
        id="a full partition",
    ),
    pytest.param(
        pod("small", "spare", devices=4),
        "pod small requests 4 huawei.com/Ascend910 but the slots of partition team-a/spare hold 16 devices "
        "each; request 16 or leave the request out (the webhook adds it)",
        id="a device count that does not fit the slots",
    ),
    pytest.param(
        pod("late", "spare", labels={"batch.kubernetes.io/job-completion-index": "5"}),
        "pod late has index 5 (batch.kubernetes.io/job-completion-index=5) but partition team-a/spare has "
        "1 slots (indexes 0..0)",
        id="an index beyond the slots",
    ),
]


@pytest.mark.parametrize(("manifest", "message"), CASES)
async def test_kubectl_prints_why_a_pod_is_refused(cluster, operator, tmp_path, manifest, message):
    sandbox, api = cluster
    await a3_superpod(api)
    await api.create(partitions_path(), partition("train", 16))
    await api.create(partitions_path(), partition("spare", 16))
    await api.create(partitions_path(), partition("too-big", 48))
    await allocated(api, "train")
    await allocated(api, "spare")

    async def pending() -> bool:
        obj = await api.get(f"{partitions_path()}/too-big")
        return (obj.get("status") or {}).get("phase") == "Pending"

    await eventually(pending)
    await api.create(pods_path(), pod("first", "train"))

    code, output = await kubectl_apply(sandbox.kubeconfig, manifest, tmp_path)

    assert code != 0, output
    assert 'admission webhook "pods.superpod.dev" denied the request: ' + message in output, output
    namespace = manifest["metadata"]["namespace"]
    assert await api.get_or_none(f"{pods_path(namespace)}/{manifest['metadata']['name']}") is None
