"""The field numbers of kube's protobuf messages, read from kube's own `generated.proto` files.

`python -m superpod_sandbox.apiserver.formats.protobuf_fields API_DIR APIMACHINERY_DIR` reads every
`generated.proto` under checkouts of k8s.io/api and k8s.io/apimachinery (GA versions) and rewrites
`protobuf_fields.json`: message (`k8s.io.api.apps.v1.Deployment`) -> field number -> [JSON name, type,
label], where type is a scalar (`string`, `int32`, `bytes`...), a message's full name, or `map:<value type>`,
and label is `optional` or `repeated`. go-to-protobuf names each field after its JSON name, so the table is
all `protobuf.py` needs to turn any served built-in kind's protobuf body into JSON: no per-kind decoder.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("protobuf_fields.json")
_SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "sint32"}
_FIELD = re.compile(
    r"^\s*(optional|repeated)?\s*(map<\s*string\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;"
)
_MESSAGE = re.compile(r"^\s*message\s+(\w+)\s*\{")
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;")
_GA = re.compile(r"^v\d+$")


def _resolve(name: str, package: str, messages: set[str]) -> str:
    if name in _SCALARS:
        return name
    if name.startswith("."):
        return name[1:]
    return f"{package}.{name}"


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """The messages of one generated.proto (kube's are flat: no nested messages, no oneofs)."""
    package = ""
    found: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if match := _PACKAGE.match(line):
            package = match.group(1)
        elif match := _MESSAGE.match(line):
            current = found.setdefault(f"{package}.{match.group(1)}", {})
        elif current is not None and line.strip() == "}":
            current = None
        elif current is not None and (match := _FIELD.match(line)):
            label, kind, map_value, name, number = match.groups()
            if map_value:
                kind = "map:" + _resolve(map_value, package, set())
            else:
                kind = _resolve(kind, package, set())
            current[number] = [name, kind, label or "optional"]
    return found


def _json_names() -> set[str]:
    """Every JSON field name of the `kubernetes` client's models (the field table the sandbox ships)."""
    fields = json.loads(Path(__file__).parent.parent.joinpath("registry", "builtin_fields.json").read_text())
    return {name for model in fields.values() for name in model}


def generate(api: Path, apimachinery: Path) -> dict[str, dict[str, list[str]]]:
    """A few old fields are named after the Go field (`Webhooks`) where the JSON name is `webhooks`; the
    client's JSON names decide (`DaemonEndpoint.Port` really is `Port` in JSON)."""
    json_names = _json_names()
    table: dict[str, dict[str, list[str]]] = {}
    for path in sorted([*api.rglob("generated.proto"), *apimachinery.rglob("generated.proto")]):
        version = path.parent.name
        if "testapigroup" in path.parts or (not _GA.match(version) and "apis" in path.parts):
            continue
        if path.is_relative_to(api) and not _GA.match(version):
            continue
        table.update(parse(path.read_text()))
    for message in table.values():
        for spec in message.values():
            if spec[0][:1].isupper() and spec[0] not in json_names:
                spec[0] = spec[0][:1].lower() + spec[0][1:]
    return dict(sorted(table.items()))


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


if __name__ == "__main__":
    TABLE.write_text(render(generate(Path(sys.argv[1]), Path(sys.argv[2]))))
    print(f"wrote {TABLE}")
