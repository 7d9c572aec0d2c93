"""Value sets the chart is rendered with, named by the sentence they stand for."""

from __future__ import annotations

from typing import Any

import kubernetes_validate.utils
from packaging import version

OLDEST_SUPPORTED = version.Version("1.31")
# a CA bundle for webhook.clientAuth (the shape is what the chart checks; the integration tests use real ones)
CLIENT_CA = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUclient\n-----END CERTIFICATE-----\n"

EVERY_FEATURE: dict[str, Any] = {
    "operator": {"watchNamespace": "training", "verbose": True, "extraEnv": [{"name": "TZ", "value": "UTC"}]},
    "webhook": {"certManager": {"enabled": True}, "namespaceSelector": {}},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
        "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "SuperPoD"}},
    },
    "image": {"digest": "sha256:" + "0" * 64},
    "networkPolicy": {
        "enabled": True,
        "webhook": {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]},
        "metrics": {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
                }
            ]
        },
        "health": {"from": []},
    },
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/team": "ml-platform"},
    "podLabels": {"example.com/tier": "control-plane"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
    ],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "superpod-operator"}},
        }
    ],
    "serviceAccount": {"annotations": {"example.com/role": "superpod"}},
    "service": {"annotations": {"example.com/scrape": "true"}},
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "the default values": {},
    "cert-manager issues the certificate with its own self-signed Issuer": {
        "webhook": {"certManager": {"enabled": True}}
    },
    "cert-manager issues the certificate from an existing ClusterIssuer": {
        "webhook": {
            "certManager": {
                "enabled": True,
                "issuerRef": {"name": "corporate-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            }
        }
    },
    "the operator manages its webhook configuration": {"webhook": {"configManagedBy": "operator"}},
    "the operator manages its webhook configuration with cert-manager": {
        "webhook": {"configManagedBy": "operator", "certManager": {"enabled": True}}
    },
    "monitoring is on": {
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    },
    "monitoring is off": {
        "monitoring": {
            "serviceMonitor": {"enabled": False},
            "prometheusRule": {"enabled": False},
            "grafanaDashboard": {"enabled": False},
        }
    },
    "a single standalone replica": {"replicaCount": 1, "operator": {"coordination": "standalone"}},
    "a single replica with peering": {"replicaCount": 1, "operator": {"coordination": "peering"}},
    "replicas with kopf peering": {"operator": {"coordination": "peering"}},
    "a namespaced operator with kopf peering": {
        "operator": {"coordination": "peering", "watchNamespace": "training"}
    },
    "three replicas share the SuperPods": {"replicaCount": 3},
    "metrics over plain HTTP inside the pod": {
        "metrics": {"secure": False},
        "monitoring": {"serviceMonitor": {"enabled": True}},
    },
    "Prometheus may read the secure metrics": {
        "metrics": {"reader": {"serviceAccounts": [{"name": "prometheus", "namespace": "monitoring"}]}},
        "monitoring": {"serviceMonitor": {"enabled": True}},
    },
    "every optional feature is on": EVERY_FEATURE,
    "the webhook verifies its callers' client certificates": {
        "webhook": {"clientAuth": {"enabled": True, "caBundle": CLIENT_CA}}
    },
}


def supported_kubernetes_versions() -> list[str]:
    """Every Kubernetes minor version kubernetes-validate has schemas for, from the oldest supported one."""
    minors = {
        f"{parsed.major}.{parsed.minor}"
        for parsed in map(version.Version, kubernetes_validate.utils.all_versions())
        if parsed >= OLDEST_SUPPORTED
    }
    return sorted(minors, key=version.Version)
