"""Pod admission: the webhooks `/mutate-pods` and `/validate-pods`, their TLS and configurations, the daemons.

`configure(settings, config)` gives kopf its webhook server (HTTPS on `--webhook-port`, the certificate from
`--tls-cert-file`/`--tls-key-file` or self-signed, see `cluster.certificates`). `register(registry, fleet,
config, files=...)` adds:

- the answer to `/mutate-pods`, for pods labelled `superpod.dev/partition` (kube sends no other pod: the
  configuration's objectSelector). It finds the partition in the pod's namespace, claims a slot (`binder`,
  atomic across requests and replicas), and patches the pod (`podmutation`); or denies with a message that
  names what is wrong, which kubectl prints. Every replica serves it; dry-run requests are decided but claim
  nothing. kopf's server runs it (its TLS context, certificate reloads), but the AdmissionReview goes straight
  to `Webhook.review`, not through kopf's generic admission handling: that builds a body, a memo, a diff, a
  cause and a handler state per request and diffs deep copies of the pod for the patch, several times the
  work of the decision itself, all on the one event loop that also answers the other pods of a burst.
- the answer to `/validate-pods` (`validation`): partition pods created or changed off their slot, bindings to
  another node, and pods without a partition reaching for an isolated SuperPod's devices are refused;
- at startup, in `managed` mode, the Mutating- and ValidatingWebhookConfiguration `superpod-operator`
  (`cluster.webhookconfig`);
- the SuperPods' member nodes on every replica (`membership`, fed by the fleet's mirrors), and two loops per
  SuperPod on the active replica: slot releases and rank tables (`bindings`), the isolation taint on its member
  nodes (`nodetaints`).

Latency of each admission (seconds, from the parsed review to the answer) goes to
`superpod_webhook_duration_seconds` (unexpected errors, not denials, to `superpod_webhook_errors_total`), to
`Webhook.latencies` and to the debug log.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import gc
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import kopf

from superpod import metrics
from superpod.api import common, views
from superpod.cluster import certificates, client, webhookconfig, writer
from superpod.controller import binder as binder_module
from superpod.controller import bindings as bindings_module
from superpod.controller import fleet as fleet_module
from superpod.controller import (
    hcclconfigmap,
    nodetaints,
    podmutation,
    podrequest,
    shards,
    slotclaims,
    validation,
)
from superpod.controller import membership as membership_module
from superpod.controller import settings as operator_settings
from superpod.ranktable import versions

JSON = common.JSON
HANDLER_ID = "mutate-pods"  # kopf's server routes the URL path /mutate-pods with this id
VALIDATE_ID = "validate-pods"
DENIAL_CODE = 403
logger = logging.getLogger(__name__)


def certificate(config: operator_settings.OperatorSettings) -> certificates.CertificateFiles:
    if config.tls_cert_file and config.tls_key_file:
        return certificates.mounted(config.tls_cert_file, config.tls_key_file)
    hosts = [config.webhook_host]
    if config.webhook_service:
        namespace, _, name = config.webhook_service.partition("/")
        hosts = [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local", *hosts]
    return certificates.self_signed(hosts)


def client_verification(ca_file: str | None) -> dict[str, Any]:
    """kopf's server options that make the TLS handshake require a client certificate signed by `ca_file`.

    The webhook port answers anyone who reaches it; with this, only the API server (configured to present a
    certificate, see docs/helm.md) gets past the handshake. The bundle is checked here, so that a wrong file
    stops the operator at startup with its name instead of failing every admission.
    """
    if not ca_file:
        return {}
    try:
        ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(
            f"--webhook-client-ca-file {ca_file}: not a readable PEM CA bundle ({error})"
        ) from None
    return {"verify_mode": ssl.CERT_REQUIRED, "verify_cafile": ca_file}


class WebhookServer(kopf.WebhookServer):
    """kopf's HTTPS webhook server whose reviews at `/<id>` go to `answers[id]` (set at startup) directly."""

    answers: dict[str, Callable[[JSON], Awaitable[JSON]]]

    async def _serve(  # type: ignore[override]  # kopf's is a staticmethod; this one needs `answers`
        self, fn: Any, request: aiohttp.web.Request
    ) -> aiohttp.web.Response:
        answer = getattr(self, "answers", {}).get(request.match_info.get("id", ""))
        if answer is None:
            return await super()._serve(fn, request)
        try:
            review = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise aiohttp.web.HTTPBadRequest(reason=str(error)) from None
        if not isinstance(review, dict) or not isinstance(review.get("request"), dict):
            raise aiohttp.web.HTTPBadRequest(reason="not an AdmissionReview with a request")
        return aiohttp.web.json_response(await answer(review))


