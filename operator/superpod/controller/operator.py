"""Running the operator: kopf settings, login, the registry of handlers, the fleet, and the endpoints.

`run()` is what `superpod run` executes and what the tests and the demo start in-process (with a stop flag).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from typing import Any

import kopf
from aiohttp import web

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.cluster import accessreview, certificates, client
from superpod.controller import admission, handlers, health, kopfkit, shards
from superpod.controller import fleet as fleet_module
from superpod.controller import settings as operator_settings
from superpod.metrics import exporter as metrics_exporter
from superpod.metrics import snapshot as metrics_snapshot

FINALIZER = handlers.FINALIZER
ANNOTATION_PREFIX = "superpod.dev"


def credentials(config: operator_settings.OperatorSettings) -> client.Credentials:
    if config.kubeconfig:
        return client.credentials_from_kubeconfig(config.kubeconfig)
    try:
        return client.credentials_from_kubeconfig()
    except (FileNotFoundError, KeyError):
        return client.credentials_in_cluster()


def kopf_settings(config: operator_settings.OperatorSettings) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.name = config.peering
    settings.peering.standalone = config.standalone or leased(config)
    settings.peering.clusterwide = config.namespace is None
    settings.peering.mandatory = not settings.peering.standalone
    settings.peering.lifetime = config.peering_lifetime
    # kopf pauses every replica when two share the highest priority, so each replica draws its own
    settings.peering.priority = config.priority or random.randint(1, 2**30)
    settings.persistence.finalizer = FINALIZER
    # kopf writes nothing of its own to a partition that is placed at the first attempt (see kopfkit)
    settings.persistence.progress_storage = kopfkit.UnmarkedProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopfkit.SpecDiffBase()
    settings.posting.level = logging.WARNING  # users get the operator's own Events, not every log line
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    return settings


def leased(config: operator_settings.OperatorSettings) -> bool:
    """Several replicas share the SuperPods on Leases (else: one replica, or kopf peering's one active)."""
    return not config.standalone and config.coordination == "leases"


def lease_namespace(config: operator_settings.OperatorSettings) -> str:
    if config.lease_namespace or config.namespace:
        return config.lease_namespace or str(config.namespace)
    try:
        return (client.SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


def sharding(
    api: client.KubeClient,
    fleet: fleet_module.Fleet,
    config: operator_settings.OperatorSettings,
    identity: str,
) -> shards.Shards:
    """This replica's share of the SuperPods; its writes for them pass the fence (`api.write_guard`)."""
    path = client.resource_path(common.API_VERSION, api_partition.PLURAL, config.namespace)

    async def reload(names: list[str]) -> None:
        fleet.reload(names, await api.list(path))

    fleet.modelled = set()  # a replica builds the model of the SuperPods it owns only
    ownership = shards.Shards(
        api,
        identity=identity,
        namespace=lease_namespace(config),
        superpods=lambda: fleet.mirror.superpods.keys(),
        reload=reload,
        released=fleet.unmodel,
        duration=config.lease_duration,
        renew_deadline=config.renew_deadline,
        retry_period=config.retry_period,
    )
    api.write_guard = ownership.guard
    return ownership


def metrics_access(
    api: client.KubeClient,
    config: operator_settings.OperatorSettings,
    files: certificates.CertificateFiles | None,
) -> dict[str, Any]:
    """With --metrics-secure: TLS (the webhook's certificate) and the API server's review of every request."""
    if not config.metrics_secure:
        return {}
    files = files or admission.certificate(config)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(files.cert_file, files.key_file)
    reviewer = accessreview.Reviewer(api)

    async def admit(request: web.Request) -> tuple[int, str]:
        verb = request.method.lower()  # as controller-runtime's filter: GET -> get
        decision = await reviewer.check(request.headers.get("Authorization"), verb, request.path)
        return decision.status, decision.reason

    return {"tls": tls, "admit": admit}


async def ensure_peering(api: client.KubeClient, config: operator_settings.OperatorSettings) -> None:
    """kopf peers only through an existing peering object; create it when the chart did not."""
    if config.namespace is None:
        path = client.resource_path("kopf.dev/v1", "clusterkopfpeerings")
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": config.peering},
        }
    else:
        path = client.resource_path("kopf.dev/v1", "kopfpeerings", config.namespace)
        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": config.peering, "namespace": config.namespace},
        }
    try:
        await api.create(path, body)
    except client.ApiError as error:
        if error.status == 403:  # the Helm chart creates it and grants no create: fine
            logging.getLogger(__name__).info(
                "not allowed to create the peering object; expecting it to exist"
            )
        elif error.status != 409:  # AlreadyExists is the usual case
            raise


async def run(
    config: operator_settings.OperatorSettings,
    *,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
) -> None:
    """Run until `stop_flag` is set (or a signal, when run from the command line)."""
    creds = credentials(config)
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_file,
            insecure=creds.insecure,
            token=creds.token,
            certificate_path=creds.cert_file,
            private_key_path=creds.key_file,
        )

    identity = config.identity or shards.default_identity()
    async with client.KubeClient(creds, user_agent=f"superpod-operator/{identity}") as api:
        if not config.standalone and not leased(config):
            await ensure_peering(api, config)
        fleet = fleet_module.Fleet(
            api, namespace=config.namespace, configmap_selector=config.configmap_selector
        )
        fleet.inventory_debounce = config.inventory_debounce
        ownership = sharding(api, fleet, config, identity) if leased(config) else shards.Solo()
        kopf_peering = not config.standalone and not leased(config)
        handlers.register(
            registry,
            fleet,
            status_interval=config.status_interval,
            ownership=ownership,
            kopf_partitions=kopf_peering,
        )
        health.register(registry, mirror_sync_timeout=config.mirror_sync_timeout)
        settings = kopf_settings(config)
        files = admission.configure(settings, config)
        # under kopf peering only kopf knows which replica is active: no fleet-wide sweeps of our own there
        admission.register(registry, fleet, config, files=files, owner=None if kopf_peering else ownership)
        liveness = (
            f"http://{config.bind_address}:{config.health_port}/healthz" if config.health_port else None
        )
        # /metrics: gauges read from the fleet at scrape time, on this event loop (see superpod.metrics)
        async with metrics_exporter.serving(
            lambda: metrics_snapshot.capture(fleet),
            host=config.metrics_host or config.bind_address,
            port=config.metrics_port,
            **metrics_access(api, config, files),
        ):
            await kopf.operator(
                registry=registry,
                settings=settings,
                clusterwide=config.namespace is None,
                namespaces=[config.namespace] if config.namespace else (),
                liveness_endpoint=liveness,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
                standalone=settings.peering.standalone,
                peering_name=None if settings.peering.standalone else config.peering,
                priority=settings.peering.priority,
            )
