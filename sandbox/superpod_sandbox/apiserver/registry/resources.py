"""What the sandbox serves: one `Resource` per (group, plural), built-in kinds plus those CRDs add.

The registry answers the three questions every request asks (which resource does this path name, which
versions are served, how is it listed in discovery) with dictionary lookups, so a request's cost never depends
on how many kinds exist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
GroupResource = tuple[str, str]  # (group, plural); "" is the core group


@dataclasses.dataclass(frozen=True)
class Version:
    """What one served version of a resource carries beyond the group-wide names."""

    name: str
    status: bool = False  # the status subresource is served (writes to the main resource ignore status)
    scale: bool = False
    # the scale subresource's specReplicasPath, statusReplicasPath and labelSelectorPath ("" for none)
    scale_paths: tuple[str, str, str] = (".spec.replicas", ".status.replicas", "")
    printer_columns: tuple[dict[str, Any], ...] | None = None  # a CRD's additionalPrinterColumns
    schema: dict[str, Any] | None = None  # a CRD version's openAPIV3Schema
    deprecation: str | None = None  # the Warning every request to a deprecated CRD version gets


@dataclasses.dataclass(frozen=True)
class Resource:
    """A kind as kube-apiserver serves it."""

    group: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    versions: tuple[Version, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    extra_subresources: tuple[str, ...] = ()  # e.g. pods/binding, namespaces/finalize
    generation: bool = False  # metadata.generation counts spec changes
    custom: bool = False  # served from a CustomResourceDefinition
    returns_deleted_object: bool = False  # DELETE answers with the object rather than a Status
    create_on_update: bool = False  # PUT of a missing object creates it
    verbs: tuple[str, ...] = ALL_VERBS
    stored_as: GroupResource | None = None  # another resource's storage, seen through this API

    @property
    def key(self) -> GroupResource:
        return (self.group, self.plural)

    @property
    def storage_key(self) -> GroupResource:
        """Where the objects live in the store (events.k8s.io Events live with core Events)."""
        return self.stored_as or (self.group, self.plural)

    @property
    def storage_version(self) -> str:
        return self.versions[0].name

    def version(self, name: str) -> Version | None:
        for version in self.versions:
            if version.name == name:
                return version
        return None

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def has_status(self, version: str) -> bool:
        served = self.version(version)
        return served is not None and served.status


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *,
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    status: bool = False,
    extra: tuple[str, ...] = (),
    generation: bool = False,
    returns_deleted: bool = False,
    create_on_update: bool = False,
    verbs: tuple[str, ...] = ALL_VERBS,
    scale: bool = False,
) -> Resource:
    return Resource(
        group=group,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        versions=(Version(version, status=status, scale=scale),),
        short_names=short,
        categories=categories,
        extra_subresources=extra,
        generation=generation,
        returns_deleted_object=returns_deleted,
        create_on_update=create_on_update,
        verbs=verbs,
    )


NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")

BUILTINS: tuple[Resource, ...] = (
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        short=("ns",),
        status=True,
        extra=("finalize",),
        returns_deleted=True,
        verbs=NAMESPACE_VERBS,
    ),
    _builtin("", "v1", "nodes", "Node", False, short=("no",), status=True),
    _builtin(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short=("po",),
        categories=("all",),
        status=True,
        extra=("binding", "eviction"),
        returns_deleted=True,
    ),
    _builtin("", "v1", "configmaps", "ConfigMap", True, short=("cm",)),
    _builtin("", "v1", "secrets", "Secret", True),
    _builtin(
        "",
        "v1",
        "services",
        "Service",
        True,
        short=("svc",),
        categories=("all",),
        status=True,
        returns_deleted=True,
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, short=("sa",), extra=("token",)),
    _builtin("", "v1", "endpoints", "Endpoints", True, short=("ep",), create_on_update=True),
    _builtin("", "v1", "events", "Event", True, short=("ev",), create_on_update=True),
    dataclasses.replace(
        _builtin("events.k8s.io", "v1", "events", "Event", True, short=("ev",), create_on_update=True),
        stored_as=("", "events"),
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", True, create_on_update=True),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short=("deploy",),
        categories=("all",),
        status=True,
        generation=True,
        scale=True,
    ),
    _builtin(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        short=("rs",),
        categories=("all",),
        status=True,
        generation=True,
        scale=True,
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, create_on_update=True),
    _builtin(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        create_on_update=True,
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True, create_on_update=True),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, create_on_update=True),
    _builtin(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        short=("pdb",),
        status=True,
        generation=True,
    ),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short=("crd", "crds"),
        categories=("api-extensions",),
        status=True,
        generation=True,
        returns_deleted=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
        categories=("api-extensions",),
        generation=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
        categories=("api-extensions",),
        generation=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        False,
        categories=("api-extensions",),
        status=True,
        generation=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        False,
        categories=("api-extensions",),
        generation=True,
    ),
    # admissionregistration.k8s.io/v1 since Kubernetes 1.36 (on by default there)
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicies",
        "MutatingAdmissionPolicy",
        False,
        categories=("api-extensions",),
        generation=True,
    ),
    _builtin(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicybindings",
        "MutatingAdmissionPolicyBinding",
        False,
        categories=("api-extensions",),
        generation=True,
    ),
)

# Workloads, storage, networking and cluster-wide kinds that charts and users' jobs create; served with the
# kube metadata (short names, categories, subresources) kubectl's discovery shows for them.
WORKLOADS: tuple[Resource, ...] = (
    _builtin("batch", "v1", "jobs", "Job", True, categories=("all",), status=True, generation=True),
    _builtin(
        "batch",
        "v1",
        "cronjobs",
        "CronJob",
        True,
        short=("cj",),
        categories=("all",),
        status=True,
        generation=True,
    ),
    _builtin(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        short=("ds",),
        categories=("all",),
        status=True,
        generation=True,
    ),
    _builtin(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        short=("sts",),
        categories=("all",),
        status=True,
        generation=True,
        scale=True,
    ),
    _builtin("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _builtin(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        True,
        short=("rc",),
        categories=("all",),
        status=True,
        generation=True,
        scale=True,
    ),
    _builtin("", "v1", "podtemplates", "PodTemplate", True),
    _builtin("", "v1", "persistentvolumes", "PersistentVolume", False, short=("pv",), status=True),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short=("pvc",), status=True),
    _builtin("", "v1", "resourcequotas", "ResourceQuota", True, short=("quota",), status=True),
    _builtin("", "v1", "limitranges", "LimitRange", True, short=("limits",)),
    _builtin(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        short=("hpa",),
        categories=("all",),
        status=True,
    ),
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _builtin(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        short=("netpol",),
        generation=True,
    ),
    _builtin(
        "networking.k8s.io", "v1", "ingresses", "Ingress", True, short=("ing",), status=True, generation=True
    ),
    _builtin("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _builtin("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short=("pc",)),
    _builtin("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    _builtin("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short=("sc",)),
    _builtin("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _builtin("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    _builtin("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, status=True),
    _builtin("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", True),
    _builtin(
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        False,
        categories=("api-extensions",),
        status=True,
    ),
)
BUILTINS = BUILTINS + WORKLOADS

REVIEWS = (  # answered from the request's identity (identity/reviews.py), never stored
    _builtin("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",)),
    _builtin(
        "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=("create",)
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "localsubjectaccessreviews",
        "LocalSubjectAccessReview",
        True,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        verbs=("create",),
    ),
)
REVIEW_KEYS = {resource.key for resource in REVIEWS}
BUILTINS = BUILTINS + REVIEWS
CRDS: GroupResource = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES: GroupResource = ("", "namespaces")


class Registry:
    """The served resources, by (group, plural) and by (group, version, plural)."""

    def __init__(self) -> None:
        self._by_key: dict[GroupResource, Resource] = {}
        self.generation = 0  # bumped on every change, so discovery answers can be cached
        for resource in BUILTINS:
            self.add(resource)

    def add(self, resource: Resource) -> None:
        self._by_key[resource.key] = resource
        self.generation += 1

    def remove(self, key: GroupResource) -> None:
        if self._by_key.pop(key, None) is not None:
            self.generation += 1

    def get(self, key: GroupResource) -> Resource | None:
        return self._by_key.get(key)

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        resource = self._by_key.get((group, plural))
        if resource is None or resource.version(version) is None:
            return None
        return resource

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._by_key.values())

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, preferred first, in registration order (core group as "")."""
        groups: dict[str, list[str]] = {}
        for resource in self._by_key.values():
            versions = groups.setdefault(resource.group, [])
            for version in resource.versions:
                if version.name not in versions:
                    versions.append(version.name)
        for versions in groups.values():
            versions.sort(key=version_priority)
        return groups


def version_priority(version: str) -> tuple[int, int, int, str]:
    """kube-aware version order: GA before beta before alpha, higher numbers first (v1 < v2 < v1beta1 ...)."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if match is None:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, version)
