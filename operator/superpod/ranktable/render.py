"""The text of a rank table, exactly as stored in the ConfigMap key `hccl.json`.

Compact JSON, as MindCluster's ascend-operator writes it (`json.Marshal`: no spaces, no newline at the end,
non-ASCII characters as UTF-8, and `<`, `>`, `&`, U+2028, U+2029 escaped as `\\u003c`... the way Go's encoder
does). Keys appear in the order of MindCluster's documented samples (in tests/fixtures/reference/):
`status, version, server_count, server_list[, super_pod_list]` with servers as `server_id, host_ip,
container_ip, hardware_type, device` and devices as `device_id, device_ip[, super_device_id], rank_id`; for
v2.0 `status, version, rank_count, rank_list`. (Go's encoder follows struct field order instead, which puts
`server_list` first and `device` first in a server; JSON readers, HCCL's included, look keys up by name.)
Optional fields that are unknown (`container_ip`, `hardware_type`) are left out, as Go's `omitempty` does;
so is an empty `level_list`.
"""

from __future__ import annotations

import json
from typing import Any

from superpod.ranktable import levels, tables

CONFIGMAP_KEY = "hccl.json"
"""ConfigMap key holding the rank table (mounted as /user/serverid/devindex/config/hccl.json)."""

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def render(table: tables.RankTable) -> str:
    """The `hccl.json` text of a table; the same table always renders to the same text."""
    text = json.dumps(document(table), ensure_ascii=False, separators=(",", ":"))
    # these characters can only occur inside JSON strings, so replacing them in the text is safe
    for character, escape in _GO_ESCAPES.items():
        text = text.replace(character, escape)
    return text


def document(table: tables.RankTable) -> dict[str, Any]:
    """The table as a JSON-ready dict, keys in output order."""
    if isinstance(table, tables.RankListTable):
        return {
            "status": table.status.value,
            "version": table.version.value,
            "rank_count": len(table.ranks),
            "rank_list": [_rank(rank) for rank in table.ranks],
        }
    out: dict[str, Any] = {
        "status": table.status.value,
        "version": table.version.value,
        "server_count": str(len(table.servers)),
        "server_list": [_server(server) for server in table.servers],
    }
    if table.super_pods is not None:
        out["super_pod_list"] = [
            {
                "super_pod_id": str(super_pod.super_pod_id),
                "server_list": [{"server_id": server_id} for server_id in super_pod.server_ids],
            }
            for super_pod in table.super_pods
        ]
    return out


def _server(server: tables.ServerEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"server_id": server.server_id, "host_ip": server.host_ip}
    if server.container_ip:
        out["container_ip"] = server.container_ip
    if server.hardware_type:
        out["hardware_type"] = server.hardware_type
    out["device"] = [_device(device) for device in server.devices]
    return out


def _device(device: tables.DeviceEntry) -> dict[str, str]:
    out = {"device_id": device.device_id, "device_ip": device.device_ip}
    if device.super_device_id is not None:
        out["super_device_id"] = device.super_device_id
    out["rank_id"] = str(device.rank_id)
    return out


def _rank(rank: tables.RankEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"rank_id": rank.rank_id, "local_id": rank.local_id, "device_id": rank.device_id}
    if rank.level_list:
        out["level_list"] = [_level(element) for element in rank.level_list]
    return out


def _level(element: levels.LevelElement) -> dict[str, Any]:
    return {
        "net_layer": element.net_layer,
        "net_instance_id": element.net_instance_id,
        "net_type": element.net_type,
        "net_attr": element.net_attr,
        "rank_addr_list": [
            {
                "addr_type": address.addr_type,
                "addr": address.addr,
                "ports": list(address.ports),
                "plane_id": address.plane_id,
            }
            for address in element.rank_addr_list
        ],
    }
