"""Unknown fields of built-in kinds, found as kube's typed decoding finds them.

kube-apiserver decodes a built-in object into its Go struct: fields the struct lacks are dropped, and with
`fieldValidation=Strict` (kubectl's default) reported as `strict decoding error: unknown field "spec.x"`. The
field lists come from the official `kubernetes` client's models (`openapi_types` and `attribute_map`,
generated from the same OpenAPI as kube). Importing that client takes a second or more, so the lists are
extracted once into `builtin_fields.json` (`python -m superpod_sandbox.apiserver.registry.typed` rewrites it; a test checks it
against the installed client).
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superpod_sandbox.apiserver.registry.resources import GroupResource

Object = dict[str, Any]
MODELS: dict[GroupResource, str] = {
    ("", "namespaces"): "V1Namespace",
    ("", "nodes"): "V1Node",
    ("", "pods"): "V1Pod",
    ("", "configmaps"): "V1ConfigMap",
    ("", "secrets"): "V1Secret",
    ("", "services"): "V1Service",
    ("", "serviceaccounts"): "V1ServiceAccount",
    ("", "endpoints"): "V1Endpoints",
    ("", "events"): "CoreV1Event",
    ("events.k8s.io", "events"): "EventsV1Event",
    ("coordination.k8s.io", "leases"): "V1Lease",
    ("apps", "deployments"): "V1Deployment",
    ("apps", "replicasets"): "V1ReplicaSet",
    ("rbac.authorization.k8s.io", "clusterroles"): "V1ClusterRole",
    ("rbac.authorization.k8s.io", "clusterrolebindings"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io", "roles"): "V1Role",
    ("rbac.authorization.k8s.io", "rolebindings"): "V1RoleBinding",
    ("policy", "poddisruptionbudgets"): "V1PodDisruptionBudget",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "V1CustomResourceDefinition",
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): "V1MutatingWebhookConfiguration",
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): "V1ValidatingWebhookConfiguration",
    ("batch", "jobs"): "V1Job",
    ("batch", "cronjobs"): "V1CronJob",
    ("apps", "daemonsets"): "V1DaemonSet",
    ("apps", "statefulsets"): "V1StatefulSet",
    ("apps", "controllerrevisions"): "V1ControllerRevision",
    ("", "replicationcontrollers"): "V1ReplicationController",
    ("", "podtemplates"): "V1PodTemplate",
    ("", "persistentvolumes"): "V1PersistentVolume",
    ("", "persistentvolumeclaims"): "V1PersistentVolumeClaim",
    ("", "resourcequotas"): "V1ResourceQuota",
    ("", "limitranges"): "V1LimitRange",
    ("autoscaling", "horizontalpodautoscalers"): "V2HorizontalPodAutoscaler",
    ("discovery.k8s.io", "endpointslices"): "V1EndpointSlice",
    ("networking.k8s.io", "networkpolicies"): "V1NetworkPolicy",
    ("networking.k8s.io", "ingresses"): "V1Ingress",
    ("networking.k8s.io", "ingressclasses"): "V1IngressClass",
    ("scheduling.k8s.io", "priorityclasses"): "V1PriorityClass",
    ("node.k8s.io", "runtimeclasses"): "V1RuntimeClass",
    ("storage.k8s.io", "storageclasses"): "V1StorageClass",
    ("storage.k8s.io", "csidrivers"): "V1CSIDriver",
    ("storage.k8s.io", "csinodes"): "V1CSINode",
    ("storage.k8s.io", "volumeattachments"): "V1VolumeAttachment",
    ("storage.k8s.io", "csistoragecapacities"): "V1CSIStorageCapacity",
    ("apiregistration.k8s.io", "apiservices"): "V1APIService",
}
_SCALARS = {"str", "int", "float", "bool", "bytes", "datetime", "date", "object"}


TABLE = Path(__file__).with_name("builtin_fields.json")


@functools.cache
def _table() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(TABLE.read_text())
    return loaded


def _fields(model: str) -> dict[str, str] | None:
    """JSON field name -> the client's type string (`V1PodSpec`, `List[V1Container]`, `Dict[str, str]`)."""
    return _table().get(model)


