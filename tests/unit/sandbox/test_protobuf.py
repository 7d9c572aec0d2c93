"""Protobuf bodies that the real kubectl sends decode to the JSON objects kube would build from them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from superpod_sandbox.apiserver.formats import protobuf

from tests.unit.sandbox import fake_apiserver

CORE = [
    fake_apiserver.Resource("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",)),
    fake_apiserver.Resource("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    fake_apiserver.Resource("", "v1", "Secret", "secrets"),
    fake_apiserver.Resource("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",)),
]


async def capture(tmp_path: Path, *args: str) -> fake_apiserver.Recorded:
    """Run `kubectl create ...` against the fake server and return the POST it made."""

    async def created(request: web.Request) -> web.Response:
        obj = protobuf.decode(await request.read())
        obj["metadata"].setdefault("namespace", request.match_info.get("namespace", ""))
        return web.json_response(obj, status=201)

    server = fake_apiserver.FakeApiServer(CORE, tmp_path)
    server.route("POST", "/api/v1/namespaces", created)
    server.route("POST", "/api/v1/namespaces/{namespace}/{resource}", created)
    async with server:
        code, _, err = await server.kubectl("create", *args)
    assert code == 0, err
    (post,) = [r for r in server.requests if r.method == "POST"]
    assert post.headers["Content-Type"] == protobuf.CONTENT_TYPE
    return post


async def test_kubectl_create_namespace(tmp_path: Path) -> None:
    post = await capture(tmp_path, "namespace", "team-a")
    assert protobuf.decode(post.body) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a"},
        "spec": {},
        "status": {},
    }


async def test_kubectl_create_configmap_with_text_and_binary_data(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\xff\x10")
    post = await capture(
        tmp_path,
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=empty=",
        f"--from-file={binary}",
    )
    assert protobuf.decode(post.body) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},  # kubectl names the namespace only in the URL
        "data": {"mode": "fast", "empty": ""},
        "binaryData": {"blob.bin": base64.b64encode(b"\x00\xff\x10").decode()},
    }


async def test_kubectl_create_secret_generic_with_a_type(tmp_path: Path) -> None:
    post = await capture(
        tmp_path, "secret", "generic", "token", "--from-literal=key=s3cret", "--type=example.dev/token"
    )
    assert protobuf.decode(post.body) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "token"},  # kubectl names the namespace only in the URL
        "data": {"key": base64.b64encode(b"s3cret").decode()},
        "type": "example.dev/token",
    }


async def test_kubectl_create_serviceaccount(tmp_path: Path) -> None:
    post = await capture(tmp_path, "serviceaccount", "robot")
    assert protobuf.decode(post.body) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot"},  # kubectl names the namespace only in the URL
    }


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return encode_varint(number << 3) + encode_varint(value)
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = field(1, api_version.encode()) + field(2, kind.encode())
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw) + field(3, b"") + field(4, b"")


def entry(key: str, value: str) -> bytes:
    return field(1, key.encode()) + field(2, value.encode())


def test_object_meta_fields_decode_with_their_json_names() -> None:
    owner = field(1, b"Deployment") + field(3, b"web") + field(4, b"u-1") + field(5, b"apps/v1") + field(6, 1)
    meta = (
        field(1, b"cm")
        + field(2, b"cm-")
        + field(3, b"ns")
        + field(7, 3)
        + field(8, b"")  # Go's zero time, as kubectl sends it
        + field(9, field(1, 1767322245))
        + field(10, 0)
        + field(11, entry("app", "web"))
        + field(12, entry("note", "x"))
        + field(13, owner)
        + field(14, b"example.dev/cleanup")
        + field(99, b"an unknown field is skipped")
    )
    obj = protobuf.decode(envelope("v1", "ConfigMap", field(1, meta) + field(4, 0)))
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "immutable": False,
        "metadata": {
            "name": "cm",
            "generateName": "cm-",
            "namespace": "ns",
            "generation": 3,
            "deletionTimestamp": "2026-01-02T02:50:45Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
            "ownerReferences": [
                {
                    "kind": "Deployment",
                    "name": "web",
                    "uid": "u-1",
                    "apiVersion": "apps/v1",
                    "controller": True,
                }
            ],
            "finalizers": ["example.dev/cleanup"],
        },
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(b'{"kind": "Namespace"}', protobuf.ProtobufError, id="JSON is not protobuf"),
        pytest.param(protobuf.MAGIC + b"\x0a\x05ab", protobuf.ProtobufError, id="a truncated field"),
        pytest.param(
            envelope("example.dev/v1", "Widget", b""), protobuf.UnsupportedKind, id="a kind without a table"
        ),
    ],
)
def test_bad_bodies_raise(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        protobuf.decode(body)


def test_an_explicit_immutable_true_is_kept() -> None:
    obj: dict[str, Any] = protobuf.decode(envelope("v1", "Secret", field(1, field(1, b"s")) + field(5, 1)))
    assert obj == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "immutable": True}


def test_delete_options_from_a_typed_client_decode() -> None:
    options = field(1, 0) + field(2, field(1, b"u-1")) + field(4, b"Foreground") + field(5, b"All")
    assert protobuf.decode(envelope("v1", "DeleteOptions", options)) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_every_served_built_in_kind_has_a_message_whose_fields_match_the_client_models() -> None:
    """The proto table (kube's generated.proto) and the field table (the `kubernetes` client) agree."""
    from superpod_sandbox.apiserver.registry import resources, typed

    for resource in resources.BUILTINS:
        if resource.group in ("apiextensions.k8s.io", "apiregistration.k8s.io"):
            continue  # served from their own repositories' protos, which the table does not include
        message = protobuf.message_name(resource.api_version(resource.storage_version), resource.kind)
        assert message is not None, resource.key
        model = typed.MODELS.get(resource.key)
        if model is None:
            continue
        proto_names = {spec[0] for spec in protobuf._table()[message].values()}
        client_names = set(typed._fields(model) or {}) - {"apiVersion", "kind"}
        assert client_names <= proto_names, (resource.key, client_names - proto_names)
