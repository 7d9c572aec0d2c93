"""The HTTP face of the sandbox: parse kube's URL scheme and parameters, call `state`, answer JSON.

Paths: /api/v1/... (core) and /apis/<group>/<version>/..., then `[namespaces/<ns>/]<plural>[/<name>[/<sub>]]`.
Every served request is counted as (verb, group, resource, subresource, namespace) for RBAC checks.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import multidict
from aiohttp import web

from superpod_sandbox import codec
from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.formats import discovery, gnostic, openapi_served, protobuf
from superpod_sandbox.apiserver.identity import authn, rbac, reviews
from superpod_sandbox.apiserver.listwatch import listing, selectorparser, watchstream
from superpod_sandbox.apiserver.patches import patchverb
from superpod_sandbox.apiserver.registry import deletion, semantics
from superpod_sandbox.apiserver.registry.resources import REVIEW_KEYS, Resource
from superpod_sandbox.apiserver.registry.semantics import Options, State, Target
from superpod_sandbox.apiserver.subresources import binding, eviction, scaling

Object = dict[str, Any]
logger = logging.getLogger(__name__)
_DEPRECATION = web.RequestKey(
    "superpod_sandbox.apiserver.deprecation", str
)  # the Warning of a deprecated version
JSON_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
IDENTITY = web.RequestKey("superpod_sandbox.apiserver.identity", authn.Identity)  # who sent the request
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclasses.dataclass(frozen=True)
class Call:
    """One served API request, as RBAC sees it."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str  # "" for cluster-scoped requests and cluster-wide lists


def respond(
    body: Object,
    code: int = 200,
    warnings: list[str] | None = None,
    content_type: str = "application/json",
    *,
    stored: bool = False,
) -> web.Response:
    """`stored`: the body is a stored object (never changed), whose encoding the watchers of it share."""
    headers: multidict.CIMultiDict[str] = multidict.CIMultiDict({"Content-Type": content_type})
    for warning in warnings or ():
        headers.add("Warning", "299 - " + json.dumps(warning))
    encoded = watchstream.encoded(body) if stored else codec.dumps(body)
    # kube's JSON serializer ends every body with a newline
    return web.Response(body=encoded + b"\n", status=code, headers=headers)


def _resource_path(parts: list[str]) -> bool:
    """kube's RequestInfo: /api/<v>/<resource>... and /apis/<g>/<v>/<resource>... name resources."""
    return (parts[:1] == ["api"] and len(parts) > 2) or (parts[:1] == ["apis"] and len(parts) > 3)


