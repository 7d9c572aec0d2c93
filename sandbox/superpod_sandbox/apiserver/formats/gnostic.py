"""A Swagger 2.0 document (as JSON) encoded as gnostic's `openapi.v2.Document` protobuf message.

client-go's `OpenAPISchema()` asks `/openapi/v2` for `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
only, and kube-apiserver answers that encoding. The message layout is gnostic-models' openapiv2/OpenAPIv2.proto;
the field numbers below are that file's. Only what the sandbox's v2 document holds is encoded (document, info,
paths, operations, body/query/path parameters, responses, schemas); maps are the proto's repeated
`Named*` pairs in the JSON's order; `x-` extensions are `NamedAny`s whose `Any.yaml` holds the value as JSON
text (JSON is YAML, and kube-openapi parses that field as YAML).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"

Encoder = Callable[[Any], bytes]


def encode(document: Mapping[str, Any]) -> bytes:
    """The protobuf bytes of a Swagger 2.0 document."""
    return _message(document, _DOCUMENT)


# ---------------------------------------------------------------------------------------------------
# wire format


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten bytes, as in protobuf
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def _string(number: int) -> Encoder:
    return lambda value: _bytes_field(number, str(value).encode()) if value != "" else b""


def _strings(number: int) -> Encoder:
    return lambda values: b"".join(_bytes_field(number, str(v).encode()) for v in values)


def _bool(number: int) -> Encoder:
    return lambda value: _key(number, 0) + b"\x01" if value else b""


def _int(number: int) -> Encoder:
    return lambda value: _key(number, 0) + _varint(int(value)) if value else b""


def _double(number: int) -> Encoder:
    return lambda value: _key(number, 1) + struct.pack("<d", float(value)) if value else b""


def _sub(number: int, fields: Mapping[str, Encoder]) -> Encoder:
    return lambda value: _bytes_field(number, _message(value, fields))


def _subs(number: int, fields: Mapping[str, Encoder]) -> Encoder:
    return lambda values: b"".join(_bytes_field(number, _message(v, fields)) for v in values)


def _any(number: int) -> Encoder:
    """gnostic's `Any` (field 2: the value as YAML text)."""
    return lambda value: _bytes_field(number, _bytes_field(2, json.dumps(value, sort_keys=True).encode()))


def _anys(number: int) -> Encoder:
    return lambda values: b"".join(_any(number)(v) for v in values)


def _named(number: int, value_encoder: Encoder) -> Encoder:
    """A map as repeated `Named*` messages: name is field 1, the value field 2."""

    def encode_map(mapping: Mapping[str, Any]) -> bytes:
        return b"".join(
            _bytes_field(number, _bytes_field(1, name.encode()) + value_encoder(value))
            for name, value in mapping.items()
        )

    return encode_map


def _message(value: Mapping[str, Any], fields: Mapping[str, Encoder]) -> bytes:
    out = bytearray()
    extensions = {k: v for k, v in value.items() if k.startswith("x-")}
    for key, item in value.items():
        encoder = fields.get(key)
        if encoder is not None:
            out += encoder(item)
    if extensions and "x-" in fields:
        out += fields["x-"](extensions)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# messages (field numbers of OpenAPIv2.proto)


def _vendor(number: int) -> Encoder:
    return _named(number, _any(2))


_SCHEMA: dict[str, Encoder] = {}


def _additional_properties(value: Any) -> bytes:
    if isinstance(value, bool):  # AdditionalPropertiesItem.boolean (2)
        return _bytes_field(21, _key(2, 0) + (b"\x01" if value else b"\x00"))
    return _bytes_field(21, _bytes_field(1, _message(value, _SCHEMA)))


def _type(value: Any) -> bytes:  # TypeItem: repeated string value = 1
    return _bytes_field(22, _strings(1)(value if isinstance(value, list) else [value]))


def _items(value: Any) -> bytes:  # ItemsItem: repeated Schema schema = 1
    schemas = value if isinstance(value, list) else [value]
    return _bytes_field(23, b"".join(_bytes_field(1, _message(s, _SCHEMA)) for s in schemas))


def _properties(value: Mapping[str, Any]) -> bytes:  # Properties: repeated NamedSchema = 1
    named = b"".join(
        _bytes_field(1, _bytes_field(1, name.encode()) + _bytes_field(2, _message(schema, _SCHEMA)))
        for name, schema in value.items()
    )
    return _bytes_field(25, named)


