"""Read the protobuf request bodies kubectl and client-go send for built-in kinds, into the JSON kube would produce.

`kubectl create namespace|configmap|secret|serviceaccount|role|clusterrole|rolebinding|clusterrolebinding|
service|poddisruptionbudget|deployment|job|...` and `kubectl auth can-i` POST `Content-Type:
application/vnd.kubernetes.protobuf`. Input to `decode(body)`: the raw request body: the 4-byte magic `k8s\\x00`
followed by a runtime.Unknown message (typeMeta {apiVersion, kind}, raw: the object's own protobuf encoding,
contentEncoding, contentType). Output: the object as a JSON dict, as decoding the equivalent JSON would give
it: `apiVersion` and `kind` from typeMeta, then the fields that are set.

Every kind of k8s.io/api (GA versions) and meta/v1 DeleteOptions is read the same way, from the field numbers,
JSON names and types of kube's own generated.proto files (`protobuf_fields.json`, see `protobuf_fields.py`):
no per-kind decoder. apimachinery's special types become their JSON forms (Time and MicroTime as RFC 3339,
Quantity and IntOrString as their string or number, FieldsV1 and RawExtension as JSON, `bytes` as base64).
Like Go's `omitempty`, empty strings and lists and zero numbers and false booleans are left out (the protobuf
encoder writes non-pointer fields anyway) except for the pointer fields in POINTER_ZEROS, whose explicit zero
means something (`replicas: 0`, `automountServiceAccountToken: false`). Kinds without a message raise
`UnsupportedKind` (answer 415); malformed bodies raise `ProtobufError` (answer 400).

The wire decoder is a few lines: varints, 64/32-bit fixed fields, length-delimited fields, packed repeated
varints; maps are repeated entry messages (key = 1, value = 2).
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import struct
from collections.abc import Iterator
from typing import Any

from superpod_sandbox.apiserver.formats import protobuf_fields

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """The body is not a well-formed Kubernetes protobuf envelope."""


class UnsupportedKind(ProtobufError):
    """The envelope holds a kind this decoder has no field table for."""


# ---------------------------------------------------------------------------------------------------
# wire format

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of one message; varints as int, the rest as bytes."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == LENGTH_DELIMITED:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError(f"field {number}: length {length} runs past the end")
            yield number, wire, data[position : position + length]
            position += length
        elif wire == FIXED64:
            yield number, wire, data[position : position + 8]
            position += 8
        elif wire == FIXED32:
            yield number, wire, data[position : position + 4]
            position += 4
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire}")


# ---------------------------------------------------------------------------------------------------
# messages: kube's generated.proto field tables (protobuf_fields.json), read generically

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# Go pointer fields whose explicit zero (0, false) means something other than "unset". go-to-protobuf
# writes non-pointer scalars even when zero and the .proto does not say which fields are pointers, so zero
# scalars are dropped (Go's omitempty) except for these JSON names.
POINTER_ZEROS = frozenset(
    {
        "immutable",
        "deletionGracePeriodSeconds",
        "gracePeriodSeconds",
        "controller",
        "blockOwnerDeletion",
        "orphanDependents",
        "automountServiceAccountToken",
        "replicas",
        "terminationGracePeriodSeconds",
        "activeDeadlineSeconds",
        "backoffLimit",
        "backoffLimitPerIndex",
        "parallelism",
        "completions",
        "suspend",
        "ttlSecondsAfterFinished",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "readOnlyRootFilesystem",
        "runAsNonRoot",
        "runAsUser",
        "runAsGroup",
        "privileged",
        "allowPrivilegeEscalation",
        "optional",
        "enableServiceLinks",
        "hostUsers",
        "value",
        "allocateLoadBalancerNodePorts",
        "publishNotReadyAddresses",
    }
)
_WELL_KNOWN = {
    f"{META}.Time",
    f"{META}.MicroTime",
    f"{META}.Duration",
    f"{META}.FieldsV1",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
}


@functools.cache
def _table() -> dict[str, dict[str, list[str]]]:
    loaded: dict[str, dict[str, list[str]]] = json.loads(protobuf_fields.TABLE.read_text())
    return loaded


def message_name(api_version: str, kind: str) -> str | None:
    """The generated.proto message of a kind (`apps/v1` Deployment -> k8s.io.api.apps.v1.Deployment)."""
    group, _, version = api_version.rpartition("/")
    if kind in ("DeleteOptions", "CreateOptions", "UpdateOptions", "PatchOptions"):
        name = f"{META}.{kind}"
    else:
        name = f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}.{kind}"
    return name if name in _table() else None


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object carried by a `k8s\\x00`-prefixed runtime.Unknown body (see the module docstring)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s\\x00 prefix of a Kubernetes protobuf body")
    api_version = kind = ""
    raw = b""
    for number, _, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for type_number, _, type_value in fields(value):
                if isinstance(type_value, bytes):
                    if type_number == 1:
                        api_version = type_value.decode()
                    elif type_number == 2:
                        kind = type_value.decode()
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and isinstance(value, bytes) and value:
            raise ProtobufError(f"unsupported contentEncoding {value.decode(errors='replace')!r}")
    message = message_name(api_version, kind)
    if message is None:
        raise UnsupportedKind(f"no protobuf decoding for {api_version or '?'}/{kind or '?'}")
    return {"apiVersion": api_version, "kind": kind, **decode_message(raw, message)}


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    """One message of kube's generated.proto, named by its full name, as a JSON dict."""
    table = _table().get(message, {})
    result: dict[str, Any] = {}
    for number, wire, value in fields(data):
        spec = table.get(str(number))
        if spec is None:
            continue  # unknown fields are skipped, as proto2 decoders do
        name, kind, label = spec
        if kind.startswith("map:"):
            key, item = _map_entry(kind[4:], value)
            result.setdefault(name, {})[key] = item
            continue
        if (
            label == "repeated"
            and wire == LENGTH_DELIMITED
            and kind in _PACKABLE
            and isinstance(value, bytes)
        ):
            result.setdefault(name, []).extend(_signed(v) for _, _, v in fields_packed(value))
            continue
        decoded = _value(name, kind, value)
        if label == "repeated":
            result.setdefault(name, []).append(decoded)
        else:
            result[name] = decoded
    return {name: value for name, value in result.items() if _keep(name, value)}