def configure(
    settings: kopf.OperatorSettings, config: operator_settings.OperatorSettings
) -> certificates.CertificateFiles | None:
    """Give kopf the HTTPS webhook server; None (and no server) when `--webhook-port 0`."""
    if not config.webhook_port:
        return None
    if not config.verbose:  # an INFO line per admission costs more CPU than answering it
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    files = certificate(config)
    settings.admission.server = WebhookServer(
        addr=config.webhook_host,
        port=config.webhook_port,
        certfile=files.cert_file,
        pkeyfile=files.key_file,
        cadata=files.ca_pem,
        host=config.webhook_host,
        **client_verification(config.webhook_client_ca_file),
    )
    settings.admission.managed = None  # the configuration is ours (managed) or the chart's (external)
    return files


class Refusal(Exception):
    """A denial: the message kubectl prints, and the HTTP code of the answer's status."""

    def __init__(self, message: str, code: int = DENIAL_CODE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Webhook:
    """The admission decision for one pod: find the partition, claim a slot, describe the mutation."""

    def __init__(self, fleet: fleet_module.Fleet, binder: binder_module.Binder) -> None:
        self.fleet = fleet
        self.binder = binder
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)

    async def _partition(self, namespace: str, name: str) -> JSON | None:
        """The partition, from memory when it is placed there, else read (it may be newer than the mirror).

        Memory is the newer of the fleet's mirror and the binder's last write: in a burst, the binder's copy
        is ahead of the mirror's watch.
        """
        mirrored = self.fleet.partitions.get(f"{namespace}/{name}")
        known = views.newest(self.binder.known(namespace, name), mirrored) if mirrored else None
        if known is not None and (known.get("status") or {}).get("allocation"):
            return known
        return await self.binder.api.get_or_none(writer.partition_path(namespace, name))

    def _missing(self, namespace: str, name: str) -> Refusal:
        # the same words whether or not a partition of that name exists in another namespace: a denial tells
        # a tenant nothing of other namespaces
        return Refusal(
            f"no SuperPodPartition {name} in namespace {namespace} (label {common.PARTITION_LABEL}); a pod binds "
            f"only to a partition of its own namespace"
        )

    async def review(self, review: JSON) -> JSON:
        """The AdmissionReview answering `review`: allowed with the pod's JSON patch, or denied with why."""
        request = review["request"]
        response: JSON = {"uid": request.get("uid", ""), "allowed": True}
        pod = request.get("object")
        labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
        if request.get("operation") == "CREATE" and common.PARTITION_LABEL in labels:
            started = time.perf_counter()
            failed = False
            try:
                binding = await self.admit(
                    podrequest.in_namespace(pod, request), dry_run=bool(request.get("dryRun"))
                )
                patch = json.dumps(podmutation.json_patch(pod, binding)).encode()
            except Refusal as refusal:  # a deliberate denial, not a failure of the webhook
                response.update(allowed=False, status={"message": refusal.message, "code": refusal.code})
            except Exception as error:  # fails closed: an error answered, not a 500 that only says "500"
                failed = True
                logger.exception("admission of a pod failed")
                response.update(allowed=False, status={"message": str(error) or repr(error), "code": 500})
            else:
                response.update(patch=base64.b64encode(patch).decode("ascii"), patchType="JSONPatch")
            finally:
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                metrics.observe_webhook(elapsed, error=failed)
                logger.debug("admission of a pod took %.1f ms", elapsed * 1000)
        return {
            "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview",
            "response": response,
        }

    async def admit(self, pod: JSON, *, dry_run: bool) -> podmutation.Binding:
        metadata = pod.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        labels = metadata.get("labels") or {}
        partition_name = str(labels.get(common.PARTITION_LABEL, ""))
        partition = await self._partition(namespace, partition_name)
        if partition is None:
            raise self._missing(namespace, partition_name)
        superpod = views.Partition(partition).superpod
        state = self.fleet.superpods.get(superpod)
        if state is None or state.profile is None:
            raise Refusal(
                f"partition {namespace}/{partition_name}: SuperPod {superpod} is not known to the operator yet",
            )
        resource = state.profile.resource_name
        if not metadata.get("name") and not metadata.get("generateName"):  # kube refuses it after admission
            raise Refusal("pod has neither metadata.name nor metadata.generateName; set one")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:  # it would skip the scheduler, and so the node its slot is on
            raise Refusal(
                f"pod {metadata.get('name') or metadata.get('generateName')} sets spec.nodeName {node_name}; "
                f"remove it: the webhook pins a partition pod to its slot's node"
            )
        new_name = (
            None if metadata.get("name") else podrequest.generated_name(metadata.get("generateName", ""))
        )
        pod_name = str(metadata.get("name") or new_name)
        slot_count = len((partition.get("status") or {}).get("allocation") or [])
        try:
            request = podrequest.PodRequest(
                pod=pod_name,
                devices=podrequest.requested_devices(pod, resource),
                index=podrequest.pod_index(labels, slot_count),
                dry_run=dry_run,
            )
        except ValueError as error:
            raise Refusal(f"pod {pod_name}: {error}") from None
        result = await self.binder.claim(
            namespace, partition_name, request, resource=resource, seen=partition
        )
        if result.partition is None:
            raise self._missing(namespace, partition_name)
        if isinstance(result.decision, slotclaims.Denied) or result.decision is None:
            message = result.decision.message if result.decision else "no decision"
            raise Refusal(message)
        allocation = (result.partition.get("status") or {}).get("allocation") or []
        slot = result.decision.slot
        has_table = versions.version_for_profile(state.profile.name) is not None
        return podmutation.Binding(
            name=new_name,
            node=str(slot["node"]),
            devices=tuple(slot["devices"]),
            rank=int(slot["rank"]),
            world_size=sum(len(s["devices"]) for s in allocation),
            resource=resource,
            rank_table=hcclconfigmap.configmap_name(result.partition) if has_table else None,
        )


