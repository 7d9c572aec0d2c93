"""Kinds beyond the core ones, served as kube-apiserver serves them: kubectl and the `kubernetes` client.

Jobs and CronJobs, DaemonSets and StatefulSets, volumes, quotas, NetworkPolicies and Ingresses, PriorityClasses
(with kube's defaults, its immutable value and the Priority admission plugin), APIServices, storage classes,
autoscalers and EndpointSlices.
"""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

POD_TEMPLATE = {
    "metadata": {"labels": {"app": "a"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"},
}
SELECTOR = {"matchLabels": {"app": "a"}}
LONG_RUNNING = {**POD_TEMPLATE, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
MANIFESTS = [
    {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {"template": POD_TEMPLATE},
    },
    {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": {"template": POD_TEMPLATE}}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {"selector": SELECTOR, "template": LONG_RUNNING},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"selector": SELECTOR, "serviceName": "db", "replicas": 2, "template": LONG_RUNNING},
    },
    {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {"selector": {"app": "a"}, "replicas": 1, "template": LONG_RUNNING},
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv1"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/d"},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    },
    {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "10"}},
    },
    {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "1"}}]},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    },
    {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    },
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "high"},
        "value": 1000,
    },
    {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.k8s.io"},
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": {"name": "metrics-server", "namespace": "kube-system"},
        },
    },
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "fast"},
        "provisioner": "example.dev/fast",
    },
    {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
        },
    },
    {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
    },
]
PLURALS = [
    "jobs.batch",
    "cronjobs.batch",
    "daemonsets.apps",
    "statefulsets.apps",
    "replicationcontrollers",
    "persistentvolumes",
    "persistentvolumeclaims",
    "resourcequotas",
    "limitranges",
    "networkpolicies.networking.k8s.io",
    "ingresses.networking.k8s.io",
    "priorityclasses.scheduling.k8s.io",
    "apiservices.apiregistration.k8s.io",
    "storageclasses.storage.k8s.io",
    "horizontalpodautoscalers.autoscaling",
    "endpointslices.discovery.k8s.io",
]


@pytest.fixture
def api(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    yield api_client
    api_client.close()


def test_kubectl_applies_every_kind_and_reads_it_back(kubectl):
    documents = yaml.safe_dump_all(MANIFESTS)
    kubectl("apply", "-f", "-", stdin=documents)
    kubectl("apply", "--server-side", "-f", "-", stdin=documents)  # the same objects, now owned by apply
    resources = kubectl("api-resources", "-o", "name").stdout.split()
    assert set(PLURALS) <= set(resources)
    for plural, manifest in zip(PLURALS, MANIFESTS, strict=True):
        found = json.loads(
            kubectl("get", plural, manifest["metadata"]["name"], "-o", "json", "--show-managed-fields").stdout
        )
        assert found["kind"] == manifest["kind"] and found["metadata"]["uid"]
        managers = {entry["manager"] for entry in found["metadata"]["managedFields"]}
        assert "kubectl" in managers  # the server-side apply took the fields over
    short = kubectl("get", "cj,ds,sts,rc,pv,pvc,quota,limits,netpol,ing,pc,sc,hpa", "-o", "name").stdout
    assert "cronjob.batch/nightly" in short and "priorityclass.scheduling.k8s.io/high" in short


def test_unknown_fields_of_the_new_kinds_are_refused_as_kube_refuses_them(kubectl):
    policy = {**MANIFESTS[9], "spec": {"podSelector": {}, "policyTypo": ["Ingress"]}}
    refused = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(policy), check=False)
    assert refused.returncode != 0 and 'unknown field "spec.policyTypo"' in refused.stderr


def test_priority_class_defaults_and_system_classes(api):
    scheduling = client.SchedulingV1Api(api)
    names = {pc.metadata.name: pc.value for pc in scheduling.list_priority_class().items}
    assert names == {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
    created = scheduling.create_priority_class({"metadata": {"name": "batch"}, "value": 10})
    assert created.preemption_policy == "PreemptLowerPriority" and not created.global_default
    answer = scheduling.create_priority_class({"metadata": {"name": "zero"}}, _preload_content=False)
    zero = json.loads(answer.data)
    assert zero["value"] == 0


def test_priority_class_value_is_immutable_and_bounded(api):
    scheduling = client.SchedulingV1Api(api)
    scheduling.create_priority_class({"metadata": {"name": "batch"}, "value": 10})
    with pytest.raises(ApiException) as changed:
        scheduling.patch_priority_class("batch", {"value": 11})
    assert changed.value.status == 422
    assert "value: Forbidden: may not be changed in an update." in json.loads(changed.value.body)["message"]
    for body, words in [
        (
            {"metadata": {"name": "huge"}, "value": 2000000000},
            "maximum allowed value of a user defined priority",
        ),
        ({"metadata": {"name": "system-mine"}, "value": 1}, "reserved for system use only"),
        (
            {"metadata": {"name": "odd"}, "value": 1, "preemptionPolicy": "Sometimes"},
            'Unsupported value: "Sometimes"',
        ),
    ]:
        with pytest.raises(ApiException) as refused:
            scheduling.create_priority_class(body)
        assert refused.value.status == 422 and words in json.loads(refused.value.body)["message"]


def test_priority_admission_resolves_pod_priority_and_one_global_default(api):
    scheduling, core = client.SchedulingV1Api(api), client.CoreV1Api(api)
    scheduling.create_priority_class(
        {"metadata": {"name": "tenant"}, "value": 500, "globalDefault": True, "preemptionPolicy": "Never"}
    )
    with pytest.raises(ApiException) as second:
        scheduling.create_priority_class({"metadata": {"name": "other"}, "value": 1, "globalDefault": True})
    assert second.value.status == 403
    assert "PriorityClass tenant is already marked as default" in json.loads(second.value.body)["message"]

    def pod(name, **spec):
        return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}

    defaulted = core.create_namespaced_pod("default", pod("a"))
    assert (defaulted.spec.priority_class_name, defaulted.spec.priority) == ("tenant", 500)
    assert defaulted.spec.preemption_policy == "Never"
    critical = core.create_namespaced_pod("default", pod("b", priorityClassName="system-node-critical"))
    assert critical.spec.priority == 2000001000
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_pod("default", pod("c", priorityClassName="nope"))
    assert missing.value.status == 403
    assert (
        json.loads(missing.value.body)["message"]
        == 'pods "c" is forbidden: no PriorityClass with name nope was found'
    )