class Router:
    def __init__(self, api: State, bookmark_interval: float, authenticator: authn.Authenticator) -> None:
        self.api = api
        self.authenticator = authenticator
        self.authorizer = rbac.Authorizer(api.store)
        self.bookmark_interval = bookmark_interval
        self.calls: collections.Counter[Call] = collections.Counter()
        self.openapi = openapi_served.OpenAPI(api.registry)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            request[IDENTITY] = self._authenticate(request)
            response = await self._dispatch(request)
        except errors.ApiError as failure:
            response = respond(failure.status, failure.code)
        except Exception as failure:  # a bug here must still answer as kube does: a 500 Status, logged
            logger.exception("internal error serving %s %s", request.method, request.path)
            internal = errors.internal(f"{type(failure).__name__}: {failure}")
            response = respond(internal.status, 500)
        deprecation = request.get(_DEPRECATION)
        if deprecation and not response.prepared:  # a watch stream has sent its headers already
            response.headers.add("Warning", "299 - " + json.dumps(deprecation))
        return response

    def _authenticate(self, request: web.Request) -> authn.Identity:
        transport = request.transport
        certificate = transport.get_extra_info("peercert") if transport is not None else None
        try:
            return self.authenticator.authenticate(request.headers.get("Authorization"), certificate)
        except authn.Unauthorized:
            raise errors.unauthorized() from None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not _resource_path(
            parts
        ):  # discovery, /version, /healthz, /openapi: authorized by path and method
            self._authorize(request, rbac.Attributes(request.method.lower(), path=request.path))
        accept = request.headers.get("Accept", "")
        registry = self.api.registry
        if not parts:
            return respond({"paths": ["/api", "/api/v1", "/apis", "/openapi/v2", "/openapi/v3", "/version"]})
        if parts == ["version"]:
            return respond(discovery.VERSION)
        if parts[0] in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if parts[0] == "openapi":
            return self._openapi(parts[1:], accept)
        if parts[0] == "api" and len(parts) == 1:
            kind = discovery.wants_aggregated(accept)
            if kind:
                version = "apidiscovery.k8s.io/v2beta1" if "v2beta1" in kind else "apidiscovery.k8s.io/v2"
                return respond(discovery.aggregated(registry, True, version), content_type=kind)
            return respond(discovery.api_versions(request.host))
        if parts[0] == "apis" and len(parts) == 1:
            kind = discovery.wants_aggregated(accept)
            if kind:
                version = "apidiscovery.k8s.io/v2beta1" if "v2beta1" in kind else "apidiscovery.k8s.io/v2"
                return respond(discovery.aggregated(registry, False, version), content_type=kind)
            return respond(discovery.api_groups(registry))
        if parts[0] == "apis" and len(parts) == 2:
            group_body = discovery.api_group(registry, parts[1])
            if group_body is None:
                raise errors.path_not_found()
            return respond(group_body)
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.path_not_found()
        if not rest:
            if request.method != "GET":
                raise errors.method_not_allowed(request.method.lower(), group, "")
            body = discovery.resource_list(registry, group, version)
            if body is None:
                raise errors.path_not_found()
            return respond(body)
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
            if not rest:
                raise errors.path_not_found()
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
        resource = registry.lookup(group, version, plural)
        if resource is None or len(rest) > 3:
            raise errors.path_not_found()
        served = resource.version(version)
        scalable = sub == "scale" and served is not None and served.scale
        if sub and sub != "status" and sub not in resource.extra_subresources and not scalable:
            raise errors.path_not_found()
        if sub == "status" and not resource.has_status(version):
            raise errors.path_not_found()
        target = Target(resource, version, namespace, name, sub)
        if served is not None and served.deprecation:
            request[_DEPRECATION] = served.deprecation
        return await self._resource_call(request, target, watch_prefix)

    def _openapi(self, parts: list[str], accept: str) -> web.StreamResponse:
        if parts == ["v2"]:
            document, encoded = self.openapi.v2()
            if "protobuf" in accept:
                return web.Response(body=encoded, content_type=gnostic.CONTENT_TYPE.replace("@", "."))
            return respond(document)
        body = self.openapi.answer(parts)
        if body is None:
            raise errors.path_not_found()
        return respond(body)

    def _options(self, request: web.Request) -> Options:
        query = request.query
        agent = request.headers.get("User-Agent", "")
        validation = query.get("fieldValidation", "Warn")
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(
                f"fieldValidation must be one of Strict, Warn, Ignore (got {validation})"
            )
        return Options(
            user=request[IDENTITY].user_info(),
            manager=query.get("fieldManager", agent.split("/", 1)[0] if agent else ""),
            field_validation=validation,
            dry_run=query.get("dryRun") == "All",
            force=query.get("force", "false").lower() == "true",
        )

    def _record(self, request: web.Request, verb: str, target: Target) -> None:
        """Count the call, then authorize it (a refused call is counted too: it was attempted)."""
        resource = target.resource
        self.calls[Call(verb, resource.group, resource.plural, target.subresource, target.namespace)] += 1
        attributes = rbac.Attributes(
            verb, resource.group, resource.plural, target.subresource, target.namespace, target.name
        )
        self._authorize(request, attributes)

    def _authorize(self, request: web.Request, attributes: rbac.Attributes) -> None:
        identity = request[IDENTITY]
        if not self.authorizer.authorize(identity, attributes).allowed:
            raise errors.forbidden_request(
                attributes.group, attributes.resource, attributes.name,
                rbac.forbidden_message(identity, attributes),
            )  # fmt: skip

    async def _read_body(self, request: web.Request, patch: bool = False) -> tuple[str, bytes]:
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        body = await request.read()
        accepted = PATCH_TYPES if patch else JSON_TYPES
        if content_type not in accepted and not (not patch and content_type in ("application/json", "")):
            raise errors.unsupported_media_type(content_type, list(accepted))
        return content_type, body

    async def _decoded_body(self, request: web.Request) -> Any:
        content_type, raw = await self._read_body(request)
        if content_type == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf.decode(raw)
            except protobuf.UnsupportedKind:
                raise errors.unsupported_media_type(
                    content_type, ["application/json", "application/yaml"]
                ) from None
            except protobuf.ProtobufError as failure:
                raise errors.bad_request(f"unable to decode protobuf body: {failure}") from None
        try:
            if content_type == "application/yaml":
                import yaml

                return yaml.safe_load(raw)
            return codec.loads(raw)
        except ValueError as failure:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {failure}") from None
        except Exception as failure:  # yaml.YAMLError and friends
            raise errors.bad_request(f"error decoding YAML: {failure}") from None

    async def _resource_call(
        self, request: web.Request, target: Target, watch_prefix: bool
    ) -> web.StreamResponse:
        method = request.method
        api = self.api
        resource = target.resource
        if target.subresource == "scale":
            return await self._scale(request, target)
        only = {"binding": "POST", "eviction": "POST", "finalize": "PUT", "token": "POST"}.get(
            target.subresource
        )
        if only is not None and method != only:
            raise errors.method_not_allowed(method.lower(), resource.group, resource.plural)
        if method == "GET":
            if target.name and not watch_prefix:
                self._record(request, "get", target)
                obj = api.get(target)
                if listing.wants_table(request.headers.get("Accept", "")):
                    return respond(
                        listing.table(
                            resource,
                            target.version,
                            [obj],
                            {"resourceVersion": obj["metadata"]["resourceVersion"]},
                            request.query.get("includeObject", "Metadata"),
                        )
                    )
                return respond(obj, stored=True)
            if watch_prefix or request.query.get("watch") in ("true", "1"):
                self._record(request, "watch", target)
                if target.name:
                    target = dataclasses.replace(target, name="")
                    name_selector = f"metadata.name={request.path.rstrip('/').rsplit('/', 1)[1]}"
                    return await watchstream.serve(
                        request, api, target, self.bookmark_interval, name_selector
                    )
                return await watchstream.serve(request, api, target, self.bookmark_interval)
            self._record(request, "list", target)
            return self._list(request, target)
        if method == "POST":
            if target.subresource == "binding":
                self._record(request, "create", target)
                return await self._bind(request, target)
            if target.subresource == "token":
                self._record(request, "create", target)
                body = await self._decoded_body(request) if request.can_read_body else {}
                answer = reviews.token_request(
                    target.namespace, target.name, body, api.store.get, self.authenticator
                )
                return respond(answer, 201)
            if target.subresource == "eviction":
                self._record(request, "create", target)
                body = await self._eviction_body(request)
                return respond(await eviction.evict(api, target, body, self._options(request)), 201)
            if target.name:
                raise errors.method_not_allowed("create", resource.group, resource.plural)
            self._record(request, "create", target)
            if resource.key in REVIEW_KEYS:
                review = reviews.answer(
                    resource.plural,
                    target.namespace,
                    await self._decoded_body(request),
                    request[IDENTITY],
                    self.authenticator,
                    self.authorizer,
                )
                return respond(review, 201)
            body = await self._decoded_body(request)
            outcome = await api.create(target, body, self._options(request))
            return respond(outcome.body, outcome.code, outcome.warnings, stored=True)
        if method == "PUT":
            if not target.name:
                raise errors.method_not_allowed("update", resource.group, resource.plural)
            self._record(request, "update", target)
            body = await self._decoded_body(request)
            outcome = await api.update(target, body, self._options(request))
            return respond(outcome.body, outcome.code, outcome.warnings, stored=True)
        if method == "PATCH":
            if not target.name:
                raise errors.method_not_allowed("patch", resource.group, resource.plural)
            self._record(request, "patch", target)
            content_type, raw = await self._read_body(request, patch=True)
            outcome = await patchverb.patch(api, target, content_type, raw, self._options(request))
            return respond(outcome.body, outcome.code, outcome.warnings, stored=True)
        if method == "DELETE":
            delete_options = await self._delete_options(request)
            if not isinstance(delete_options, dict):
                raise errors.bad_request("DeleteOptions must be an object")
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in request.query:
                    delete_options[key] = request.query[key]
            options = self._options(request)
            if target.name:
                self._record(request, "delete", target)
                outcome = await deletion.delete(api, target, delete_options, options)
                return respond(outcome.body, outcome.code)
            self._record(request, "deletecollection", target)
            items = self._select(request, target)
            targets = [
                dataclasses.replace(
                    target, namespace=o["metadata"].get("namespace", ""), name=o["metadata"]["name"]
                )
                for o in items
            ]
            await deletion.delete_collection(api, targets, delete_options, options)
            items, list_meta = listing.page(items, 0, None, api.store.resource_version)
            return respond(listing.list_body(resource, target.version, items, list_meta))
        raise errors.method_not_allowed(method.lower(), resource.group, resource.plural)

    async def _scale(self, request: web.Request, target: Target) -> web.StreamResponse:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(request.method)
        if verb is None:
            raise errors.method_not_allowed(
                request.method.lower(), target.resource.group, target.resource.plural
            )
        self._record(request, verb, target)
        current = scaling.read(self.api, target)
        if verb == "get":
            return respond(current)
        if verb == "update":
            wanted = await self._decoded_body(request)
        else:
            content_type, raw = await self._read_body(request, patch=True)
            wanted = scaling.patched(current, content_type, raw)
        return respond(await scaling.write(self.api, target, wanted, self._options(request)))

    async def _eviction_body(self, request: web.Request) -> Any:
        return await self._decoded_body(request)  # kubectl drain sends a protobuf Eviction

    async def _delete_options(self, request: web.Request) -> Any:
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if not raw.strip():
            return {}
        if content_type == protobuf.CONTENT_TYPE:  # client-go's typed clients (helm's release storage)
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as failure:
                raise errors.bad_request(f"unable to decode protobuf body: {failure}") from None
        try:
            return json.loads(raw)
        except ValueError as failure:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {failure}") from None

    @staticmethod
    def _selects(request: web.Request) -> bool:
        return bool(request.query.get("labelSelector") or request.query.get("fieldSelector"))

    @staticmethod
    def _predicate(request: web.Request, target: Target) -> Callable[[Object], bool] | None:
        return selectorparser.both(
            selectorparser.labels(request.query.get("labelSelector")),
            selectorparser.fields(request.query.get("fieldSelector"), target.resource.key),
        )

    def _select(self, request: web.Request, target: Target) -> list[Object]:
        predicate = self._predicate(request, target)
        name = selectorparser.exact_name(request.query.get("fieldSelector"))
        if name is not None and (target.namespace or not target.resource.namespaced):
            # metadata.name=<n> in one namespace (kubectl delete --wait, get -w <name>): one lookup, not a scan
            found = self.api.store.get(target.resource.storage_key, target.namespace, name)
            items = [found] if found is not None else []
        else:
            items = listing.candidates(
                self.api.store, target.resource, target.namespace, request.query.get("labelSelector")
            )
        if predicate is not None:
            items = [o for o in items if predicate(o)]
        return [semantics.present(o, target.version, target.resource) for o in items]

    def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        resource: Resource = target.resource
        rv = self.api.store.resource_version
        try:
            limit = int(request.query.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        token = request.query.get("continue")
        name = selectorparser.exact_name(request.query.get("fieldSelector"))
        if limit > 0 and name is None:
            # a page takes what it needs from where the last ended, in key order: 65,536 Nodes in pages of 500
            # would otherwise pass over (and select among) all of them for each page
            after = listing.decode_continue(token) if token else None
            predicate = self._predicate(request, target)
            found = list(itertools.islice(
                listing.selected_after(
                    self.api.store, resource, target.namespace, request.query.get("labelSelector"), predicate, after
                ),
                limit + 1,
            ))  # fmt: skip
            items = [semantics.present(o, target.version, resource) for o in found[:limit]]
            list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if len(found) > limit:
                last = found[limit - 1]["metadata"]
                key = (last.get("namespace", ""), last["name"])
                list_meta["continue"] = listing.encode_continue(rv, key)
                if not self._selects(request):  # kube leaves it unset when selectors make it unknown
                    list_meta["remainingItemCount"] = self.api.store.count_after(
                        resource.storage_key, target.namespace or None, key
                    )
        else:
            items = self._select(request, target)
            items, list_meta = listing.page(items, limit, token, rv)
        if listing.wants_table(request.headers.get("Accept", "")):
            return respond(
                listing.table(
                    resource,
                    target.version,
                    items,
                    list_meta,
                    request.query.get("includeObject", "Metadata"),
                )
            )
        return respond(listing.list_body(resource, target.version, items, list_meta))

    async def _bind(self, request: web.Request, target: Target) -> web.StreamResponse:
        await binding.bind(self.api, target, await self._decoded_body(request), self._options(request))
        return respond(errors.success({}) | {"code": 201}, 201)