def _model_type(kind: str) -> str | None:
    """The model a type string holds (`V1Container` in `List[V1Container]`), None for scalars."""
    while kind.startswith(("List[", "Dict[")):
        kind = kind[5:-1] if kind.startswith("List[") else kind[kind.index(",") + 1 : -1].strip()
    return None if kind in _SCALARS else kind


def generate() -> dict[str, dict[str, str]]:
    """The field table of every model reachable from MODELS, read from the installed `kubernetes` client."""
    client = importlib.import_module("kubernetes.client")
    table: dict[str, dict[str, str]] = {}
    pending = sorted(set(MODELS.values()))
    while pending:
        model = pending.pop()
        if model in table:
            continue
        cls = getattr(client, model)
        names: dict[str, str] = cls.attribute_map
        table[model] = {names[attribute]: kind for attribute, kind in sorted(cls.openapi_types.items())}
        pending += [m for kind in table[model].values() if (m := _model_type(kind)) and m not in table]
    return dict(sorted(table.items()))


def render(table: dict[str, dict[str, str]]) -> str:
    return json.dumps(table, indent=0, sort_keys=True) + "\n"


if __name__ == "__main__":
    TABLE.write_text(render(generate()))
    print(f"wrote {TABLE}")


class Mismatch(Exception):
    """A value of the wrong JSON type, which kube's decoder refuses whatever fieldValidation says."""

    def __init__(self, struct: str, path: str, found: str, wanted: str) -> None:
        super().__init__(
            f"json: cannot unmarshal {found} into Go struct field {struct}.{path} of type {wanted}"
        )


_GO_TYPES = {
    "str": "string",
    "int": "int32",
    "float": "float64",
    "bool": "bool",
    "bytes": "[]uint8",
    "datetime": "string",
    "date": "string",
}
_JSON_CHECKS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "bytes": (str,),
    "datetime": (str,),
    "date": (str,),
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def prune(obj: Object, resource: GroupResource) -> list[str]:
    """Drop, in place, the fields the kind does not have; return their paths (`spec.replicaz`).

    Raises `Mismatch` for a scalar of the wrong type (a number for a string field, a string for a number...).
    Map values are not type-checked: quantities (`cpu: 1`) are typed as strings in the client but kube
    accepts numbers for them.
    """
    model = MODELS.get(resource)
    dropped: list[str] = []
    if model is not None and not _clean(obj, model):  # most writes: one walk that builds no paths
        _prune_model(obj, model, "", dropped)
    return dropped


_SCALAR, _LIST, _MAP, _MODEL = range(4)


@functools.cache
def _shape(kind: str) -> tuple[int, Any]:
    """A type string, parsed once: (_SCALAR, (accepted types or None, numeric)), (_LIST or _MAP, inner type
    string), or (_MODEL, its fields or None)."""
    if kind in _SCALARS:
        return _SCALAR, (_JSON_CHECKS.get(kind), kind in ("int", "float"))
    if kind.startswith("List["):
        return _LIST, kind[5:-1]
    if kind.startswith("Dict["):
        return _MAP, kind[kind.index(",") + 1 : -1].strip()
    return _MODEL, _fields(kind)


def _clean(value: Any, kind: str, in_map: bool = False) -> bool:
    """Whether `_prune_value` would find nothing to drop or refuse: the same rules, without the paths."""
    return _checker(kind)(value, in_map)


Check = Callable[[Any, bool], bool]  # (value, inside a map) -> clean