def test_client_lists_and_watches_network_policies(api):
    networking = client.NetworkingV1Api(api)
    networking.create_namespaced_network_policy("default", MANIFESTS[9])
    listed = networking.list_namespaced_network_policy("default")
    events = watch.Watch().stream(
        networking.list_namespaced_network_policy,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    )
    networking.patch_namespaced_network_policy(
        "deny", "default", {"spec": {"policyTypes": ["Ingress", "Egress"]}}
    )
    first = next(events)
    assert first["type"] == "MODIFIED" and first["object"].spec.policy_types == ["Ingress", "Egress"]
    assert first["object"].metadata.generation == 2


def test_stateful_set_and_replication_controller_scale(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([MANIFESTS[3], MANIFESTS[4]]))
    kubectl("scale", "statefulset/db", "--replicas=4")
    kubectl("scale", "rc/rc", "--replicas=3")
    assert json.loads(kubectl("get", "sts", "db", "-o", "json").stdout)["spec"]["replicas"] == 4
    scale = json.loads(
        kubectl("get", "--raw", "/api/v1/namespaces/default/replicationcontrollers/rc/scale").stdout
    )
    assert scale["spec"]["replicas"] == 3 and scale["status"]["selector"] == "app=a"


def test_defaults_are_read_back_as_kube_sets_them(api, sandbox_thread):
    apps, core, batch = client.AppsV1Api(api), client.CoreV1Api(api), client.BatchV1Api(api)
    template = {
        "metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }
    deployment = apps.create_namespaced_deployment(
        "default", {"metadata": {"name": "web"}, "spec": {"selector": SELECTOR, "template": template}}
    )
    spec = deployment.spec
    assert (spec.replicas, spec.revision_history_limit, spec.progress_deadline_seconds) == (1, 10, 600)
    assert spec.strategy.type == "RollingUpdate" and spec.strategy.rolling_update.max_surge == "25%"
    pod = core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": template["spec"]})
    container = pod.spec.containers[0]
    assert (container.image_pull_policy, container.ports[0].protocol) == ("Always", "TCP")
    assert (pod.spec.service_account_name, pod.spec.scheduler_name) == ("default", "default-scheduler")
    assert (pod.spec.termination_grace_period_seconds, pod.spec.dns_policy, pod.spec.restart_policy) == (
        30,
        "ClusterFirst",
        "Always",
    )
    assert {(t.key, t.toleration_seconds) for t in pod.spec.tolerations} == {
        ("node.kubernetes.io/not-ready", 300),
        ("node.kubernetes.io/unreachable", 300),
    }
    service = core.create_namespaced_service(
        "default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert (service.spec.ports[0].protocol, service.spec.ports[0].target_port) == ("TCP", 80)
    assert (service.spec.session_affinity, service.spec.type) == ("None", "ClusterIP")
    job = batch.create_namespaced_job("default", MANIFESTS[0])
    uid = job.metadata.uid
    assert (job.spec.completions, job.spec.parallelism, job.spec.backoff_limit) == (1, 1, 6)
    assert job.spec.completion_mode == "NonIndexed"
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert job.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "train"
    raw = core.read_namespaced_service("s", "default", _preload_content=False).data
    assert raw.endswith(b"}\n")  # kube's JSON bodies end with a newline


def test_get_prints_the_workload_kinds_with_kubes_columns(kubectl):
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(MANIFESTS))
    kubectl("create", "deployment", "web", "--image=nginx:1")
    printed = kubectl("get", "deploy,job,cj,sa,pc,sts,ds,netpol").stdout
    headers = [line.split() for line in printed.splitlines() if line.startswith("NAME")]
    assert headers == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"],
        ["NAME", "SECRETS", "AGE"],
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        ["NAME", "READY", "AGE"],
        ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE", "SELECTOR", "AGE"],
        ["NAME", "POD-SELECTOR", "AGE"],
    ]
    rows = {
        line.split()[0]: line.split() for line in printed.splitlines() if not line.startswith("NAME") and line
    }
    assert rows["job.batch/train"][1:3] == ["Running", "0/1"]
    assert rows["priorityclass.scheduling.k8s.io/high"][1:3] == ["1000", "false"]
    assert rows["statefulset.apps/db"][1] == "0/2"
    assert rows["networkpolicy.networking.k8s.io/deny"][1] == "<none>"
