"""ServiceAccounts as kube keeps them: a `default` account in every namespace, Pods naming a missing account
refused by the ServiceAccount admission plugin, and the projected token volume mounted unless automounting is
off."""

from __future__ import annotations

import json

import yaml

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod(name: str, **spec) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "c", "image": "busybox"}],
            **spec,
        },
    }
    return yaml.safe_dump(body)


def test_every_namespace_has_a_default_service_account_from_its_creation(kubectl):
    kubectl("create", "namespace", "team")
    accounts = json.loads(kubectl("get", "serviceaccounts", "-A", "-o", "json").stdout)["items"]
    namespaces = {a["metadata"]["namespace"] for a in accounts if a["metadata"]["name"] == "default"}
    assert {"default", "kube-system", "kube-public", "kube-node-lease", "team"} <= namespaces


def test_a_pod_naming_a_missing_service_account_is_refused(kubectl):
    kubectl("create", "namespace", "team")
    refused = kubectl("apply", "-f", "-", stdin=pod("p", serviceAccountName="builder"), check=False)
    assert refused.returncode != 0
    assert (
        'pods "p" is forbidden: error looking up service account team/builder: serviceaccount "builder" not found'
        in refused.stderr
    )
    kubectl("create", "serviceaccount", "builder", "-n", "team")
    kubectl("apply", "-f", "-", stdin=pod("p", serviceAccountName="builder"))


def test_the_token_volume_is_mounted_in_every_container_unless_automount_is_off(kubectl):
    kubectl("create", "namespace", "team")
    kubectl("apply", "-f", "-", stdin=pod("mounted"))
    created = json.loads(kubectl("get", "pod", "mounted", "-n", "team", "-o", "json").stdout)["spec"]
    (volume,) = created["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"expirationSeconds": 3607, "path": "token"}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    for container in created["containers"] + created["initContainers"]:
        assert container["volumeMounts"] == [{"mountPath": MOUNT, "name": volume["name"], "readOnly": True}]

    kubectl("apply", "-f", "-", stdin=pod("bare", automountServiceAccountToken=False))
    bare = json.loads(kubectl("get", "pod", "bare", "-n", "team", "-o", "json").stdout)["spec"]
    assert "volumes" not in bare and "volumeMounts" not in bare["containers"][0]

    kubectl(
        "patch", "serviceaccount", "default", "-n", "team", "-p", '{"automountServiceAccountToken": false}'
    )
    kubectl("apply", "-f", "-", stdin=pod("quiet"))
    quiet = json.loads(kubectl("get", "pod", "quiet", "-n", "team", "-o", "json").stdout)["spec"]
    assert "volumes" not in quiet
