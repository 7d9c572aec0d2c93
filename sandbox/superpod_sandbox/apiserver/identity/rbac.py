"""Authorization: kube's RBAC authorizer over the Roles, ClusterRoles and their bindings in the store.

A request is allowed when a rule of a role bound to its user (User subject), one of its groups (Group) or its
ServiceAccount (`system:serviceaccount:<ns>:<name>`) matches it: a ClusterRoleBinding grants everywhere, a
RoleBinding in the request's namespace only. Rules match as kube's `rbac/validation` does (verbs, apiGroups,
resources with `*`, `<resource>/<subresource>` and `*/<subresource>`, resourceNames, nonResourceURLs with a
trailing `*`). A ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its selectors
match (kube's aggregation controller writes them into the role; here they are read when asked).

The bootstrap roles kube creates at start (cluster-admin, admin/edit/view as aggregated roles,
system:discovery, system:basic-user, system:public-info-viewer) and their bindings (system:masters is
cluster-admin; every authenticated user may read discovery and review itself; anyone may read /healthz and
/version) apply when no object of that name is stored; they are not listed by the API.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from superpod_sandbox.apiserver.admission.dispatcher import selector_matches
from superpod_sandbox.apiserver.identity.authn import Identity
from superpod_sandbox.apiserver.storage import store

RBAC = "rbac.authorization.k8s.io"
CLUSTER_ROLES = (RBAC, "clusterroles")
CLUSTER_ROLE_BINDINGS = (RBAC, "clusterrolebindings")
ROLES = (RBAC, "roles")
ROLE_BINDINGS = (RBAC, "rolebindings")
Rule = dict[str, Any]

_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                   "/readyz", "/version", "/version/"]  # fmt: skip
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _aggregated(label: str) -> dict[str, Any]:
    return {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]}


BOOTSTRAP_ROLES: dict[str, dict[str, Any]] = {
    "cluster-admin": {
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]
    },
    "admin": {"aggregationRule": _aggregated(f"{RBAC}/aggregate-to-admin")},
    "edit": {
        "aggregationRule": _aggregated(f"{RBAC}/aggregate-to-edit"),
        "metadata": {"labels": {f"{RBAC}/aggregate-to-admin": "true"}},
    },
    "view": {
        "aggregationRule": _aggregated(f"{RBAC}/aggregate-to-view"),
        "metadata": {"labels": {f"{RBAC}/aggregate-to-edit": "true"}},
    },
    "system:discovery": {"rules": [{"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]}]},
    "system:public-info-viewer": {"rules": [{"nonResourceURLs": _PUBLIC_URLS, "verbs": ["get"]}]},
    "system:basic-user": {
        "rules": [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ]
    },
}
_GROUP = "Group"
BOOTSTRAP_BINDINGS: dict[str, tuple[str, list[dict[str, str]]]] = {
    "cluster-admin": ("cluster-admin", [{"kind": _GROUP, "name": "system:masters"}]),
    "system:discovery": ("system:discovery", [{"kind": _GROUP, "name": "system:authenticated"}]),
    "system:basic-user": ("system:basic-user", [{"kind": _GROUP, "name": "system:authenticated"}]),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        [
            {"kind": _GROUP, "name": "system:authenticated"},
            {"kind": _GROUP, "name": "system:unauthenticated"},
        ],
    ),
}


@dataclasses.dataclass(frozen=True)
class Attributes:
    """What a request does, as the authorizer sees it (kube's authorizer.Attributes)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests (/metrics, /version, ...)

    @property
    def resource_request(self) -> bool:
        return not self.path


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def forbidden_message(identity: Identity, attributes: Attributes) -> str:
    """kube's `forbiddenMessage` (the part after `... is forbidden: `)."""
    user = identity.name
    if not attributes.resource_request:
        return f'User "{user}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    where = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return f'User "{user}" cannot {attributes.verb} resource "{resource}" in API group "{attributes.group}" {where}'


class Authorizer:
    def __init__(self, objects: store.Store) -> None:
        self._store = objects

    def authorize(self, identity: Identity, attributes: Attributes) -> Decision:
        if "system:masters" in identity.groups:
            return Decision(True, "")  # kube's superuser short-circuit, before RBAC
        for binding, role_name, rules in self._grants(identity, attributes.namespace):
            if any(rule_allows(rule, attributes) for rule in rules):
                return Decision(True, _allowed_by(binding, role_name, identity))
        return Decision(False, "")

    def rules(self, identity: Identity, namespace: str) -> list[Rule]:
        """Every rule that applies to `identity` in `namespace` (SelfSubjectRulesReview)."""
        found: list[Rule] = []
        for _binding, _role, rules in self._grants(identity, namespace):
            for rule in rules:
                if rule not in found:
                    found.append(rule)
        return found

    # bindings ----------------------------------------------------------------------------------------

    def _grants(self, identity: Identity, namespace: str) -> Iterator[tuple[str, str, list[Rule]]]:
        """(binding description, role description, rules) for each binding naming `identity`."""
        stored_cluster_bindings = {
            b["metadata"]["name"]: b for b in self._store.objects(CLUSTER_ROLE_BINDINGS, None)
        }
        for name, (role, subjects) in BOOTSTRAP_BINDINGS.items():
            if name not in stored_cluster_bindings and any(_names(s, identity, "") for s in subjects):
                yield f'ClusterRoleBinding "{name}"', f'ClusterRole "{role}"', self._cluster_role_rules(role)
        for binding in stored_cluster_bindings.values():
            ref = binding.get("roleRef") or {}
            if ref.get("kind") != "ClusterRole" or not _binds(binding, identity, ""):
                continue
            name = binding["metadata"]["name"]
            yield (
                f'ClusterRoleBinding "{name}"',
                f'ClusterRole "{ref.get("name", "")}"',
                self._cluster_role_rules(ref.get("name", "")),
            )
        if not namespace:
            return
        for binding in self._store.objects(ROLE_BINDINGS, namespace):
            if not _binds(binding, identity, namespace):
                continue
            ref = binding.get("roleRef") or {}
            kind, role_name = ref.get("kind"), ref.get("name", "")
            if kind == "ClusterRole":
                rules = self._cluster_role_rules(role_name)
            elif kind == "Role":
                found = self._store.get(ROLES, namespace, role_name)
                rules = list((found or {}).get("rules") or [])
            else:
                continue
            yield (
                f'RoleBinding "{binding["metadata"]["name"]}/{namespace}"',
                f'{kind} "{role_name}"',
                rules,
            )

    # roles -------------------------------------------------------------------------------------------

    def _cluster_role(self, name: str) -> Mapping[str, Any] | None:
        stored = self._store.get(CLUSTER_ROLES, "", name)
        return stored if stored is not None else BOOTSTRAP_ROLES.get(name)

    def _cluster_roles(self) -> dict[str, Mapping[str, Any]]:
        roles: dict[str, Mapping[str, Any]] = dict(BOOTSTRAP_ROLES)
        roles.update({role["metadata"]["name"]: role for role in self._store.objects(CLUSTER_ROLES, None)})
        return roles

    def _cluster_role_rules(self, name: str, seen: frozenset[str] = frozenset()) -> list[Rule]:
        role = self._cluster_role(name)
        if role is None:
            return []
        rules = list(role.get("rules") or [])
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return rules
        selectors = aggregation.get("clusterRoleSelectors") or []
        seen = seen | {name}
        for other_name, other in self._cluster_roles().items():
            if other_name in seen:
                continue
            labels = (other.get("metadata") or {}).get("labels") or {}
            if any(selector_matches(selector, labels) for selector in selectors):
                for rule in self._cluster_role_rules(other_name, seen):
                    if rule not in rules:
                        rules.append(rule)
        return rules


def _allowed_by(binding: str, role: str, identity: Identity) -> str:
    return f'RBAC: allowed by {binding} of {role} to User "{identity.name}"'


def _binds(binding: Mapping[str, Any], identity: Identity, namespace: str) -> bool:
    return any(_names(subject, identity, namespace) for subject in binding.get("subjects") or [])


def _names(subject: Mapping[str, Any], identity: Identity, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(name) and name == identity.name
    if kind == "Group":
        return name in identity.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return identity.name == f"system:serviceaccount:{namespace}:{name}"
    return False


def rule_allows(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    """kube's RuleAllows."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    if not attributes.resource_request:
        return _url_matches(rule.get("nonResourceURLs") or [], attributes.path)
    if rule.get("nonResourceURLs") and not rule.get("resources"):
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attributes.group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], attributes.resource, attributes.subresource):
        return False
    names = rule.get("resourceNames") or []
    return not names or attributes.name in names


def _resource_matches(resources: list[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for listed in resources:
        if listed in ("*", combined):
            return True
        if subresource and listed == f"*/{subresource}":
            return True
    return False


def _url_matches(urls: list[str], path: str) -> bool:
    for url in urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False
