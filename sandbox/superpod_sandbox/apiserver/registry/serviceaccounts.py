"""ServiceAccounts as kube-controller-manager's ServiceAccount controller and kube-apiserver's ServiceAccount
admission plugin keep them.

- Every namespace has a `default` ServiceAccount. kube's controller creates it moments after the namespace;
  here it is created with the namespace (and with the namespaces that exist at start), so a Pod created right
  after its namespace is never refused for want of it.
- A Pod naming a ServiceAccount that does not exist is refused (403, kube's words: `pods "p" is forbidden:
  error looking up service account team-a/builder: serviceaccount "builder" not found`).
- Unless the Pod or its ServiceAccount sets `automountServiceAccountToken: false`, the Pod gets the projected
  token volume `kube-api-access-<5 characters>` (a bound token, the `kube-root-ca.crt` ConfigMap's `ca.crt`,
  the namespace from the downward API) mounted read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in
  every container and init container that has nothing mounted there yet.
"""

from __future__ import annotations

from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.registry import metadata, resources
from superpod_sandbox.apiserver.storage import store

Object = dict[str, Any]
SERVICE_ACCOUNTS: resources.GroupResource = ("", "serviceaccounts")
DEFAULT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607  # kube's WarnOnlyBoundTokenExpirationSeconds
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


def default_account(namespace: str, uid: str, created: str) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": DEFAULT, "namespace": namespace, "uid": uid, "creationTimestamp": created},
    }


def admit_pod(objects: store.Store, pod: Object) -> None:
    """The plugin's checks and mutation of a Pod being created (its serviceAccountName already defaulted)."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace", "")
    spec = pod.setdefault("spec", {})
    name = spec.get("serviceAccountName") or DEFAULT
    account = objects.get(SERVICE_ACCOUNTS, namespace, name)
    if account is None:
        raise errors.forbidden(
            "",
            "pods",
            meta.get("name", ""),
            f'error looking up service account {namespace}/{name}: serviceaccount "{name}" not found',
        )
    if _automounts(account, spec):
        _mount_token(spec)


def _automounts(account: Object, spec: Object) -> bool:
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def _mount_token(spec: Object) -> None:
    containers = [
        container
        for field in ("initContainers", "containers")
        for container in spec.get(field) or []
        if isinstance(container, dict)
    ]
    volumes = spec.setdefault("volumes", [])
    existing = next(
        (
            v["name"]
            for v in volumes
            if isinstance(v, dict) and str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)
        ),
        None,
    )
    name = existing or metadata.generated_name(TOKEN_VOLUME_PREFIX)
    if existing is None:
        volumes.append({"name": name, "projected": _token_projection()})
    for container in containers:
        mounts = container.setdefault("volumeMounts", [])
        if not any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})


def _token_projection() -> Object:
    return {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {
                            "path": "namespace",
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }
