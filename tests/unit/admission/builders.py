"""Builders for admission tests: partition statuses with slots, pods and requests."""

from __future__ import annotations

from typing import Any

from superpod.controller import podrequest

JSON = dict[str, Any]


def slots(count: int, size: int = 2, bound: dict[int, str] | None = None) -> list[JSON]:
    """`count` slots of `size` devices, 8 devices per node, in rank order; `bound` maps slot index -> pod."""
    out = []
    for index in range(count):
        first = index * size
        slot: JSON = {
            "rank": first,
            "node": f"node-{first // 8}",
            "devices": [f"Ascend910-{first % 8 + i}" for i in range(size)],
        }
        if bound and index in bound:
            slot["pod"] = bound[index]
        out.append(slot)
    return out


def status(allocation: list[JSON] | None, phase: str = "Allocated", **extra: Any) -> JSON:
    return {"phase": phase, "allocation": allocation, **extra}


def request(
    pod: str, devices: int | None = None, index: int | None = None, dry_run: bool = False
) -> podrequest.PodRequest:
    position = (
        podrequest.PodIndex(index, f"apps.kubernetes.io/pod-index={index}") if index is not None else None
    )
    return podrequest.PodRequest(pod=pod, devices=devices, index=position, dry_run=dry_run)


def pod(name: str = "worker-0", **spec: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"superpod.dev/partition": "train"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }
