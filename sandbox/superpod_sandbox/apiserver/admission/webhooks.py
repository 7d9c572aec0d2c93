"""The server's side of admission: feeds each write to `policies.py` (Mutating- and ValidatingAdmissionPolicies)
and `dispatcher.py` (webhooks) with the objects in the store.

MutatingAdmissionPolicies, then mutating webhooks (which see what the policies changed) run before schema
defaulting and validation, then ValidatingAdmissionPolicies, then validating webhooks, as in kube-apiserver. Webhook configuration objects themselves are never sent to webhooks (kube exempts them), and
with no configuration stored the cost is two dictionary lookups. A webhook's `clientConfig.service` resolves
through `endpoints` ((namespace, name) -> base URL such as `https://127.0.0.1:9443`) and otherwise to
`https://127.0.0.1:<port>` (no Service network here: a service-addressed webhook must listen on 127.0.0.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.admission import dispatcher, policies
from superpod_sandbox.apiserver.registry import resources
from superpod_sandbox.apiserver.registry.semantics import Options, State, Target

Object = dict[str, Any]
MUTATING: resources.GroupResource = ("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
VALIDATING: resources.GroupResource = ("admissionregistration.k8s.io", "validatingwebhookconfigurations")
SUBRESOURCE_KINDS = {"binding": "Binding"}  # the kind a subresource's request body is admitted as
# admission configuration is never admitted itself (kube exempts it, so no policy can lock it)
EXEMPT = frozenset(
    {
        MUTATING,
        VALIDATING,
        policies.POLICIES,
        policies.BINDINGS,
        policies.MUTATING_POLICIES,
        policies.MUTATING_BINDINGS,
    }
)
ADMIN_USER = {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]}


class Webhooks:
    def __init__(self, api: State) -> None:
        self._api = api
        self.endpoints: dict[tuple[str, str], str] = {}
        # presented to every webhook when set (kube-apiserver's AdmissionConfiguration kubeConfigFile)
        self.client_certificate: dispatcher.ClientCertificate | None = None
        self._session: aiohttp.ClientSession | None = None
        self.policies = policies.Policies(api.store.objects, self._param_resource)

    def _resolve(self, namespace: str, name: str, port: int, path: str) -> str:
        base = self.endpoints.get((namespace, name), f"https://127.0.0.1:{port}")
        return base.rstrip("/") + (path or "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(
        self,
        operation: str,
        target: Target,
        obj: Object | None,
        old: Object | None,
        options: Options,
        mutating: bool,
    ) -> Object | None:
        resource = target.resource
        if resource.key in EXEMPT:
            return None
        store = self._api.store
        kind = MUTATING if mutating else VALIDATING
        configurations = store.objects(kind, None) if store.count(kind) else []
        check_policies = bool(store.count(policies.MUTATING_BINDINGS if mutating else policies.BINDINGS))
        if not configurations and not check_policies:
            return None
        namespace = None
        namespace_labels = None
        if resource.namespaced:
            namespace = self._api.store.get(resources.NAMESPACES, "", target.namespace)
            namespace_labels = dict((namespace or {}).get("metadata", {}).get("labels") or {})
        subject = obj if obj is not None else old or {}
        request = dispatcher.AdmissionRequestInfo(
            operation=operation,
            group=resource.group,
            version=target.version,
            kind=SUBRESOURCE_KINDS.get(target.subresource, resource.kind),
            resource=resource.plural,
            name=subject.get("metadata", {}).get("name", target.name),
            namespace=target.namespace,
            object=obj,
            old_object=old,
            subresource=target.subresource,
            namespace_labels=namespace_labels,
            user_info=options.user or dict(ADMIN_USER),
            dry_run=options.dry_run,
            options=_options(operation, options),
        )
        mutated: Object | None = None
        if check_policies and mutating:
            # kube's MutatingAdmissionPolicy plugin runs before the mutating webhooks, which see its changes
            mutated = self.policies.mutate(request, namespace)
            if mutated is not None:
                request = dataclasses.replace(request, object=mutated)
        elif check_policies:  # kube's ValidatingAdmissionPolicy plugin runs before the validating webhooks
            self.policies.validate(request, namespace)
        if not configurations:
            return mutated
        if self._session is None:
            self._session = aiohttp.ClientSession()
        outcome = await dispatcher.admit(
            mutating=configurations if mutating else [],
            validating=[] if mutating else configurations,
            request=request,
            service_resolver=self._resolve,
            session=self._session,
            client_certificate=self.client_certificate,
        )
        if not outcome.allowed:
            raise errors.ApiError(outcome.status or errors.status(400, "BadRequest", "admission denied"))
        return outcome.obj if mutating else None

    def _param_resource(self, group: str, kind: str) -> tuple[resources.GroupResource, bool] | None:
        for resource in self._api.registry:
            if resource.group == group and resource.kind == kind:
                return resource.storage_key, resource.namespaced
        return None


def _options(operation: str, options: Options) -> Object:
    kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}.get(
        operation, ""
    )
    body: Object = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if options.manager and operation != "DELETE":
        body["fieldManager"] = options.manager
    if options.dry_run:
        body["dryRun"] = ["All"]
    return body