_SCHEMA.update(
    {
        "$ref": _string(1),
        "format": _string(2),
        "title": _string(3),
        "description": _string(4),
        "default": _any(5),
        "multipleOf": _double(6),
        "maximum": _double(7),
        "exclusiveMaximum": _bool(8),
        "minimum": _double(9),
        "exclusiveMinimum": _bool(10),
        "maxLength": _int(11),
        "minLength": _int(12),
        "pattern": _string(13),
        "maxItems": _int(14),
        "minItems": _int(15),
        "uniqueItems": _bool(16),
        "maxProperties": _int(17),
        "minProperties": _int(18),
        "required": _strings(19),
        "enum": _anys(20),
        "additionalProperties": _additional_properties,
        "type": _type,
        "items": _items,
        "allOf": _subs(24, _SCHEMA),
        "properties": _properties,
        "discriminator": _string(26),
        "readOnly": _bool(27),
        "example": _any(30),
        "x-": _vendor(31),
    }
)

_NON_BODY_QUERY = {  # QueryParameterSubSchema
    "required": _bool(1),
    "in": _string(2),
    "description": _string(3),
    "name": _string(4),
    "type": _string(6),
    "format": _string(7),
    "uniqueItems": _bool(20),
    "x-": _vendor(23),
}
_NON_BODY_PATH = {  # PathParameterSubSchema
    "required": _bool(1),
    "in": _string(2),
    "description": _string(3),
    "name": _string(4),
    "type": _string(5),
    "format": _string(6),
    "uniqueItems": _bool(19),
    "x-": _vendor(22),
}
_BODY = {
    "description": _string(1),
    "name": _string(2),
    "in": _string(3),
    "required": _bool(4),
    "schema": _sub(5, _SCHEMA),
    "x-": _vendor(6),
}


def _parameters(number: int) -> Encoder:
    """repeated ParametersItem { Parameter parameter = 1 { BodyParameter = 1 | NonBodyParameter = 2 } }."""

    def one(parameter: Mapping[str, Any]) -> bytes:
        where = parameter.get("in")
        if where == "body":
            inner = _bytes_field(1, _message(parameter, _BODY))
        else:  # NonBodyParameter: query = 3, path = 4
            sub = 4 if where == "path" else 3
            fields = _NON_BODY_PATH if where == "path" else _NON_BODY_QUERY
            inner = _bytes_field(2, _bytes_field(sub, _message(parameter, fields)))
        return _bytes_field(number, _bytes_field(1, inner))

    return lambda values: b"".join(one(p) for p in values)


_RESPONSE = {
    "description": _string(1),
    "schema": lambda s: _bytes_field(2, _bytes_field(1, _message(s, _SCHEMA))),
}
# Responses { repeated NamedResponseValue response_code = 1 }, ResponseValue { Response response = 1 }
_RESPONSES = {"codes": _named(1, lambda r: _bytes_field(2, _bytes_field(1, _message(r, _RESPONSE))))}
_OPERATION = {
    "tags": _strings(1),
    "summary": _string(2),
    "description": _string(3),
    "operationId": _string(5),
    "produces": _strings(6),
    "consumes": _strings(7),
    "parameters": _parameters(8),
    "responses": lambda r: _bytes_field(9, _message({"codes": r}, _RESPONSES)),
    "schemes": _strings(10),
    "deprecated": _bool(11),
    "x-": _vendor(13),
}
_PATH_ITEM = {
    "$ref": _string(1),
    "get": _sub(2, _OPERATION),
    "put": _sub(3, _OPERATION),
    "post": _sub(4, _OPERATION),
    "delete": _sub(5, _OPERATION),
    "options": _sub(6, _OPERATION),
    "head": _sub(7, _OPERATION),
    "patch": _sub(8, _OPERATION),
    "parameters": _parameters(9),
    "x-": _vendor(10),
}
_DOCUMENT = {
    "swagger": _string(1),
    "info": _sub(2, {"title": _string(1), "version": _string(2), "description": _string(3)}),
    "host": _string(3),
    "basePath": _string(4),
    "schemes": _strings(5),
    "consumes": _strings(6),
    "produces": _strings(7),
    # Paths { repeated NamedPathItem path = 2 }
    "paths": lambda p: _bytes_field(
        8, _named(2, lambda item: _bytes_field(2, _message(item, _PATH_ITEM)))(p)
    ),
    # Definitions { repeated NamedSchema additional_properties = 1 }
    "definitions": lambda d: _bytes_field(9, _named(1, lambda s: _bytes_field(2, _message(s, _SCHEMA)))(d)),
    "x-": _vendor(16),
}
