"""Kubernetes RBAC authorization of API requests against the roles the chart renders.

Requests are (verb, group, resource, subresource, namespace[, name]) as kube's RBAC authorizer sees them: the
recording proxy (tests.chart.recording_proxy) produces them from the operator's real traffic, and the sandbox's
`api.calls` has the same fields. `denied` says which requests the chart's ClusterRole and Roles would refuse
for the operator's ServiceAccount, `unused` which granted permissions no request needed. A rule matches when
its apiGroups, resources (`resource/subresource` for a subresource) and verbs contain the request's, and its
resourceNames are empty or contain the object's name (a request without a name, as the sandbox records them,
matches a rule restricted by resourceNames, except a create: kube authorizes a create without the name, so
resourceNames never allow one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Request(Protocol):
    @property
    def verb(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def resource(self) -> str: ...
    @property
    def subresource(self) -> str: ...
    @property
    def namespace(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Call:
    """A request written by hand (same fields as the sandbox's record), optionally naming its object."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class Grant:
    """The rules of one role and where they apply: everywhere (ClusterRole) or in one namespace (Role)."""

    rules: tuple[dict[str, Any], ...]
    namespace: str | None  # None: cluster-wide


def grants_of(manifests: Sequence[dict[str, Any]], service_account: str, namespace: str) -> list[Grant]:
    """The roles bound to the ServiceAccount by the rendered bindings."""
    roles = {(m["kind"], m["metadata"]["name"]): m for m in manifests if m["kind"] in ("ClusterRole", "Role")}
    found = []
    for binding in manifests:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
        if subject not in binding["subjects"]:
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        found.append(Grant(tuple(role["rules"]), scope))
    return found


def _resource_name(request: Request) -> str:
    return f"{request.resource}/{request.subresource}" if request.subresource else request.resource


def rule_matches(rule: dict[str, Any], request: Request) -> bool:
    names = rule.get("resourceNames") or []
    name = getattr(request, "name", None)
    return (
        request.group in rule.get("apiGroups", [])
        and _resource_name(request) in rule.get("resources", [])
        and request.verb in rule.get("verbs", [])
        and (not names or (request.verb != "create" and (name is None or name in names)))
    )


def allowed(grants: Iterable[Grant], request: Request) -> bool:
    for grant in grants:
        if grant.namespace is not None and grant.namespace != request.namespace:
            continue
        if any(rule_matches(rule, request) for rule in grant.rules):
            return True
    return False


def denied(grants: Sequence[Grant], requests: Iterable[Request]) -> list[Request]:
    return sorted({r for r in requests if not allowed(grants, r)}, key=repr)


def unused(grants: Sequence[Grant], requests: Iterable[Request]) -> list[tuple[str, str, str]]:
    """(group, resource, verb) triples the roles grant that no request used."""
    used = {(r.group, _resource_name(r), r.verb) for r in requests}
    granted = {
        (group, resource, verb)
        for grant in grants
        for rule in grant.rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    return sorted(granted - used)
