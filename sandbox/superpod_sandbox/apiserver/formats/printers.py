"""Table responses (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as kube-apiserver builds them.

`table(objects, columns, list_metadata, include_object)`:

- `objects`: the JSON objects of the LIST (or the one object of a GET), in the order to show them.
- `columns`: either a CRD version's `additionalPrinterColumns` (dicts with `name`, `type`, `jsonPath`, and
  optionally `format`, `description`, `priority`): the Name column is put first, as kube does, and an empty list
  gives the CRD default (Age); or one of `BUILTIN_COLUMNS`' values: complete column lists whose dicts carry a
  `value` callable (object -> cell) instead of a `jsonPath`, used as they are; or `None`: kube's generic default
  for resources without printers (Name, Created At).
- `list_metadata`: the Table's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`) as the LIST
  would have it.
- `include_object`: the `includeObject` query parameter: `Metadata` (default; each row carries a
  meta.k8s.io/v1 PartialObjectMetadata), `Object` (the whole object) or `None` (no object).

Cells follow kube's CRD table convertor: `date` cells carry the age the server computes (`5m`, `3h2m`, `12d`;
kubectl prints cells as they come), `string` cells print the JSONPath result as Go's text/template would,
`integer`/`number`/`boolean` cells are JSON values, and a path with no result gives a null cell (kubectl
prints it empty). The generic default's Created At cell is the RFC 3339 timestamp, as kube's default table
convertor sends it. Built-in printers compute their cells on the server too, as kube's internal printers do.

JSONPath support: `.a.b`, `.a[0].b`, `.a['x.y']`, `.a[?(@.type=="Ready")].status` (== and != against a string
or number), optionally wrapped in `{...}`.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from superpod_sandbox.apiserver.formats import gotext

JSON = Any
Cell = Any  # str, int, float, bool or None

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may "
    "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
    "for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
CRD_DEFAULT_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": CREATED_DESCRIPTION,
    }
]


def table(
    objects: list[dict[str, Any]],
    columns: list[dict[str, Any]] | None,
    list_metadata: dict[str, Any],
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """Build the meta.k8s.io/v1 Table for `objects` (see the module docstring for the inputs)."""
    if columns is None:
        definitions, cells_of = _generic_columns()
    elif any("value" in column for column in columns):
        definitions = [_definition(column, column.get("description", "")) for column in columns]
        cells_of = [column["value"] for column in columns]
    else:
        definitions, cells_of = _crd_columns(columns or CRD_DEFAULT_COLUMNS)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(obj) for cell in cells_of]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_object_metadata(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(list_metadata),
        "columnDefinitions": definitions,
        "rows": rows,
    }


def partial_object_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The meta.k8s.io/v1 PartialObjectMetadata of `obj`: its metadata only."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def _definition(column: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": column["name"],
        "type": column.get("type", "string"),
        "format": column.get("format", ""),
        "description": description,
        "priority": int(column.get("priority", 0)),
    }


def _generic_columns() -> tuple[list[dict[str, Any]], list[Callable[[dict[str, Any]], Cell]]]:
    definitions = [
        _definition({"name": "Name", "type": "string", "format": "name"}, NAME_DESCRIPTION),
        _definition({"name": "Created At", "type": "date"}, CREATED_DESCRIPTION),
    ]
    return definitions, [_name, lambda obj: obj.get("metadata", {}).get("creationTimestamp")]


def _crd_columns(
    columns: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[Callable[[dict[str, Any]], Cell]]]:
    definitions = [_definition({"name": "Name", "type": "string", "format": "name"}, NAME_DESCRIPTION)]
    cells: list[Callable[[dict[str, Any]], Cell]] = [_name]
    for column in columns:
        path = column["jsonPath"]
        description = (
            column.get("description") or f"Custom resource definition column (in JSONPath format): {path}"
        )
        definitions.append(_definition(column, description))
        cells.append(_crd_cell(compile_path(path), column.get("type", "string")))
    return definitions, cells


def _name(obj: Mapping[str, Any]) -> Cell:
    return obj.get("metadata", {}).get("name", "")


def _crd_cell(path: list[Step], column_type: str) -> Callable[[dict[str, Any]], Cell]:
    def cell(obj: dict[str, Any]) -> Cell:
        found = evaluate(path, obj)
        if not found or found[0] is None:
            return None
        value = found[0]
        if column_type == "string":
            return go_text(value)
        return _typed_cell(column_type, value)

    return cell


def _typed_cell(column_type: str, value: JSON) -> Cell:
    """cellForJSONValue: a JSON value of the column's type, or null."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if column_type == "integer" and is_number:
        return int(value)
    if column_type == "number" and is_number:
        return float(value)
    if column_type == "boolean" and isinstance(value, bool):
        return value
    if column_type == "date" and isinstance(value, str):
        # ConvertToHumanReadableDateType: the server sends the age ("5m"), not the timestamp.
        return since(value)
    return None


