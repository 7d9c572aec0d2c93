"""`helm template` of the chart, for the default values and the supported combinations, passes
`kubernetes-validate --strict` for every supported Kubernetes version; the custom resources kubernetes-validate
has no schema for pass their own minimal shape checks."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.chart import cases, custom_resources, kubernetes_schemas
from tests.chart import helm as chart_helm

VERSIONS = cases.supported_kubernetes_versions()


def _validate(manifest: dict[str, Any], kubernetes_version: str, crds: list[dict[str, Any]]) -> str:
    """'kubernetes' or 'shape': which check the manifest passed; raises when it fails one."""
    try:
        kubernetes_schemas.validate(manifest, kubernetes_version)
        return "kubernetes"
    except kubernetes_schemas.NoSchema:
        custom_resources.check(manifest, crds)
        return "shape"


@pytest.mark.parametrize("kubernetes_version", VERSIONS)
@pytest.mark.parametrize("case", cases.VALUE_SETS)
def test_every_rendered_manifest_is_valid(rendered, case, kubernetes_version):
    manifests = rendered(case)
    crds = chart_helm.find(manifests, "CustomResourceDefinition")
    checked = {}
    for manifest in manifests:
        name = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            checked[name] = _validate(manifest, kubernetes_version, crds)
        except jsonschema.ValidationError as error:
            path = ".".join(str(part) for part in error.absolute_path)
            pytest.fail(f"{name} is invalid for Kubernetes {kubernetes_version} at {path}: {error.message}")
    assert checked["Deployment/superpod-superpod-operator"] == "kubernetes"
    assert checked["CustomResourceDefinition/superpodpartitions.superpod.dev"] == "kubernetes"
    assert checked["ClusterRole/superpod-superpod-operator"] == "kubernetes"


def _with_misspelled_replicas(deployment: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    return broken


@pytest.mark.parametrize("kubernetes_version", [VERSIONS[0], VERSIONS[-1]])
def test_the_cached_validation_agrees_with_kubernetes_validate(rendered, kubernetes_version):
    deployment = chart_helm.one(rendered("every optional feature is on"), "Deployment")
    assert kubernetes_validate.validate(deployment, kubernetes_version, strict=True)
    kubernetes_schemas.validate(deployment, kubernetes_version)
    broken = _with_misspelled_replicas(deployment)
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, kubernetes_version, strict=True)
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        kubernetes_schemas.validate(broken, kubernetes_version)


def test_the_shape_check_rejects_an_unexpected_servicemonitor_field(rendered):
    monitor = copy.deepcopy(chart_helm.one(rendered("monitoring is on"), "ServiceMonitor"))
    monitor["spec"]["endpoint"] = []
    with pytest.raises(jsonschema.ValidationError, match="endpoint"):
        custom_resources.check(monitor, [])


def test_the_peering_object_is_checked_against_the_kopf_crd_the_chart_ships(rendered):
    manifests = rendered("replicas with kopf peering")
    peering = copy.deepcopy(chart_helm.one(manifests, "ClusterKopfPeering"))
    crds = chart_helm.find(manifests, "CustomResourceDefinition")
    custom_resources.check(peering, crds)
    peering["status"] = "not an object"
    with pytest.raises(jsonschema.ValidationError):
        custom_resources.check(peering, crds)


@pytest.mark.parametrize("kubernetes_version", VERSIONS)
def test_the_chart_installs_on_every_supported_kubernetes_version(helm, kubernetes_version):
    assert helm.template(kube_version=f"{kubernetes_version}.0")


def test_the_chart_refuses_kubernetes_older_than_1_31(helm):
    with pytest.raises(chart_helm.RenderError, match="kubeVersion"):
        helm.template(kube_version="1.30.0")
