"""Discovery documents: /version, /api, /apis, group and version resource lists, and aggregated discovery.

kubectl 1.35 first asks /api and /apis for the aggregated format (apidiscovery.k8s.io/v2
APIGroupDiscoveryList), which lists every resource in one answer; other clients (kopf, helm, the `kubernetes`
client) walk the legacy per-version lists. Both are built from the same registry.
"""

from __future__ import annotations

from typing import Any

from superpod_sandbox.apiserver.registry.resources import Registry, Resource

Object = dict[str, Any]
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_BETA = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

VERSION = {
    "major": "1",
    "minor": "35",
    "emulationMajor": "1",
    "emulationMinor": "35",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "34",
    "gitVersion": "v1.35.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_SUBRESOURCE_VERBS = ("get", "patch", "update")


def _subresources(resource: Resource, version: str) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(name, group, version, kind, verbs) of each subresource served for this version."""
    found: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    if resource.has_status(version):
        found.append(("status", resource.group, version, resource.kind, _SUBRESOURCE_VERBS))
    served = resource.version(version)
    if served is not None and served.scale:
        found.append(("scale", "autoscaling", "v1", "Scale", _SUBRESOURCE_VERBS))
    for extra in resource.extra_subresources:
        if extra == "binding":
            found.append(("binding", "", "v1", "Binding", ("create",)))
        elif extra == "eviction":
            found.append(("eviction", "policy", "v1", "Eviction", ("create",)))
        elif extra == "finalize":
            found.append(("finalize", "", "v1", "Namespace", ("update",)))
    return found


def api_versions(address: str) -> Object:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group(name: str, versions: list[str]) -> Object:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_groups(registry: Registry) -> Object:
    groups = [_group(name, versions) for name, versions in registry.groups().items() if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> Object | None:
    versions = registry.groups().get(name)
    if not versions or not name:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def resource_list(registry: Registry, group: str, version: str) -> Object | None:
    listed: list[Object] = []
    for resource in registry:
        if resource.group != group or resource.version(version) is None:
            continue
        entry: Object = {
            "name": resource.plural,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": list(resource.verbs),
        }
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        listed.append(entry)
        for sub, sub_group, sub_version, kind, verbs in _subresources(resource, version):
            sub_entry: Object = {
                "name": f"{resource.plural}/{sub}",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": kind,
                "verbs": list(verbs),
            }
            if sub_group != group or sub_version != version:
                sub_entry["group"], sub_entry["version"] = sub_group, sub_version
            listed.append(sub_entry)
    if not listed:
        return None
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": listed}


def _aggregated_resource(resource: Resource, version: str) -> Object:
    entry: Object = {
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": version, "kind": resource.kind},
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.singular,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    subs = [
        {"subresource": sub, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": list(verbs)}
        for sub, g, v, kind, verbs in _subresources(resource, version)
    ]
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, core: bool, api_version: str = "apidiscovery.k8s.io/v2") -> Object:
    """APIGroupDiscoveryList for /api (core=True) or /apis."""
    items: list[Object] = []
    for name, versions in registry.groups().items():
        if (name == "") != core:
            continue
        version_entries = []
        for version in versions:
            served = [
                _aggregated_resource(r, version) for r in registry if r.group == name and r.version(version)
            ]
            version_entries.append({"version": version, "resources": served, "freshness": "Current"})
        items.append({"metadata": {"name": name} if name else {}, "versions": version_entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def wants_aggregated(accept: str) -> str | None:
    """The aggregated content type the client accepts, if any (v2 preferred)."""
    for part in accept.split(","):
        media = part.strip().replace(" ", "")
        params = set(media.split(";")[1:])
        if "as=APIGroupDiscoveryList" in params and "g=apidiscovery.k8s.io" in params:
            if "v=v2" in params:
                return AGGREGATED
            if "v=v2beta1" in params:
                return AGGREGATED_BETA
    return None
