"""The operator's settings: one frozen dataclass, filled from flags, then environment variables, then defaults.

Each field carries its help text in its metadata, shown by `superpod run --help`. Environment names are the
field names in upper case with the `SUPERPOD_` prefix (`metrics_port` -> `SUPERPOD_METRICS_PORT`), so the Helm
chart can set either.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import Any


def _setting(default: Any, help_text: str, *, empty: bool = False) -> Any:
    """A field; with `empty`, an empty value given as a flag or variable means empty (else: the default)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "empty": empty})


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    namespace: str | None = _setting(
        None, "serve partitions of this namespace only (default: all namespaces)"
    )
    kubeconfig: str | None = _setting(
        None, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the pod's service account)"
    )
    peering: str = _setting(
        "superpod-operator", "kopf peering name: of several replicas with it, one is active"
    )
    standalone: bool = _setting(False, "run without peering (a single replica)")
    peering_lifetime: int = _setting(
        15,
        "seconds a replica stays a peer without a keep-alive: how soon a standby takes over from a dead one",
    )
    priority: int = _setting(
        0,
        "peering priority: the highest is active; 0 picks a random one (replicas must differ, or all pause)",
    )
    coordination: str = _setting(
        "leases",
        "how replicas share the work: leases (each SuperPod owned by one replica, coordination.k8s.io Leases) "
        "or peering (kopf peering: one replica active, the others standing by)",
    )
    identity: str = _setting(
        "", "this replica's name in the Leases (default: the host name and a random suffix)"
    )
    lease_namespace: str = _setting(
        "", "namespace of the Leases (default: --namespace, else the pod's own namespace, else default)"
    )
    lease_duration: float = _setting(
        10.0, "seconds without a renewal after which other replicas take a replica's SuperPods"
    )
    renew_deadline: float = _setting(
        7.0, "seconds after its last renewal began when a replica stops writing (below --lease-duration)"
    )
    retry_period: float = _setting(2.0, "seconds between two renewals of a replica's Lease")
    health_port: int = _setting(8081, "port of the liveness/readiness endpoint /healthz (0: none)")
    mirror_sync_timeout: float = _setting(
        60.0,
        "seconds a mirror of the API (SuperPods, Nodes, device-info and NodeD ConfigMaps, partitions, pods) may "
        "fail to follow it before /healthz fails (0: never); kopf may answer from a cached healthy probe up to "
        "10 s more",
    )
    metrics_port: int = _setting(8080, "port of the Prometheus endpoint /metrics (0: none)")
    metrics_secure: bool = _setting(
        False,
        "serve /metrics over HTTPS (the webhook's certificate) only to clients the API server authenticates "
        "(TokenReview of their bearer token) and authorizes to get the path /metrics (SubjectAccessReview), as "
        "controller-runtime's secure metrics do (default: plain HTTP to anyone who reaches the port)",
    )
    metrics_host: str = _setting(
        "", "address /metrics listens on (default: --bind-address); 127.0.0.1 keeps plain HTTP inside the pod"
    )
    webhook_port: int = _setting(9443, "HTTPS port of the pod admission webhook (0: no webhook)")
    tls_cert_file: str | None = _setting(None, "webhook serving certificate, PEM (default: self-signed)")
    tls_key_file: str | None = _setting(None, "private key of the webhook certificate, PEM")
    webhook_client_ca_file: str | None = _setting(
        None,
        "CA bundle, PEM: the webhook then requires callers (the API server) to present a client certificate "
        "signed by it (default: none asked)",
    )
    webhook_config: str = _setting(
        "managed", "managed: the operator writes its MutatingWebhookConfiguration; external: the chart does"
    )
    webhook_service: str | None = _setting(
        None, "NAMESPACE/NAME of the webhook Service (managed mode, in a cluster)"
    )
    webhook_host: str = _setting(
        "127.0.0.1", "webhook listen address; its URL host when no webhook service is set"
    )
    bind_address: str = _setting("0.0.0.0", "address the health and metrics endpoints listen on")
    status_interval: float = _setting(
        2.0,
        "least seconds between two status writes of one SuperPod (coalescing: each write is an event every "
        "replica's kopf processes; at 0.5 s a SuperCluster's 64 SuperPods wrote nearly one per paced partition)",
    )
    configmap_selector: str = _setting(
        "mx-consumer-cim=true",
        "label selector of the device plugin's and NodeD's ConfigMaps, watched in kube-system and mindx-dl (the "
        "label both publish them with; the API server sends no other ConfigMap); empty: every ConfigMap there",
        empty=True,
    )
    inventory_debounce: float = _setting(
        0.2, "seconds to coalesce Node and device-info changes before a rebuild"
    )
    log_format: str = _setting("plain", "log lines as plain text or as one JSON object per line (json)")
    verbose: bool = _setting(False, "debug logging")


def env_name(field_name: str) -> str:
    return "SUPERPOD_" + field_name.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for field in dataclasses.fields(OperatorSettings):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata['help']} (env {env_name(field.name)})"
        if field.default is False:
            parser.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            shown = "" if field.default is None else f"; default {field.default}"
            parser.add_argument(flag, default=None, metavar=field.name.upper(), help=help_text + shown)


def _convert(field: dataclasses.Field[Any], raw: Any) -> Any:
    if isinstance(field.default, bool):
        return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
    if isinstance(field.default, int):
        return int(raw)
    if isinstance(field.default, float):
        return float(raw)
    return str(raw)


def from_sources(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> OperatorSettings:
    """Flags win over the environment, which wins over the defaults; bad values raise ValueError."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(OperatorSettings):
        raw = getattr(args, field.name, None) if args is not None else None
        if raw is None:
            raw = environ.get(env_name(field.name))
        if raw is not None and (raw != "" or field.metadata["empty"]):
            try:
                values[field.name] = _convert(field, raw)
            except ValueError:
                raise ValueError(f"{field.name.replace('_', '-')}: not a valid value: {raw!r}") from None
    settings = OperatorSettings(**values)
    if settings.log_format not in ("plain", "json"):
        raise ValueError(f"log-format must be plain or json, not {settings.log_format!r}")
    if settings.webhook_config not in ("managed", "external"):
        raise ValueError(f"webhook-config must be managed or external, not {settings.webhook_config!r}")
    if settings.coordination not in ("leases", "peering"):
        raise ValueError(f"coordination must be leases or peering, not {settings.coordination!r}")
    if not 0 < settings.retry_period < settings.renew_deadline < settings.lease_duration:
        raise ValueError("leases: need 0 < --retry-period < --renew-deadline < --lease-duration")
    return settings
