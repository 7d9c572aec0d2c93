"""Reading a pod at admission: its index among the partition's pods, its device request, a generated name."""

from __future__ import annotations

import re

import pytest
from superpod.controller import podrequest

from tests.unit.admission import builders


@pytest.mark.parametrize(
    ("labels", "slot_count", "expected"),
    [
        pytest.param({}, 8, None, id="a pod without index labels takes the next free slot"),
        pytest.param(
            {"batch.kubernetes.io/job-completion-index": "3"},
            8,
            3,
            id="an Indexed Job pod's completion index",
        ),
        pytest.param({"apps.kubernetes.io/pod-index": "5"}, 8, 5, id="a StatefulSet pod's index"),
        pytest.param(
            {
                "jobset.sigs.k8s.io/job-global-index": "2",
                "jobset.sigs.k8s.io/global-replicas": "4",
                "batch.kubernetes.io/job-completion-index": "1",
            },
            8,
            5,
            id="a JobSet pod: job 2 of 4 jobs of 2 pods, completion index 1",
        ),
        pytest.param(
            {"jobset.sigs.k8s.io/job-index": "1", "jobset.sigs.k8s.io/replicatedjob-replicas": "2"},
            8,
            4,
            id="a JobSet pod without a global index uses the replicated job's index and replicas",
        ),
        pytest.param(
            {"training.kubeflow.org/replica-type": "master", "training.kubeflow.org/replica-index": "0"},
            8,
            0,
            id="a PyTorchJob master is index 0",
        ),
        pytest.param(
            {"training.kubeflow.org/replica-type": "worker", "training.kubeflow.org/replica-index": "2"},
            8,
            3,
            id="a PyTorchJob worker i is index i + 1",
        ),
    ],
)
def test_the_index_comes_from_the_workload_controllers_labels(labels, slot_count, expected):
    index = podrequest.pod_index(labels, slot_count)
    assert (index.value if index else None) == expected


def test_a_malformed_index_label_is_refused_with_its_value():
    with pytest.raises(podrequest.BadIndexLabel, match=re.escape("apps.kubernetes.io/pod-index='x1'")):
        podrequest.pod_index({"apps.kubernetes.io/pod-index": "x1"}, 4)


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        pytest.param([{"name": "a"}], None, id="no container asks: None"),
        pytest.param(
            [{"name": "a", "resources": {"limits": {"huawei.com/Ascend910": "4"}}}], 4, id="a limit"
        ),
        pytest.param(
            [{"name": "a", "resources": {"requests": {"huawei.com/Ascend910": 2}}}], 2, id="a request"
        ),
        pytest.param(
            [
                {"name": "a", "resources": {"limits": {"huawei.com/Ascend910": "2"}}},
                {"name": "b", "resources": {"limits": {"huawei.com/Ascend910": "2"}}},
            ],
            4,
            id="containers add up",
        ),
        pytest.param(
            [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": "1"}}}], None, id="another resource"
        ),
    ],
)
def test_the_device_request_is_read_for_the_profiles_resource(containers, expected):
    pod = builders.pod(containers=containers)
    assert podrequest.requested_devices(pod, "huawei.com/Ascend910") == expected


def _asking(name: str, devices: int, **fields: object) -> dict:
    return {"name": name, "resources": {"limits": {"huawei.com/Ascend910": str(devices)}}, **fields}


@pytest.mark.parametrize(
    ("init_containers", "containers", "expected"),
    [
        pytest.param([_asking("prep", 2)], [_asking("a", 4)], 4, id="an init container smaller than the app"),
        pytest.param([_asking("prep", 8)], [_asking("a", 4)], 8, id="an init container larger than the app"),
        pytest.param([_asking("prep", 8)], [{"name": "a"}], 8, id="only an init container asks"),
        pytest.param(
            [_asking("proxy", 1, restartPolicy="Always"), _asking("prep", 4)],
            [_asking("a", 2)],
            5,
            id="a sidecar runs beside the init containers after it and beside the app",
        ),
        pytest.param(
            [_asking("prep", 4), _asking("proxy", 1, restartPolicy="Always")],
            [_asking("a", 2)],
            4,
            id="a sidecar started after an init container does not run beside it",
        ),
    ],
)
def test_init_containers_count_as_the_scheduler_counts_them(init_containers, containers, expected):
    pod = builders.pod(containers=containers)
    pod["spec"]["initContainers"] = init_containers
    assert podrequest.requested_devices(pod, "huawei.com/Ascend910") == expected


def test_a_fractional_device_request_is_refused():
    pod = builders.pod(containers=[{"name": "a", "resources": {"limits": {"huawei.com/Ascend910": "500m"}}}])
    with pytest.raises(ValueError, match="not a whole number of devices"):
        podrequest.requested_devices(pod, "huawei.com/Ascend910")


def test_a_generated_name_is_the_prefix_and_five_characters_of_kubes_alphabet():
    name = podrequest.generated_name("trainer-")
    assert name.startswith("trainer-") and len(name) == len("trainer-") + 5
    assert set(name[len("trainer-") :]) <= set(podrequest.NAME_ALPHABET)
    assert len(podrequest.generated_name("x" * 80)) == 63
