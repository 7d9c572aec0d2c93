"""Admission webhooks called as kube-apiserver calls them: select, call over HTTPS, patch, decide.

`admit(mutating=..., validating=..., request=..., service_resolver=..., session=None)`:

- `mutating` / `validating`: the stored MutatingWebhookConfiguration / ValidatingWebhookConfiguration objects
  (admissionregistration.k8s.io/v1 JSON dicts, each with `webhooks`). Configurations run in name order, their
  webhooks in list order, as kube sorts them.
- `request`: an `AdmissionRequestInfo`: the operation, GVK, GVR, subresource, name, namespace, the object and old
  object (JSON dicts or None), the labels of the object's namespace (None for cluster-scoped objects), the
  user (`authentication.k8s.io/v1` UserInfo dict), dryRun and the operation's options.
- `service_resolver(namespace, name, port, path) -> str`: turns a `clientConfig.service` into the base URL to
  call (for example `https://127.0.0.1:8443/mutate`); the TLS certificate is then checked against
  `<name>.<namespace>.svc` with the `caBundle`, as kube does. `clientConfig.url` is called as written.
- `session`: an aiohttp session to reuse (pass one: TLS contexts are cached per caBundle, connections pooled).
- `client_certificate`: the certificate presented to every webhook (kube-apiserver's AdmissionConfiguration
  `kubeConfigFile`), for webhooks that verify their callers; None presents none.

Selection follows kube: `rules` (operations, apiGroups, apiVersions, resources with `*`, `*/*`, `pods/*` (pods and its
subresources, as kube's matcher does), `*/status`, and scope), `namespaceSelector` (against the namespace's labels; a Namespace object is matched by its
own labels; cluster-scoped objects always match), `objectSelector` (object or old object labels) and
`matchConditions` (CEL over `object`, `oldObject` and `request`). Each call POSTs an admission.k8s.io/v1
AdmissionReview to the URL with `?timeout=<n>s`, within `timeoutSeconds` (default 10).

Mutating webhooks run one after the other and their base64 JSONPatch responses are applied in order; then the
validating webhooks run concurrently. A denial answers the webhook's Status with the message
`admission webhook "<name>" denied the request: <message>` (code 400 when the webhook gave none below 400); a
failed call under `failurePolicy: Fail` (the default) answers 500 InternalError `failed calling webhook
"<name>": ...`, under `Ignore` it is skipped. A dry-run request refused by a webhook with side effects answers
400. Warnings of every response are collected.

Known differences: `reinvocationPolicy: IfNeeded` is ignored (each mutating webhook runs once); `matchPolicy:
Equivalent` matches the request's own group/version only; `matchConditions` have no `authorizer`, and one that
fails to evaluate counts as matching under `failurePolicy: Fail` (kube refuses the request) and as not matching
under `Ignore`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import dataclasses
import functools
import json
import ssl
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from superpod_sandbox.apiserver.schema import cel

ServiceResolver = Callable[[str, str, int, str], str]
JSON = Any


@dataclasses.dataclass(frozen=True)
class AdmissionRequestInfo:
    """What an admission request is about (becomes AdmissionReview.request)."""

    operation: str  # CREATE, UPDATE, DELETE or CONNECT
    group: str  # of the kind, "" for core
    version: str
    kind: str
    resource: str  # plural, e.g. pods
    name: str
    namespace: str  # "" for cluster-scoped objects
    object: dict[str, Any] | None  # None for DELETE
    old_object: dict[str, Any] | None = None  # for UPDATE and DELETE
    subresource: str = ""
    namespace_labels: dict[str, str] | None = (
        None  # labels of the object's namespace, None when cluster-scoped
    )
    user_info: dict[str, Any] = dataclasses.field(default_factory=lambda: {"username": "system:admin"})
    dry_run: bool = False
    options: dict[str, Any] | None = None  # CreateOptions, UpdateOptions or DeleteOptions as JSON
    uid: str = ""  # request uid; generated when empty


@dataclasses.dataclass(frozen=True)
class AdmissionOutcome:
    allowed: bool
    obj: dict[str, Any] | None  # the object after mutation (the input object when nothing patched it)
    status: dict[str, Any] | None  # the Status to return to the client when not allowed
    warnings: list[str]
    patched: bool  # a mutating webhook changed the object


@dataclasses.dataclass(frozen=True)
class ClientCertificate:
    """The certificate the API server presents to webhooks (kube-apiserver's AdmissionConfiguration
    `kubeConfigFile` with `client-certificate`/`client-key`), PEM."""

    cert_pem: bytes
    key_pem: bytes


class WebhookCallError(Exception):
    """Calling one webhook failed (transport, timeout, bad response)."""


async def admit(
    *,
    mutating: list[dict[str, Any]],
    validating: list[dict[str, Any]],
    request: AdmissionRequestInfo,
    service_resolver: ServiceResolver,
    session: aiohttp.ClientSession | None = None,
    client_certificate: ClientCertificate | None = None,
) -> AdmissionOutcome:
    """Run the matching mutating then validating webhooks; see the module docstring."""
    own_session = session is None
    client = session or aiohttp.ClientSession()
    try:
        return await _admit(mutating, validating, request, service_resolver, client, client_certificate)
    finally:
        if own_session:
            await client.close()


async def _admit(
    mutating: list[dict[str, Any]],
    validating: list[dict[str, Any]],
    request: AdmissionRequestInfo,
    resolver: ServiceResolver,
    session: aiohttp.ClientSession,
    certificate: ClientCertificate | None = None,
) -> AdmissionOutcome:
    uid = request.uid or str(uuid.uuid4())
    obj = copy.deepcopy(request.object) if request.object is not None else None
    warnings: list[str] = []
    patched = False
    for hook in _hooks(mutating):
        current = dataclasses.replace(request, object=obj, uid=uid)
        if not _matches(hook, current):
            continue
        if (refusal := _dry_run_refusal(hook, current)) is not None:
            return AdmissionOutcome(False, obj, refusal, warnings, patched)
        try:
            response = await _call(hook, current, resolver, session, certificate)
        except WebhookCallError as error:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                continue
            return AdmissionOutcome(False, obj, _internal_error(hook["name"], str(error)), warnings, patched)
        warnings.extend(response.get("warnings") or [])
        if not response.get("allowed"):
            return AdmissionOutcome(
                False, obj, _denied(hook["name"], response.get("status")), warnings, patched
            )
        if response.get("patch"):
            try:
                obj = _apply_response_patch(response, obj)
            except (ValueError, KeyError, IndexError, TypeError) as error:
                return AdmissionOutcome(
                    False, obj, _internal_error(hook["name"], str(error)), warnings, patched
                )
            patched = True

    final = dataclasses.replace(request, object=obj, uid=uid)
    selected = [hook for hook in _hooks(validating) if _matches(hook, final)]
    for hook in selected:
        if (refusal := _dry_run_refusal(hook, final)) is not None:
            return AdmissionOutcome(False, obj, refusal, warnings, patched)
    results = await asyncio.gather(
        *(_call_safely(hook, final, resolver, session, certificate) for hook in selected)
    )
    for result in results:
        if isinstance(result, dict):
            warnings.extend(result.get("warnings") or [])
    for hook, result in zip(selected, results, strict=True):
        if isinstance(result, WebhookCallError):
            if hook.get("failurePolicy", "Fail") != "Ignore":
                return AdmissionOutcome(
                    False, obj, _internal_error(hook["name"], str(result)), warnings, patched
                )
        elif not result.get("allowed"):
            return AdmissionOutcome(
                False, obj, _denied(hook["name"], result.get("status")), warnings, patched
            )
    return AdmissionOutcome(True, obj, None, warnings, patched)


def _hooks(configurations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(configurations, key=lambda c: c.get("metadata", {}).get("name", ""))
    return [hook for configuration in ordered for hook in configuration.get("webhooks") or []]


# ---------------------------------------------------------------------------------------------------
# selection


def _matches(hook: Mapping[str, Any], request: AdmissionRequestInfo) -> bool:
    return (
        any(rule_matches(rule, request) for rule in hook.get("rules") or [])
        and namespace_matches(hook.get("namespaceSelector"), request)
        and object_matches(hook.get("objectSelector"), request)
        and _conditions_match(hook, request)
    )


def rule_matches(rule: Mapping[str, Any], request: AdmissionRequestInfo) -> bool:
    operations = rule.get("operations") or []
    if "*" not in operations and request.operation not in operations:
        return False
    if not _listed(rule.get("apiGroups"), request.group) or not _listed(
        rule.get("apiVersions"), request.version
    ):
        return False
    if not any(
        _resource_matches(pattern, request.resource, request.subresource)
        for pattern in rule.get("resources") or []
    ):
        return False
    scope = str(rule.get("scope", "*"))
    return scope == "*" or (scope == "Namespaced") == _is_namespaced(request)


def _listed(values: list[str] | None, value: str) -> bool:
    listed = values or []
    return "*" in listed or value in listed


def _resource_matches(pattern: str, resource: str, subresource: str) -> bool:
    """kube's rule matcher: `pods` and `*` match no subresource; `pods/*` matches pods and all its subresources."""
    wanted_resource, _, wanted_sub = pattern.partition("/")
    return wanted_resource in ("*", resource) and wanted_sub in ("*", subresource)


