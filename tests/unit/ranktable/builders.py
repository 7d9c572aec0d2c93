"""Small builders for rank table inputs: device-plugin annotations and rank slots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from superpod.ranktable import configuration, slots


def device(device_id: int, device_ip: str = "", super_device_id: str | None = None, **extra: Any) -> dict:
    """One `devices[]` entry of the annotation, with the device plugin's spelling (ids as strings)."""
    body: dict[str, Any] = {"device_id": str(device_id), "device_ip": device_ip}
    if super_device_id is not None:
        body["super_device_id"] = super_device_id
    return body | extra


def annotation(host_ip: str, devices: Sequence[dict], *, pod_name: str = "train-0", **extra: Any) -> str:
    """The annotation value the device plugin writes for a pod on the server with this host IP."""
    body: dict[str, Any] = {
        "pod_name": pod_name,
        "server_id": host_ip,
        "host_ip": host_ip,
        "super_pod_id": 0,
        "devices": list(devices),
    }
    return json.dumps(body | extra)


def slot(
    rank: int,
    device_ids: Sequence[int],
    annotation_value: str | None = None,
    *,
    node: str | None = None,
    pod_ip: str | None = None,
    hardware_type: str | None = None,
) -> slots.RankSlot:
    """A slot whose pod is allocated when `annotation_value` is given (parsed as the operator would)."""
    return slots.RankSlot(
        rank=rank,
        node_name=node or f"node-{rank}",
        device_names=tuple(f"Ascend910-{device_id}" for device_id in device_ids),
        configuration=(
            configuration.parse_ascend_configuration(annotation_value)
            if annotation_value is not None
            else None
        ),
        pod_ip=pod_ip,
        hardware_type=hardware_type,
    )


def server_slot(
    rank: int, server_ip: str, device_ips: Sequence[str], *, first_device: int = 0
) -> slots.RankSlot:
    """An allocated slot on server `server_ip` with devices 0.. and the given device IPs."""
    ids = range(first_device, first_device + len(device_ips))
    value = annotation(server_ip, [device(i, ip) for i, ip in zip(ids, device_ips, strict=True)])
    return slot(rank, list(ids), value, node=f"node-{server_ip}")