def go_text(value: JSON) -> str:
    """How kube's JSONPath printer writes a value: fmt.Fprint of the decoded JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return gotext.go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    return str(value)


# ---------------------------------------------------------------------------------------------------
# JSONPath subset

Step = tuple[str, Any]  # ("key", name) | ("index", n) | ("filter", (field path, operator, literal))

_TOKEN = re.compile(
    r"""\.(?P<key>[A-Za-z0-9_\-$]+(?:\\\.[A-Za-z0-9_\-$]+)*)
      | \[(?P<index>-?\d+)\]
      | \[\s*['"](?P<quoted>[^'"]*)['"]\s*\]
      | \[\?\(@(?P<field>(?:\.[A-Za-z0-9_\-]+)+)\s*(?P<op>==|!=)\s*(?P<literal>"[^"]*"|'[^']*'|-?\d+(?:\.\d+)?)\)\]
      | \[\*\]
    """,
    re.VERBOSE,
)


def compile_path(path: str) -> list[Step]:
    """Parse a printer-column JSONPath; raise ValueError on what this subset does not support."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Step] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        if match.group("key") is not None:
            steps.append(("key", match.group("key").replace("\\.", ".")))
        elif match.group("index") is not None:
            steps.append(("index", int(match.group("index"))))
        elif match.group("quoted") is not None:
            steps.append(("key", match.group("quoted")))
        elif match.group("field") is not None:
            literal_text = match.group("literal")
            literal: Any = literal_text[1:-1] if literal_text[0] in "'\"" else json.loads(literal_text)
            fields = match.group("field").lstrip(".").split(".")
            steps.append(("filter", (fields, match.group("op"), literal)))
        else:
            steps.append(("all", None))
        position = match.end()
    return steps


def evaluate(steps: list[Step], obj: JSON) -> list[JSON]:
    """All values `steps` reach in `obj`, in document order."""
    current = [obj]
    for kind, argument in steps:
        following: list[JSON] = []
        for value in current:
            if (kind == "key" and isinstance(value, dict) and argument in value) or (
                kind == "index" and isinstance(value, list) and -len(value) <= argument < len(value)
            ):
                following.append(value[argument])
            elif kind == "all" and isinstance(value, list):
                following.extend(value)
            elif kind == "all" and isinstance(value, dict):
                following.extend(value.values())
            elif kind == "filter" and isinstance(value, list):
                fields, operator, literal = argument
                for item in value:
                    found = evaluate([("key", field) for field in fields], item)
                    if found and ((found[0] == literal) == (operator == "==")):
                        following.append(item)
        current = following
    return current


# ---------------------------------------------------------------------------------------------------
# built-in printers (kube's pkg/printers/internalversion, the columns kubectl users look at)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: str | None) -> str:
    """translateTimestampSince: the age of an RFC 3339 timestamp, as kubectl shows it."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


def _age(obj: Mapping[str, Any]) -> Cell:
    return since(obj.get("metadata", {}).get("creationTimestamp"))


def _pod_ready(pod: Mapping[str, Any]) -> Cell:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for status in statuses if status.get("ready"))
    return f"{ready}/{total}"


def _pod_status(pod: Mapping[str, Any]) -> Cell:
    status = pod.get("status", {})
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            signal, code = terminated.get("signal"), terminated.get("exitCode", 0)
            reason = f"Signal:{signal}" if signal else f"ExitCode:{code}"
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def _pod_restarts(pod: Mapping[str, Any]) -> Cell:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return str(sum(int(status.get("restartCount", 0)) for status in statuses))


def _node_status(node: Mapping[str, Any]) -> Cell:
    conditions = {c.get("type"): c.get("status") for c in node.get("status", {}).get("conditions") or []}
    ready = conditions.get("Ready")
    state = "Ready" if ready == "True" else ("NotReady" if ready == "False" else "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    return state


def _node_roles(node: Mapping[str, Any]) -> Cell:
    roles = set()
    for key, value in (node.get("metadata", {}).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key != "node-role.kubernetes.io/":
            roles.add(key.removeprefix("node-role.kubernetes.io/"))
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(kind: str) -> Callable[[dict[str, Any]], Cell]:
    def cell(node: dict[str, Any]) -> Cell:
        for address in node.get("status", {}).get("addresses") or []:
            if address.get("type") == kind:
                return address.get("address", "<none>")
        return "<none>"

    return cell


def _field(*keys: str, default: Cell = "<none>") -> Callable[[dict[str, Any]], Cell]:
    def cell(obj: dict[str, Any]) -> Cell:
        value: Any = obj
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return default if value is None else value

    return cell


def _event_object(event: Mapping[str, Any]) -> Cell:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(event: Mapping[str, Any]) -> Cell:
    return since(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("series", {}).get("lastObservedTime")
        or event.get("metadata", {}).get("creationTimestamp")
    )


def _deployment_ready(deployment: Mapping[str, Any]) -> Cell:
    ready = deployment.get("status", {}).get("readyReplicas", 0)
    return f"{ready}/{deployment.get('spec', {}).get('replicas', 1)}"


def _containers(field: str) -> Callable[[dict[str, Any]], Cell]:
    def cell(deployment: dict[str, Any]) -> Cell:
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        return ",".join(str(container.get(field, "")) for container in containers)

    return cell


def _selector(deployment: Mapping[str, Any]) -> Cell:
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or "<none>"


def _service_ports(service: Mapping[str, Any]) -> Cell:
    ports = []
    for port in service.get("spec", {}).get("ports") or []:
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node_port}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _service_external_ip(service: Mapping[str, Any]) -> Cell:
    spec = service.get("spec", {})
    kind = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        external += [entry.get("ip") or entry.get("hostname", "") for entry in ingress]
        return ",".join(external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", "<none>"))
    return ",".join(external) or "<none>"


def _column(
    name: str, value: Callable[[dict[str, Any]], Cell], priority: int = 0, **extra: str
) -> dict[str, Any]:
    return {
        "name": name,
        "type": extra.get("type", "string"),
        "format": extra.get("format", ""),
        "description": extra.get("description", ""),
        "priority": priority,
        "value": value,
    }


_NAME = _column("Name", _name, format="name", description=NAME_DESCRIPTION)
_AGE = _column("Age", _age, description=CREATED_DESCRIPTION)

BUILTIN_COLUMNS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("", "pods"): [
        _NAME,
        _column("Ready", _pod_ready),
        _column("Status", _pod_status),
        _column("Restarts", _pod_restarts),
        _AGE,
        _column("IP", _field("status", "podIP"), 1),
        _column("Node", _field("spec", "nodeName"), 1),
        _column("Nominated Node", _field("status", "nominatedNodeName"), 1),
        _column("Readiness Gates", lambda pod: "<none>", 1),
    ],
    ("", "nodes"): [
        _NAME,
        _column("Status", _node_status),
        _column("Roles", _node_roles),
        _AGE,
        _column("Version", _field("status", "nodeInfo", "kubeletVersion", default="")),
        _column("Internal-IP", _node_address("InternalIP"), 1),
        _column("External-IP", _node_address("ExternalIP"), 1),
        _column("OS-Image", _field("status", "nodeInfo", "osImage", default="<unknown>"), 1),
        _column("Kernel-Version", _field("status", "nodeInfo", "kernelVersion", default="<unknown>"), 1),
        _column(
            "Container-Runtime",
            _field("status", "nodeInfo", "containerRuntimeVersion", default="<unknown>"),
            1,
        ),
    ],
    ("", "namespaces"): [_NAME, _column("Status", _field("status", "phase", default="Active")), _AGE],
    ("", "configmaps"): [
        _NAME,
        _column(
            "Data", lambda cm: len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), type="integer"
        ),
        _AGE,
    ],
    ("", "secrets"): [
        _NAME,
        _column("Type", _field("type", default="Opaque")),
        _column("Data", lambda secret: len(secret.get("data") or {}), type="integer"),
        _AGE,
    ],
    ("apps", "deployments"): [
        _NAME,
        _column("Ready", _deployment_ready),
        _column("Up-to-date", _field("status", "updatedReplicas", default=0), type="integer"),
        _column("Available", _field("status", "availableReplicas", default=0), type="integer"),
        _AGE,
        _column("Containers", _containers("name"), 1),
        _column("Images", _containers("image"), 1),
        _column("Selector", _selector, 1),
    ],
    ("", "events"): [
        _column("Last Seen", _event_last_seen),
        _column("Type", _field("type", default="")),
        _column("Reason", _field("reason", default="")),
        _column("Object", _event_object),
        _column("Subobject", _field("involvedObject", "fieldPath", default=""), 1),
        _column("Source", _field("source", "component", default=""), 1),
        _column("Message", _field("message", default="")),
        _column("First Seen", lambda event: since(event.get("firstTimestamp")), 1),
        _column("Count", _field("count", default=1), 1, type="integer"),
        _column("Name", _name, 1, format="name"),
    ],
}
BUILTIN_COLUMNS[("events.k8s.io", "events")] = BUILTIN_COLUMNS[("", "events")]
BUILTIN_COLUMNS[("", "services")] = [
    _NAME,
    _column("Type", _field("spec", "type", default="ClusterIP")),
    _column("Cluster-IP", _field("spec", "clusterIP", default="<none>")),
    _column("External-IP", _service_external_ip),
    _column("Port(s)", _service_ports),
    _AGE,
    _column(
        "Selector",
        lambda svc: (
            ",".join(f"{k}={v}" for k, v in sorted((svc.get("spec", {}).get("selector") or {}).items()))
            or "<none>"
        ),
        1,
    ),
]
BUILTIN_COLUMNS[("", "serviceaccounts")] = [
    _NAME,
    _column("Secrets", lambda account: len(account.get("secrets") or []), type="integer"),
    _AGE,
]
BUILTIN_COLUMNS[("coordination.k8s.io", "leases")] = [
    _NAME,
    _column("Holder", _field("spec", "holderIdentity", default="")),
    _AGE,
]