@functools.cache
def _checker(kind: str) -> Check:
    """`_clean` of one type string, compiled once: a walk of an object calls one closure per value instead of
    parsing its type at every step."""
    shape, detail = _shape(kind)
    if shape == _SCALAR:
        accepted, numeric = detail
        if accepted is None:
            return lambda value, in_map: True
        if numeric:
            return lambda value, in_map: (
                value is None or in_map or (isinstance(value, accepted) and not isinstance(value, bool))
            )
        return lambda value, in_map: value is None or in_map or isinstance(value, accepted)
    if shape == _LIST:

        def clean_list(value: Any, in_map: bool) -> bool:
            if value is None:
                return True
            if not isinstance(value, list):
                return False
            check = _checker(detail)
            return all(check(item, in_map) for item in value)

        return clean_list
    if shape == _MAP:
        if _shape(detail)[0] == _SCALAR:  # map values of a scalar type are not type-checked (`_prune_value`)
            return lambda value, in_map: value is None or isinstance(value, dict)

        def clean_map(value: Any, in_map: bool) -> bool:
            if value is None:
                return True
            if not isinstance(value, dict):
                return False
            check = _checker(detail)
            return all(check(item, True) for item in value.values())

        return clean_map
    if detail is None:
        return lambda value, in_map: value is None or isinstance(value, dict)
    fields: dict[str, str] = detail
    checks: dict[str, Check] = {}  # filled as fields are met (models refer to themselves)

    def clean_model(value: Any, in_map: bool) -> bool:
        if value is None:
            return True
        if not isinstance(value, dict):
            return False
        for key, item in value.items():
            check = checks.get(key)
            if check is None:
                inner = fields.get(key)
                if inner is None:
                    return False
                check = checks[key] = _checker(inner)
            if item is not None and not check(item, False):
                return False
        return True

    return clean_model


def _struct(model: str) -> str:
    """Go's struct name for a client model: V1DeploymentSpec -> DeploymentSpec, CoreV1Event -> Event."""
    for prefix in ("CoreV1", "EventsV1", "RbacV1", "DiscoveryV1", "StorageV1", "V1", "V2"):
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


def _prune_model(obj: Object, model: str, path: str, dropped: list[str], go_path: str = "") -> None:
    fields = _fields(model)
    if fields is None:
        return
    for key in list(obj):
        child = f"{path}.{key}" if path else key
        go_child = f"{go_path}.{key}" if go_path else key
        kind = fields.get(key)
        if kind is None:
            dropped.append(child)
            del obj[key]
        else:
            _prune_value(obj[key], kind, child, dropped, model, go_child)


def _prune_value(
    value: Any,
    kind: str,
    path: str,
    dropped: list[str],
    model: str = "",
    go_path: str = "",
    in_map: bool = False,
) -> None:
    if value is None:
        return  # JSON null leaves Go's zero value
    if kind in _SCALARS:
        accepted = _JSON_CHECKS.get(kind)
        wrong_bool = kind in ("int", "float") and isinstance(value, bool)
        if accepted is not None and not in_map and (not isinstance(value, accepted) or wrong_bool):
            raise Mismatch(_struct(model), go_path, _json_type(value), _GO_TYPES[kind])
        return
    if kind.startswith("List[") and isinstance(value, list):
        inner = kind[5:-1]
        for index, item in enumerate(value):
            _prune_value(item, inner, f"{path}[{index}]", dropped, model, go_path, in_map)
    elif kind.startswith("Dict[") and isinstance(value, dict):
        inner = kind[kind.index(",") + 1 : -1].strip()
        for key, item in value.items():
            _prune_value(item, inner, f"{path}.{key}", dropped, model, go_path, in_map=True)
    elif isinstance(value, dict) and not kind.startswith(("List[", "Dict[")):
        _prune_model(value, kind, path, dropped, go_path)
    else:
        raise Mismatch(_struct(model), go_path, _json_type(value), _go_name(kind))


def _go_name(kind: str) -> str:
    """How Go's decoder names the wanted type: int32, []v1.Container, map[string]string, v1.LabelSelector."""
    if kind.startswith("List["):
        return "[]" + _go_name(kind[5:-1])
    if kind.startswith("Dict["):
        return "map[string]" + _go_name(kind[kind.index(",") + 1 : -1].strip())
    if kind in _GO_TYPES:
        return _GO_TYPES[kind]
    return "interface {}" if kind == "object" else f"v1.{_struct(kind)}"
