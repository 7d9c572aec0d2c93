"""Per-kind rules: QoS classes, Secret stringData, immutable data, the scale view of an object."""

from __future__ import annotations

import pytest
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry import resources, strategies
from superpod_sandbox.apiserver.subresources import scaling

CONFIGMAPS = next(r for r in resources.BUILTINS if r.key == ("", "configmaps"))
DEPLOYMENTS = next(r for r in resources.BUILTINS if r.key == ("apps", "deployments"))


@pytest.mark.parametrize(
    ("case", "container_resources", "qos"),
    [
        ("no requests or limits is best effort", {}, "BestEffort"),
        (
            "requests equal to limits is guaranteed",
            {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
            "Guaranteed",
        ),
        ("limits alone are guaranteed", {"limits": {"cpu": "1"}}, "Guaranteed"),
        (
            "requests below limits are burstable",
            {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
            "Burstable",
        ),
    ],
)
def test_qos_class(case, container_resources, qos):
    pod = {"spec": {"containers": [{"name": "c", "resources": container_resources}]}}
    assert strategies.qos_class(pod) == qos


def test_string_data_is_folded_into_base64_data():
    secret = {"data": {"a": "eA=="}, "stringData": {"b": "hello"}}
    strategies.fold_string_data(secret)
    assert secret == {"data": {"a": "eA==", "b": "aGVsbG8="}}


def test_an_immutable_configmap_refuses_data_changes_but_not_labels():
    old = {"metadata": {"name": "c"}, "immutable": True, "data": {"a": "1"}}
    strategies.check_immutable(CONFIGMAPS, old, {**old, "metadata": {"name": "c", "labels": {"x": "y"}}})
    with pytest.raises(errors.ApiError) as caught:
        strategies.check_immutable(CONFIGMAPS, old, {**old, "data": {"a": "2"}})
    assert caught.value.code == 422


def test_the_scale_view_reads_replicas_and_renders_the_selector():
    deployment = {
        "metadata": {"name": "d", "namespace": "n", "resourceVersion": "7"},
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "d"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
            },
        },
        "status": {"replicas": 2},
    }
    version = DEPLOYMENTS.versions[0]
    scale = scaling.scale_of(deployment, version)
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": "app=d,tier in (a,b)"}
    assert scaling.with_replicas(deployment, version, {"spec": {"replicas": 5}})["spec"]["replicas"] == 5
    with pytest.raises(errors.ApiError):
        scaling.with_replicas(deployment, version, {"spec": {"replicas": -1}})
