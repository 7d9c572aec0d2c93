"""Read the protobuf request bodies kubectl 1.35 sends for built-in kinds, into the JSON kube would produce.

`kubectl create namespace|configmap|secret|serviceaccount` POST `Content-Type:
application/vnd.kubernetes.protobuf`. Input to `decode(body)`: the raw request body: the 4-byte magic `k8s\\x00`
followed by a runtime.Unknown message (typeMeta {apiVersion, kind}, raw: the object's own protobuf encoding,
contentEncoding, contentType). Output: the object as a JSON dict, as decoding the equivalent JSON would give
it: `apiVersion` and `kind` from typeMeta, then the fields that are set. Like Go's `omitempty`, empty strings,
zero numbers, false booleans, empty maps and lists of non-pointer fields are left out (the protobuf encoder
writes them anyway); pointer fields (`immutable`, `deletionGracePeriodSeconds`, `controller`,
`blockOwnerDeletion`, `automountServiceAccountToken`) keep an explicit false or 0. `bytes` fields (Secret
`data`, ConfigMap `binaryData`) become base64 strings; a zero `creationTimestamp` (what kubectl sends) is
left out; other times become RFC 3339 strings.

Kinds: v1 Namespace, ConfigMap, Secret, ServiceAccount, the authorization and authentication reviews,
TokenRequest, and meta/v1 DeleteOptions in any group-version (the body
of DELETE from client-go's typed clients, e.g. helm's release storage) (field numbers from k8s.io/api core/v1 generated.proto and
k8s.io/apimachinery meta/v1 generated.proto). Other kinds raise `UnsupportedKind` (answer 415); malformed bodies
raise `ProtobufError` (answer 400).

The wire decoder is a few lines: varints, 64/32-bit fixed fields (skipped), length-delimited fields; maps are
repeated entry messages (key = 1, value = 2).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from collections.abc import Iterator
from typing import Any

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
# message tables: field number -> how to read it


@dataclasses.dataclass(frozen=True)
class Field:
    name: str  # JSON name
    kind: str  # string, bytes, int, bool, time, message, map-string, map-bytes
    repeated: bool = False
    pointer: bool = False  # a Go pointer: present means set, even when zero
    message: str = ""  # for kind == "message": the message table's name
    always: bool = False  # no omitempty in the JSON tag


MESSAGES: dict[str, dict[int, Field]] = {
    "ObjectMeta": {
        1: Field("name", "string"),
        2: Field("generateName", "string"),
        3: Field("namespace", "string"),
        4: Field("selfLink", "string"),
        5: Field("uid", "string"),
        6: Field("resourceVersion", "string"),
        7: Field("generation", "int"),
        8: Field("creationTimestamp", "time"),
        9: Field("deletionTimestamp", "time", pointer=True),
        10: Field("deletionGracePeriodSeconds", "int", pointer=True),
        11: Field("labels", "map-string"),
        12: Field("annotations", "map-string"),
        13: Field("ownerReferences", "message", repeated=True, message="OwnerReference"),
        14: Field("finalizers", "string", repeated=True),
        17: Field("managedFields", "message", repeated=True, message="ManagedFieldsEntry"),
    },
    "OwnerReference": {
        5: Field("apiVersion", "string", always=True),
        1: Field("kind", "string", always=True),
        3: Field("name", "string", always=True),
        4: Field("uid", "string", always=True),
        6: Field("controller", "bool", pointer=True),
        7: Field("blockOwnerDeletion", "bool", pointer=True),
    },
    "ManagedFieldsEntry": {
        1: Field("manager", "string"),
        2: Field("operation", "string"),
        3: Field("apiVersion", "string"),
        4: Field("time", "time", pointer=True),
        6: Field("fieldsType", "string"),
        7: Field("fieldsV1", "message", pointer=True, message="FieldsV1"),
        8: Field("subresource", "string"),
    },
    "FieldsV1": {},  # its raw JSON is decoded specially below
    "Namespace": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="NamespaceSpec", always=True),
        3: Field("status", "message", message="NamespaceStatus", always=True),
    },
    "NamespaceSpec": {1: Field("finalizers", "string", repeated=True)},
    "NamespaceStatus": {1: Field("phase", "string")},
    "ConfigMap": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        4: Field("immutable", "bool", pointer=True),
        2: Field("data", "map-string"),
        3: Field("binaryData", "map-bytes"),
    },
    "Secret": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        5: Field("immutable", "bool", pointer=True),
        2: Field("data", "map-bytes"),
        4: Field("stringData", "map-string"),
        3: Field("type", "string"),
    },
    "ServiceAccount": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("secrets", "message", repeated=True, message="ObjectReference"),
        3: Field("imagePullSecrets", "message", repeated=True, message="LocalObjectReference"),
        4: Field("automountServiceAccountToken", "bool", pointer=True),
    },
    "ObjectReference": {
        1: Field("kind", "string"),
        2: Field("namespace", "string"),
        3: Field("name", "string"),
        4: Field("uid", "string"),
        5: Field("apiVersion", "string"),
        6: Field("resourceVersion", "string"),
        7: Field("fieldPath", "string"),
    },
    "LocalObjectReference": {1: Field("name", "string")},
    "DeleteOptions": {
        1: Field("gracePeriodSeconds", "int", pointer=True),
        2: Field("preconditions", "message", pointer=True, message="Preconditions"),
        3: Field("orphanDependents", "bool", pointer=True),
        4: Field("propagationPolicy", "string", pointer=True),
        5: Field("dryRun", "string", repeated=True),
        6: Field("ignoreStoreReadErrorWithClusterBreakingPotential", "bool", pointer=True),
    },
    "Preconditions": {
        1: Field("uid", "string", pointer=True),
        2: Field("resourceVersion", "string", pointer=True),
    },
    # the reviews and TokenRequest (`kubectl auth can-i|whoami`, `kubectl create token`): authorization/v1 and
    # authentication/v1 generated.proto
    "SelfSubjectAccessReview": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="SubjectAccessReviewSpec", always=True),
    },
    "SubjectAccessReview": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="SubjectAccessReviewSpec", always=True),
    },
    "SubjectAccessReviewSpec": {
        1: Field("resourceAttributes", "message", pointer=True, message="ResourceAttributes"),
        2: Field("nonResourceAttributes", "message", pointer=True, message="NonResourceAttributes"),
        3: Field("user", "string"),
        4: Field("groups", "string", repeated=True),
        6: Field("uid", "string"),
    },
    "ResourceAttributes": {
        1: Field("namespace", "string"),
        2: Field("verb", "string"),
        3: Field("group", "string"),
        4: Field("version", "string"),
        5: Field("resource", "string"),
        6: Field("subresource", "string"),
        7: Field("name", "string"),
    },
    "NonResourceAttributes": {1: Field("path", "string"), 2: Field("verb", "string")},
    "SelfSubjectRulesReview": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="SelfSubjectRulesReviewSpec", always=True),
    },
    "SelfSubjectRulesReviewSpec": {1: Field("namespace", "string")},
    "SelfSubjectReview": {1: Field("metadata", "message", message="ObjectMeta", always=True)},
    "TokenReview": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="TokenReviewSpec", always=True),
    },
    "TokenReviewSpec": {1: Field("token", "string"), 2: Field("audiences", "string", repeated=True)},
    "TokenRequest": {
        1: Field("metadata", "message", message="ObjectMeta", always=True),
        2: Field("spec", "message", message="TokenRequestSpec", always=True),
    },
    "TokenRequestSpec": {
        1: Field("audiences", "string", repeated=True, always=True),
        4: Field("expirationSeconds", "int", pointer=True),
        3: Field("boundObjectRef", "message", pointer=True, message="BoundObjectReference"),
    },
    "BoundObjectReference": {
        1: Field("kind", "string"),
        2: Field("apiVersion", "string"),
        3: Field("name", "string"),
        4: Field("uid", "string"),
    },
}
_AUTHORIZATION, _AUTHENTICATION = "authorization.k8s.io/v1", "authentication.k8s.io/v1"
KINDS = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    (_AUTHORIZATION, "SelfSubjectAccessReview"),
    (_AUTHORIZATION, "SubjectAccessReview"),
    (_AUTHORIZATION, "SelfSubjectRulesReview"),
    (_AUTHENTICATION, "SelfSubjectReview"),
    (_AUTHENTICATION, "TokenReview"),
    (_AUTHENTICATION, "TokenRequest"),
}


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
    # DeleteOptions is registered in every group-version; client-go's typed clients send it in theirs.
    if (api_version, kind) not in KINDS and not (kind == "DeleteOptions" and api_version):
        raise UnsupportedKind(f"no protobuf decoding for {api_version or '?'}/{kind or '?'}")
    return {"apiVersion": api_version, "kind": kind, **decode_message(raw, kind)}


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    """One message of the table named `message`, as a JSON dict."""
    table = MESSAGES[message]
    result: dict[str, Any] = {}
    present: set[str] = set()
    for number, wire, value in fields(data):
        field = table.get(number)
        if field is None:
            continue  # unknown fields are skipped, as proto2 decoders do
        present.add(field.name)
        decoded = _value(field, wire, value)
        if field.kind.startswith("map-"):
            key, item = decoded
            result.setdefault(field.name, {})[key] = item
        elif field.repeated:
            result.setdefault(field.name, []).append(decoded)
        else:
            result[field.name] = decoded
    return {name: value for name, value in result.items() if _keep(table, name, value)}


def _keep(table: dict[int, Field], name: str, value: Any) -> bool:
    field = next(f for f in table.values() if f.name == name)
    if field.pointer or field.always:
        return value is not None or field.always
    return value not in ("", 0, None, {}, [])  # omitempty (False == 0 goes too)


def _value(field: Field, wire: int, value: int | bytes) -> Any:
    if field.kind in ("int", "bool"):
        if not isinstance(value, int):
            raise ProtobufError(f"{field.name}: expected a varint")
        return bool(value) if field.kind == "bool" else _signed(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{field.name}: expected a length-delimited field")
    if field.kind == "string":
        return value.decode()
    if field.kind == "bytes":
        return base64.b64encode(value).decode()
    if field.kind == "time":
        return _time(value)
    if field.kind.startswith("map-"):
        key, item = "", b""
        for number, _, entry in fields(value):
            if number == 1 and isinstance(entry, bytes):
                key = entry.decode()
            elif number == 2 and isinstance(entry, bytes):
                item = entry
        return key, (item.decode() if field.kind == "map-string" else base64.b64encode(item).decode())
    if field.message == "FieldsV1":
        raw = next((entry for number, _, entry in fields(value) if number == 1), b"")
        return json.loads(raw) if isinstance(raw, bytes) and raw else {}
    return decode_message(value, field.message)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields(data):
        if number == 1 and isinstance(value, int):
            seconds = _signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = value
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time: JSON null, which kube treats as unset
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