_PACKABLE = {"int32", "int64", "bool", "uint32", "uint64"}


def fields_packed(data: bytes) -> Iterator[tuple[int, int, int]]:
    position = 0
    while position < len(data):
        value, position = _varint(data, position)
        yield 0, VARINT, value


def _keep(name: str, value: Any) -> bool:
    """Go's omitempty for what the encoder wrote anyway: empty strings and lists, zero scalars (see above)."""
    if value is None or value == "" or value == []:
        return False
    if value is False or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return name in POINTER_ZEROS
    return True


def _map_entry(kind: str, value: int | bytes) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ProtobufError("a map entry must be length-delimited")
    key, item = "", None
    for number, _, entry in fields(value):
        if number == 1 and isinstance(entry, bytes):
            key = entry.decode()
        elif number == 2:
            item = _value(key, kind, entry)
    if item is None:
        item = _value(key, kind, b"" if kind not in _PACKABLE else 0)
    return key, item


def _value(name: str, kind: str, value: int | bytes) -> Any:
    if kind in ("int32", "int64", "uint32", "uint64", "bool"):
        if not isinstance(value, int):
            raise ProtobufError(f"{name}: expected a varint")
        return bool(value) if kind == "bool" else _signed(value)
    if kind in ("double", "float"):
        if not isinstance(value, bytes):
            raise ProtobufError(f"{name}: expected a fixed-width number")
        return struct.unpack("<d" if kind == "double" else "<f", value)[0]
    if not isinstance(value, bytes):
        raise ProtobufError(f"{name}: expected a length-delimited field")
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind in _WELL_KNOWN:
        return _well_known(kind, value)
    fields_of = _table().get(kind, {})
    if list(fields_of.values()) == [["items", "string", "repeated"]]:
        return [entry.decode() for _, _, entry in fields(value) if isinstance(entry, bytes)]  # ExtraValue
    return decode_message(value, kind)


def _well_known(kind: str, value: bytes) -> Any:
    """apimachinery's types whose JSON is not their protobuf message: times, quantities, int-or-string..."""
    short = kind.rpartition(".")[2]
    if short in ("Time", "MicroTime"):
        return _time(value, micro=short == "MicroTime")
    parts = {number: entry for number, _, entry in fields(value)}
    if short == "Quantity":
        return parts.get(1, b"").decode() if isinstance(parts.get(1), bytes) else "0"  # type: ignore[union-attr]
    if short == "IntOrString":
        if parts.get(1, 0) == 1:
            raw = parts.get(3, b"")
            return raw.decode() if isinstance(raw, bytes) else ""
        number = parts.get(2, 0)
        return _signed(number) if isinstance(number, int) else 0
    if short == "Duration":
        nanos = parts.get(1, 0)
        return f"{(_signed(nanos) if isinstance(nanos, int) else 0) / 1e9:g}s"
    raw = parts.get(1, b"")  # FieldsV1 and RawExtension hold JSON
    return json.loads(raw) if isinstance(raw, bytes) and raw else {}


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes, micro: bool = False) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, int):
            seconds = _signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = value
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time: JSON null, which kube treats as unset
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