def _is_namespace_object(request: AdmissionRequestInfo) -> bool:
    return request.group == "" and request.resource == "namespaces"


def _is_namespaced(request: AdmissionRequestInfo) -> bool:
    return bool(request.namespace) and not _is_namespace_object(request)


def _labels(obj: Mapping[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    return dict(obj.get("metadata", {}).get("labels") or {})


def namespace_matches(selector: Mapping[str, Any] | None, request: AdmissionRequestInfo) -> bool:
    if _is_namespace_object(request):
        labels = _labels(request.object if request.object is not None else request.old_object) or {}
        return selector_matches(selector, labels)
    if not _is_namespaced(request):
        return True  # the namespaceSelector does not apply to cluster-scoped objects
    return selector_matches(selector, request.namespace_labels or {})


def object_matches(selector: Mapping[str, Any] | None, request: AdmissionRequestInfo) -> bool:
    if not selector:
        return True
    candidates = [
        labels for labels in (_labels(request.object), _labels(request.old_object)) if labels is not None
    ]
    return any(selector_matches(selector, labels) for labels in candidates or [{}])


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector against labels; an absent or empty selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


MATCH_CONDITION_VARIABLES = frozenset({"object", "oldObject", "request", "params", "namespaceObject"})


@functools.lru_cache(maxsize=256)
def _condition_program(expression: str) -> cel.Program:
    return cel.compile_expression(expression, MATCH_CONDITION_VARIABLES)


def _conditions_match(hook: Mapping[str, Any], request: AdmissionRequestInfo) -> bool:
    conditions = hook.get("matchConditions") or []
    if not conditions:
        return True
    variables = {
        "object": cel.to_cel(request.object, None),
        "oldObject": cel.to_cel(request.old_object, None),
        "request": cel.to_cel(review_request(request), None),
    }
    for condition in conditions:
        try:
            result = _condition_program(condition["expression"]).evaluate(variables)
        except Exception:  # see the module docstring: approximated per failurePolicy
            return str(hook.get("failurePolicy", "Fail")) != "Ignore"
        if not bool(result):
            return False
    return True


def _dry_run_refusal(hook: Mapping[str, Any], request: AdmissionRequestInfo) -> dict[str, Any] | None:
    if request.dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        return status(400, "BadRequest", f'admission webhook "{hook["name"]}" does not support dry run')
    return None


# ---------------------------------------------------------------------------------------------------
# calling


def review_request(request: AdmissionRequestInfo) -> dict[str, Any]:
    kind = {"group": request.group, "version": request.version, "kind": request.kind}
    resource = {"group": request.group, "version": request.version, "resource": request.resource}
    body: dict[str, Any] = {
        "uid": request.uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": request.name,
        "namespace": request.namespace,
        "operation": request.operation,
        "userInfo": request.user_info,
        "object": request.object,
        "oldObject": request.old_object,
        "dryRun": request.dry_run,
        "options": request.options,
    }
    if request.subresource:
        body["subResource"] = body["requestSubResource"] = request.subresource
    return body


def _target(hook: Mapping[str, Any], resolver: ServiceResolver) -> tuple[str, str]:
    """(URL to POST, host name the certificate must carry)."""
    config = hook.get("clientConfig") or {}
    if config.get("url"):
        url = str(config["url"])
        return url, urlsplit(url).hostname or ""
    service = config.get("service") or {}
    namespace, name = service.get("namespace", ""), service.get("name", "")
    url = resolver(namespace, name, int(service.get("port", 443)), service.get("path", ""))
    return url, f"{name}.{namespace}.svc"


@functools.lru_cache(maxsize=64)
def _ssl_context(ca_bundle: str, certificate: ClientCertificate | None = None) -> ssl.SSLContext:
    if not ca_bundle:
        context = ssl.create_default_context()
    else:
        try:
            pem = base64.b64decode(ca_bundle).decode()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise WebhookCallError(f"invalid caBundle: {error}") from error
        context = ssl.create_default_context(cadata=pem)
    if certificate is not None:  # ssl loads a chain from files only
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert.write_bytes(certificate.cert_pem)
            key.write_bytes(certificate.key_pem)
            context.load_cert_chain(cert, key)
    return context


async def _call_safely(
    hook: Mapping[str, Any],
    request: AdmissionRequestInfo,
    resolver: ServiceResolver,
    session: aiohttp.ClientSession,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any] | WebhookCallError:
    try:
        return await _call(hook, request, resolver, session, certificate)
    except WebhookCallError as error:
        return error


async def _call(
    hook: Mapping[str, Any],
    request: AdmissionRequestInfo,
    resolver: ServiceResolver,
    session: aiohttp.ClientSession,
    certificate: ClientCertificate | None = None,
) -> dict[str, Any]:
    """POST the AdmissionReview; return its `response`, or raise WebhookCallError."""
    timeout = int(hook.get("timeoutSeconds") or 10)
    base, host = _target(hook, resolver)
    url = f"{base}{'&' if '?' in base else '?'}timeout={timeout}s"
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": review_request(request),
    }
    context = _ssl_context(str((hook.get("clientConfig") or {}).get("caBundle", "")), certificate)
    options: dict[str, Any] = {"ssl": context} if url.startswith("https:") else {}
    if options and host and host != urlsplit(url).hostname:
        options["server_hostname"] = host
    try:
        async with session.post(
            url,
            json=review,
            headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            **options,
        ) as answer:
            text = await answer.text()
            if answer.status >= 300:
                raise WebhookCallError(
                    f"failed to call webhook: the server responded with status {answer.status}: {text[:200]}"
                )
            body = json.loads(text)
    except TimeoutError as error:
        raise WebhookCallError(f'failed to call webhook: Post "{url}": context deadline exceeded') from error
    except aiohttp.ClientError as error:
        raise WebhookCallError(f'failed to call webhook: Post "{url}": {error}') from error
    except json.JSONDecodeError as error:
        raise WebhookCallError(f"received invalid webhook response: {error}") from error
    return _check_review(body, request.uid)


def _check_review(body: JSON, uid: str) -> dict[str, Any]:
    if (
        not isinstance(body, dict)
        or body.get("apiVersion") != "admission.k8s.io/v1"
        or body.get("kind") != "AdmissionReview"
    ):
        found = (
            f"{body.get('apiVersion', '')}, Kind={body.get('kind', '')}"
            if isinstance(body, dict)
            else type(body).__name__
        )
        raise WebhookCallError(
            f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {found}"
        )
    response = body.get("response")
    if not isinstance(response, dict):
        raise WebhookCallError("webhook response was absent")
    if response.get("uid") != uid:
        raise WebhookCallError(f'expected response.uid="{uid}", got "{response.get("uid", "")}"')
    return response


# ---------------------------------------------------------------------------------------------------
# outcomes


def status(code: int, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    """A metav1.Status failure."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
        **extra,
    }


def _denied(name: str, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """webhookerrors.ToStatusErr: the webhook's Status, code >= 400, message prefixed with who denied it."""
    given = dict(result or {})
    denied_by = f'admission webhook "{name}" denied the request'
    if given.get("message"):
        message = f"{denied_by}: {given['message']}"
    elif given.get("reason"):
        message = f"{denied_by}: {given['reason']}"
    else:
        message = f"{denied_by} without explanation"
    code = int(given.get("code") or 0)
    out = {**given, "kind": "Status", "apiVersion": "v1", "metadata": given.get("metadata") or {}}
    out.update({"status": "Failure", "message": message, "code": code if code >= 400 else 400})
    return out


def _internal_error(name: str, reason: str) -> dict[str, Any]:
    text = f'failed calling webhook "{name}": {reason}'
    return status(
        500, "InternalError", f"Internal error occurred: {text}", details={"causes": [{"message": text}]}
    )


def _apply_response_patch(response: Mapping[str, Any], obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if response.get("patchType", "JSONPatch") != "JSONPatch":
        raise ValueError(f"unsupported patch type {response.get('patchType')!r}")
    operations = json.loads(base64.b64decode(response["patch"]))
    if not isinstance(operations, list):
        raise ValueError("the webhook's patch is not a JSON Patch array")
    patched: JSON = copy.deepcopy(obj)
    for operation in operations:
        patched = _json_patch_step(patched, operation)
    return patched  # type: ignore[no-any-return]


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: JSON, parts: list[str]) -> JSON:
    node = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _json_patch_step(document: JSON, operation: Mapping[str, Any]) -> JSON:
    """One RFC 6902 operation (add, remove, replace, move, copy, test)."""
    op, parts = operation["op"], _pointer(operation["path"])
    if op == "test":
        current = _get(document, parts)
        if current != operation.get("value"):
            raise ValueError(f"test failed at {operation['path']}")
        return document
    if op in ("move", "copy"):
        source = _pointer(operation["from"])
        value = copy.deepcopy(_get(document, source))
        if op == "move":
            document = _remove(document, source)
        return _add(document, parts, value)
    if op == "remove":
        return _remove(document, parts)
    if op == "add":
        return _add(document, parts, copy.deepcopy(operation["value"]))
    if op == "replace":
        _get(document, parts)  # must exist
        return _add(_remove(document, parts), parts, copy.deepcopy(operation["value"]))
    raise ValueError(f"unknown JSON patch operation {op!r}")


def _get(document: JSON, parts: list[str]) -> JSON:
    node = document
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(document: JSON, parts: list[str], value: JSON) -> JSON:
    if not parts:
        return value
    parent = _parent(document, parts)
    key = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if key == "-" else int(key)
        if not 0 <= index <= len(parent):
            raise IndexError(f"index {index} out of range")
        parent.insert(index, value)
    else:
        parent[key] = value
    return document


def _remove(document: JSON, parts: list[str]) -> JSON:
    if not parts:
        return None
    parent = _parent(document, parts)
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return document
