"""The client's JSON codec reads and writes the same documents as the standard library's `json`, errors included."""

from __future__ import annotations

import json
from typing import Any

import pytest
from superpod.cluster import client, codec

from tests.builders import objects
from tests.localserver import serving
from tests.unit.controller.test_compact_mirror import as_served

NODE = as_served(objects.node("n0").superpod(3, rack=1, server=7).devices(16).ready().obj())

DOCUMENTS = {
    "a Node as the API serves it": json.dumps(NODE),
    "a device-info ConfigMap (JSON documents inside strings)": json.dumps(objects.deviceinfo_configmap("n0")),
    "text beyond ASCII, raw and escaped": '{"message": "节点 n0 \\u00e9t\\u00e9 \\ud83d\\ude80 ok"}',
    "numbers of every form": "[0, -0, 1.5, -2e-3, 1E+300, 12345678901234567890, 9223372036854775807]",
    "the largest integers of 64 bits": "[-9223372036854775808, 18446744073709551615]",
    "a lone surrogate escape (orjson refuses it)": '{"name": "\\ud800"}',
    "NaN and Infinity (orjson refuses them)": "[NaN, Infinity, -Infinity]",
    "empty containers and nulls": '{"a": {}, "b": [], "c": null, "d": true, "e": false}',
}


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_a_document_decodes_as_json_decodes_it(text: str) -> None:
    expected = json.dumps(json.loads(text), sort_keys=True)  # compared as text: NaN is unequal to itself
    for raw in (text.encode(), text, bytearray(text.encode())):
        assert json.dumps(codec.loads(raw), sort_keys=True) == expected


def test_an_integer_beyond_64_bits_reads_as_the_float_kube_apiserver_makes_of_it() -> None:
    """kube-apiserver reads a number as an int64, else a float64: it never sends a larger integer."""
    assert codec.loads(b'{"n": 123456789012345678901234567890}') == {"n": 1.2345678901234568e29}


@pytest.mark.parametrize("text", ['{"a": 1', "{'a': 1}", "", "[1,]", '{"a": 1} x'])
def test_a_malformed_document_is_refused_with_jsons_own_message(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        codec.loads(text.encode())
    assert str(got.value) == str(expected.value)


VALUES: dict[str, Any] = {
    "a Node": NODE,
    "an integer beyond 64 bits": {"n": 2**70},
    "keys that are not strings": {1: "one", 2.5: "two and a half"},
    "text beyond ASCII": {"m": "été 🚀"},
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_a_value_encodes_to_the_document_json_writes(value: Any) -> None:
    assert json.loads(codec.dumps(value)) == json.loads(json.dumps(value))
    assert json.loads(codec.dumps(value, sort_keys=True)) == json.loads(json.dumps(value))


def test_sorted_keys_are_sorted_at_every_depth() -> None:
    assert codec.dumps({"b": {"z": 1, "a": 2}, "a": [{"y": 0, "x": 0}]}, sort_keys=True) == (
        b'{"a":[{"x":0,"y":0}],"b":{"a":2,"z":1}}'
    )


async def test_the_clients_watch_decodes_every_event_as_json_does() -> None:
    from aiohttp import web

    lines = [
        {"type": "ADDED", "object": NODE},
        {"type": "MODIFIED", "object": {"metadata": {"name": "x", "resourceVersion": "2"}, "big": 2**70}},
    ]
    body = b"".join(json.dumps(event).encode() + b"\n" for event in lines)
    body += b'{"type":"MODIFIED","object":{"metadata":{"name":"\\ud800"}}}\n'

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    async with serving(handle, "GET") as url, client.KubeClient(client.Credentials(server=url)) as api:
        got = [event async for event in api.watch("/api/v1/nodes")]
    assert got == [*lines, json.loads(body.splitlines()[-1])]