def register(
    registry: kopf.OperatorRegistry,
    fleet: fleet_module.Fleet,
    config: operator_settings.OperatorSettings,
    *,
    files: certificates.CertificateFiles | None,
    owner: shards.Ownership | None = None,
) -> Webhook:
    """Attach the webhook (when `files`: the server is configured), its configuration and the daemons.

    With `owner`, the replica also removes isolation taints left behind by deleted SuperPods whose names it owns.
    """
    binder = binder_module.Binder(fleet.api)
    webhook = Webhook(fleet, binder)
    bindings = bindings_module.Bindings(fleet.api, fleet, binder, namespace=config.namespace)
    view = membership_module.Membership()
    validator = validation.Validator(fleet, binder, bindings, view, namespace=config.namespace)
    taints = nodetaints.NodeTaints(fleet.api, view)
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def start_bindings(settings: kopf.OperatorSettings, **_: Any) -> None:
        if isinstance(settings.admission.server, WebhookServer):
            # kopf starts the server after this handler
            settings.admission.server.answers = {HANDLER_ID: webhook.review, VALIDATE_ID: validator.review}
        _freeze_startup_heap()  # the bindings' mirror of pods was started by the fleet (`before_restore`)
        if files is not None and config.webhook_config == "managed":
            # in the background: kopf starts the webhook server only after the startup handlers
            tasks.append(asyncio.create_task(_manage_configuration(fleet.api, config, files)))
        if owner is not None:
            tasks.append(asyncio.create_task(_sweep_orphan_taints(fleet, taints, owner)))

    @kopf.on.cleanup(registry=registry)
    async def stop_bindings(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bindings.stop()

    # the fleet's own mirror of partitions tells of their changes, and the SuperPod daemon (active replica only)
    # runs one bindings loop per SuperPod: no kopf event handler or daemon per partition
    fleet.partition_listeners.append(bindings.partition_changed)
    fleet.restorer.running = bindings.pods.running
    fleet.before_restore.append(bindings.start)
    fleet.deletion_listeners.append(bindings.deleted)
    fleet.superpod_workers.append(bindings.follow)
    # every replica knows the SuperPods' members (it validates pods); the active one keeps their taints
    fleet.node_listeners.append(view.on_node)
    fleet.superpod_listeners.append(view.on_superpod)
    fleet.superpod_workers.append(taints.follow)

    return webhook


async def _sweep_orphan_taints(
    fleet: fleet_module.Fleet, taints: nodetaints.NodeTaints, owner: shards.Ownership
) -> None:
    await fleet.mirror.synced.wait()  # before, every SuperPod would look gone
    await taints.sweeping(lambda name: name in fleet.mirror.superpods, owner)


def _freeze_startup_heap() -> None:
    """Keep what exists at startup (modules, kopf, profiles: about 85,000 objects) out of full collections.

    CPython's full collection walks every tracked object: 70-120 ms measured here with that heap, landing on
    whatever admissions are in flight (a burst's p99). Frozen, a full collection walks only what came since
    (about 9 ms). These objects live as long as the process anyway; garbage is collected first.
    """
    gc.collect()
    gc.freeze()


async def _manage_configuration(
    api: client.KubeClient,
    config: operator_settings.OperatorSettings,
    files: certificates.CertificateFiles,
) -> None:
    """Write the webhook configuration once the server listens, so kube never calls a closed port."""
    await _until_listening(config.webhook_host, config.webhook_port)

    def client_config(path: str) -> JSON:
        return webhookconfig.client_config(
            ca_pem=files.ca_pem,
            service=config.webhook_service,
            host=config.webhook_host,
            port=config.webhook_port,
            path=path,
        )

    mutating = webhookconfig.configuration(client_config(webhookconfig.PATH), namespace=config.namespace)
    await webhookconfig.ensure(api, mutating)
    # after the mutating one: validation alone would refuse partition pods that were never bound
    await webhookconfig.ensure(
        api, webhookconfig.validating_configuration(client_config(webhookconfig.VALIDATE_PATH))
    )


async def _until_listening(host: str, port: int, interval: float = 0.05) -> None:
    address = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    while True:
        try:
            _, connection = await asyncio.open_connection(address, port)
        except OSError:
            await asyncio.sleep(interval)
            continue
        connection.close()
        await connection.wait_closed()
        return
