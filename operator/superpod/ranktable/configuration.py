"""The device plugin's pod annotation `ascend.kubectl.kubernetes.io/ascend-910-configuration`, parsed.

After Allocate, the Ascend device plugin writes on each pod the JSON of MindCluster's `Instance`
(component/ascend-device-plugin/pkg/common/proto.go): `{pod_name, server_id, host_ip, super_pod_id,
devices: [{device_id, device_ip, super_device_id?, levelList?}], rack_id, server_index, server_ip}`. It is the
only source of the addresses a rank table needs (device IPs, super device ids, A5 network levels).

Parsing is lenient about what other device-plugin versions add or leave out (unknown keys are ignored; the
A3/A5-only fields are optional) and about numbers written as strings or strings written as numbers, but strict
about what the rank table cannot do without: `pod_name`, `server_id`, `host_ip` and a non-empty `devices` list
whose entries carry `device_id` and `device_ip`. Every failure is a `ConfigurationError` (a `ValueError`) whose
message names the annotation and the offending field.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from superpod.ranktable import levels

ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-910-configuration"
"""Pod annotation written by the device plugin for huawei.com/Ascend910 devices."""
NPU_ANNOTATION = "ascend.kubectl.kubernetes.io/ascend-npu-configuration"
"""The same annotation as written for huawei.com/npu devices (Atlas 950); the ascend-operator reads ANNOTATION
first and falls back to this one."""


class ConfigurationError(ValueError):
    """The annotation is not JSON or lacks a field the rank table needs; `field` is the JSON path ("" = whole)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        where = f"{field}: " if field else ""
        super().__init__(f"annotation {ANNOTATION}: {where}{problem}")


@dataclasses.dataclass(frozen=True)
class AscendDevice:
    """One device allocated to the pod, as the device plugin reports it."""

    device_id: str  # physical device id on the server, "0".."15"
    device_ip: str  # the device's RoCE address ("" where it has none)
    super_device_id: str | None = None  # A3: the die's id inside the SuperPoD (UB/HCCS-L2 addressing)
    level_list: tuple[levels.DeviceLevel, ...] = ()  # A5 only: network levels (annotation key `levelList`)


@dataclasses.dataclass(frozen=True)
class AscendPodConfiguration:
    """The parsed annotation: where the pod runs and which devices it got."""

    pod_name: str
    server_id: str  # the server's identifier in the rank table (its host IP on most installations)
    host_ip: str
    devices: tuple[AscendDevice, ...]
    super_pod_id: int | None = None  # physical SuperPoD id; -1/-2 or absent when unknown/unsupported
    rack_id: int | None = None  # A5
    server_index: str | None = None  # position of the server in its SuperPoD/rack
    server_ip: str | None = None  # A5


def parse_ascend_configuration(annotation_value: str) -> AscendPodConfiguration:
    """Parse the annotation's value; raises ConfigurationError naming what is wrong."""
    try:
        raw = json.loads(annotation_value)
    except json.JSONDecodeError as error:
        raise ConfigurationError("", f"not valid JSON ({error})") from None
    except TypeError:
        raise ConfigurationError(
            "", f"expected a JSON string, got {type(annotation_value).__name__}"
        ) from None
    body = _object(raw, "")
    raw_devices = _required(body, "devices", "")
    if not isinstance(raw_devices, list):
        raise ConfigurationError("devices", f"expected a list, got {_json_type(raw_devices)}")
    if not raw_devices:
        raise ConfigurationError("devices", "empty: the pod was allocated no device")
    return AscendPodConfiguration(
        pod_name=_string(body, "pod_name", ""),
        server_id=_string(body, "server_id", ""),
        host_ip=_string(body, "host_ip", ""),
        devices=tuple(_device(item, f"devices[{index}]") for index, item in enumerate(raw_devices)),
        super_pod_id=_optional_int(body, "super_pod_id", ""),
        rack_id=_optional_int(body, "rack_id", ""),
        server_index=_optional_string(body, "server_index", ""),
        server_ip=_optional_string(body, "server_ip", ""),
    )


def _device(raw: Any, path: str) -> AscendDevice:
    body = _object(raw, path)
    raw_levels = body.get("levelList")
    if raw_levels is None:
        raw_levels = []
    if not isinstance(raw_levels, list):
        raise ConfigurationError(f"{path}.levelList", f"expected a list, got {_json_type(raw_levels)}")
    return AscendDevice(
        device_id=_string(body, "device_id", path),
        device_ip=_string(body, "device_ip", path),
        super_device_id=_optional_string(body, "super_device_id", path),
        level_list=tuple(
            _device_level(item, f"{path}.levelList[{index}]") for index, item in enumerate(raw_levels)
        ),
    )


def _device_level(raw: Any, path: str) -> levels.DeviceLevel:
    body = _object(raw, path)
    info = _object(_required(body, "info", path), f"{path}.info")
    return levels.DeviceLevel(
        level=_int(body, "level", path),
        info=tuple(
            (net_type, _level_element(element, f"{path}.info.{net_type}"))
            for net_type, element in info.items()
        ),
    )


def _level_element(raw: Any, path: str) -> levels.LevelElement:
    body = _object(raw, path)
    addresses = _required(body, "rank_addr_list", path)
    if addresses is None:
        addresses = []  # Go writes a nil slice as null
    if not isinstance(addresses, list):
        raise ConfigurationError(f"{path}.rank_addr_list", f"expected a list, got {_json_type(addresses)}")
    return levels.LevelElement(
        net_layer=_int(body, "net_layer", path),
        net_instance_id=_string(body, "net_instance_id", path),
        net_type=_string(body, "net_type", path),
        net_attr=_optional_string(body, "net_attr", path) or "",
        rank_addr_list=tuple(
            _rank_address(item, f"{path}.rank_addr_list[{index}]") for index, item in enumerate(addresses)
        ),
    )


def _rank_address(raw: Any, path: str) -> levels.RankAddress:
    body = _object(raw, path)
    ports = body.get("ports")
    if ports is None:
        ports = []
    if not isinstance(ports, list) or not all(isinstance(port, str) for port in ports):
        raise ConfigurationError(f"{path}.ports", "expected a list of strings")
    return levels.RankAddress(
        addr_type=_string(body, "addr_type", path),
        addr=_string(body, "addr", path),
        ports=tuple(ports),
        plane_id=_optional_string(body, "plane_id", path) or "",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigurationError(path, f"expected a JSON object, got {_json_type(raw)}")
    return raw


def _required(body: dict[str, Any], key: str, path: str) -> Any:
    if key not in body:
        raise ConfigurationError(_join(path, key), "missing")
    return body[key]


def _string(body: dict[str, Any], key: str, path: str) -> str:
    value = _optional_string(body, key, path)
    if value is None:
        raise ConfigurationError(_join(path, key), "missing" if key not in body else "is null")
    return value


def _optional_string(body: dict[str, Any], key: str, path: str) -> str | None:
    """A string field; an integer is accepted and written in decimal (some writers emit ids as numbers)."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ConfigurationError(_join(path, key), f"expected a string, got {_json_type(value)}")


def _int(body: dict[str, Any], key: str, path: str) -> int:
    value = _optional_int(body, key, path)
    if value is None:
        raise ConfigurationError(_join(path, key), "missing" if key not in body else "is null")
    return value


def _optional_int(body: dict[str, Any], key: str, path: str) -> int | None:
    """An integer field; a decimal string such as "7" or "-1" is accepted."""
    value = body.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise ConfigurationError(_join(path, key), f"expected an integer, got {value!r}") from None
    raise ConfigurationError(_join(path, key), f"expected an integer, got {_json_type(value)}")
