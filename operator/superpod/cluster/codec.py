"""The JSON of the operator's API traffic: orjson, with the standard library's `json` behind it.

Every watch event is decoded whole before a mirror reduces it to what the operator reads, and every replica is
sent every Node's status report and every device-info ConfigMap's refresh: at 64 Atlas 950 SuperPoDs, 65,536 of
each every 5 minutes, about 440 events a second, a Node about 11.5 KB as the API serves it. orjson decodes such
a Node several times faster than `json` (docs/performance.md, "Watch events"). `KubeClient` decodes its answers
and watch events with `loads` and encodes its bodies with `dumps` unless it is given another codec.

The documents are the same as `json`'s: what orjson refuses (on decoding a lone surrogate escape, NaN or
Infinity; on encoding an integer beyond 64 bits or a key that is not a string) goes through `json` as before,
so nothing accepted or sent before is refused now, and a malformed document gets `json`'s own error and message.
One difference is left: an integer beyond 64 bits is read as a float, as kube-apiserver reads it (an int64, else
a float64), so none comes from the API server. The sandbox keeps a codec of its own (`superpod_sandbox.codec`): its API server imports
nothing of the operator.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON (no spaces, UTF-8), as bytes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode()


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """A JSON document; raises ValueError (`json`'s own, with its message) when it is not one."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)
