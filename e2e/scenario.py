"""Builders and reads the e2e scenarios share: partitions, training pods, allocations, metrics text."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from superpod.api import common
from superpod.api import partition as api_partition
from superpod.cluster import client
from superpod_sandbox.commands import demo

from e2e import environment
from tests.conftest import ROOT

JSON = dict[str, Any]
RESOURCE = "huawei.com/Ascend910"


def partitions_path(namespace: str, name: str | None = None) -> str:
    return client.resource_path(common.API_VERSION, api_partition.PLURAL, namespace, name)


def partition(
    name: str, namespace: str, npus: int, superpod: str = environment.SUPERPOD, **spec: Any
) -> JSON:
    return {
        "apiVersion": common.API_VERSION,
        "kind": api_partition.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"superPod": superpod, "npus": npus, **spec},
    }


def training_pod(name: str, namespace: str, partition_name: str, devices: int, index: int) -> JSON:
    """One worker of a training job, as an indexed Job would make it: labelled with its partition."""
    return demo.training_pod(name, namespace, partition_name, devices, index, RESOURCE)


def devices_of(status: JSON) -> set[tuple[str, str]]:
    """(node, device) of every device in a partition's status allocation."""
    return {
        (slot["node"], device)
        for slot in status.get("allocation") or []
        for device in slot.get("devices") or []
    }


def shared_devices(partitions: list[JSON]) -> dict[tuple[str, str], list[str]]:
    """Devices held by more than one live partition (not being deleted), with their holders."""
    holders: dict[tuple[str, str], list[str]] = {}
    for obj in partitions:
        if obj["metadata"].get("deletionTimestamp"):
            continue
        for device in devices_of(obj.get("status") or {}):
            holders.setdefault(device, []).append(obj["metadata"]["name"])
    return {device: names for device, names in holders.items() if len(names) > 1}


async def running_pod(api: client.KubeClient, namespace: str, name: str) -> JSON | None:
    """The pod when it runs (for `eventually`), else None."""
    pod = await api.get_or_none(client.resource_path("v1", "pods", namespace, name))
    return pod if ((pod or {}).get("status") or {}).get("phase") == "Running" else None


async def no_device_used_twice(api: client.KubeClient, namespaces: list[str]) -> None:
    """No device is held by two partitions, and no pod that runs uses a device held by a partition other than
    its own (judged on the device plugin's `huawei.com/AscendReal` annotation where the cluster sets it)."""
    partitions: list[JSON] = []
    for namespace in namespaces:
        partitions += await api.list(partitions_path(namespace))
    holders: dict[tuple[str, str], list[str]] = {}
    for obj in partitions:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        for device in devices_of(obj.get("status") or {}):
            holders.setdefault(device, []).append(key)
    assert all(len(names) == 1 for names in holders.values()), holders
    used: dict[tuple[str, str], str] = {}
    for namespace in namespaces:
        for pod in await api.list(client.resource_path("v1", "pods", namespace)):
            metadata = pod["metadata"]
            real = (metadata.get("annotations") or {}).get("huawei.com/AscendReal")
            if not real or (pod.get("status") or {}).get("phase") not in ("Pending", "Running"):
                continue
            own = f"{namespace}/{(metadata.get('labels') or {}).get(common.PARTITION_LABEL)}"
            for device in real.split(","):
                where = (pod["spec"]["nodeName"], device)
                assert where not in used, f"{where} used by {used.get(where)} and {metadata['name']}"
                used[where] = metadata["name"]
                assert holders.get(where, [own]) == [own], (
                    f"{metadata['name']} uses {where} of {holders[where]}"
                )


async def phase_of(api: client.KubeClient, namespace: str, name: str, *phases: str) -> JSON | None:
    """The partition's status when its phase is one of `phases`, else None."""
    obj = await api.get_or_none(partitions_path(namespace, name))
    status = (obj or {}).get("status") or {}
    return status if status.get("phase") in phases else None


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the series `name` whose labels include `labels`, from a Prometheus text exposition."""
    values = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                values.append(float(sample.value))
    return values


async def superpod_cli(*args: str) -> tuple[int, str]:
    """`superpod ...` as a user runs it (a subprocess, so the loop serving the sandbox keeps running)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "superpod.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return int(process.returncode or 0), out.decode()
