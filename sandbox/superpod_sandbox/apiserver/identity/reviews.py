"""The review APIs, answered from the sandbox's identities and RBAC (never stored), and TokenRequest.

- authentication.k8s.io/v1 TokenReview (`spec.token`, `spec.audiences`) and SelfSubjectReview
  (`kubectl auth whoami`);
- authorization.k8s.io/v1 SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview
  (`kubectl auth can-i`) and SelfSubjectRulesReview (`kubectl auth can-i --list`);
- `serviceaccounts/<name>/token` (TokenRequest, `kubectl create token`): a token for that ServiceAccount.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError
from superpod_sandbox.apiserver.identity import authn
from superpod_sandbox.apiserver.identity.authn import Authenticator, Identity
from superpod_sandbox.apiserver.identity.rbac import Attributes, Authorizer

Object = dict[str, Any]
MIN_EXPIRATION = 600  # kube refuses shorter TokenRequests


def _timestamp(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body(body: Any, kind: str) -> Object:
    if not isinstance(body, dict):
        raise errors.bad_request(f"a {kind} must be an object")
    return {**body, "metadata": body.get("metadata") or {"creationTimestamp": None}}


def answer(
    plural: str,
    namespace: str,
    body: Any,
    identity: Identity,
    authenticator: Authenticator,
    authorizer: Authorizer,
) -> Object:
    """The review `body` answered for a request from `identity`."""
    if plural == "tokenreviews":
        return _token_review(_body(body, "TokenReview"), authenticator)
    if plural == "selfsubjectreviews":
        review = _body(body, "SelfSubjectReview")
        return {**review, "status": {"userInfo": identity.user_info()}}
    if plural == "selfsubjectrulesreviews":
        return _rules_review(_body(body, "SelfSubjectRulesReview"), identity, authorizer)
    review = _body(body, "SubjectAccessReview")
    spec = review.get("spec") or {}
    if plural == "subjectaccessreviews" or plural == "localsubjectaccessreviews":
        subject = _subject(spec, review.get("kind") or "SubjectAccessReview")
    else:
        subject = identity
    if plural == "localsubjectaccessreviews":
        wanted = (spec.get("resourceAttributes") or {}).get("namespace", "")
        if wanted != namespace:
            raise errors.bad_request(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
    decision = authorizer.authorize(subject, _attributes(spec, review.get("kind") or "SubjectAccessReview"))
    status: Object = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {**review, "status": status}


def _token_review(review: Object, authenticator: Authenticator) -> Object:
    spec = review.get("spec") or {}
    audiences = list(spec.get("audiences") or [authn.API_AUDIENCE])
    try:
        identity = authenticator.token_identity(str(spec.get("token") or ""), audiences)
    except authn.Unauthorized as refusal:
        return {**review, "status": {"user": {}, "error": f"[{refusal}]"}}
    return {
        **review,
        "status": {"authenticated": True, "user": identity.user_info(), "audiences": audiences},
    }


def _subject(spec: Mapping[str, Any], kind: str) -> Identity:
    user, groups = str(spec.get("user") or ""), list(spec.get("groups") or [])
    if not user and not groups:
        raise errors.invalid(
            "authorization.k8s.io", kind, "",
            [FieldError("FieldValueInvalid", 'Invalid value: "": at least one of user or group must be specified', "spec.user")],
        )  # fmt: skip
    extra = tuple((key, tuple(values)) for key, values in sorted((spec.get("extra") or {}).items()))
    return Identity(user, uid=str(spec.get("uid") or ""), groups=tuple(groups), extra=extra)


def _attributes(spec: Mapping[str, Any], kind: str) -> Attributes:
    resource: Mapping[str, Any] = spec.get("resourceAttributes") or {}
    non_resource: Mapping[str, Any] = spec.get("nonResourceAttributes") or {}
    if bool(resource) == bool(non_resource):
        raise errors.invalid(
            "authorization.k8s.io", kind, "",
            [FieldError("FieldValueRequired", "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified", "spec.resourceAttributes")],
        )  # fmt: skip
    if non_resource:
        return Attributes(verb=str(non_resource.get("verb", "")), path=str(non_resource.get("path", "")))
    return Attributes(
        verb=str(resource.get("verb", "")),
        group=str(resource.get("group", "")),
        resource=str(resource.get("resource", "")),
        subresource=str(resource.get("subresource", "")),
        namespace=str(resource.get("namespace", "")),
        name=str(resource.get("name", "")),
    )


def _rules_review(review: Object, identity: Identity, authorizer: Authorizer) -> Object:
    namespace = str((review.get("spec") or {}).get("namespace") or "")
    if not namespace:
        raise errors.bad_request("no namespace on request")
    resource_rules: list[Object] = []
    non_resource_rules: list[Object] = []
    for rule in authorizer.rules(identity, namespace):
        if rule.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
            )
        else:
            entry = {
                key: rule[key]
                for key in ("verbs", "apiGroups", "resources", "resourceNames")
                if rule.get(key)
            }
            entry.setdefault("verbs", [])
            resource_rules.append(entry)
    status = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
    return {**review, "status": status}


def token_request(
    namespace: str, name: str, body: Any, objects_get: Any, authenticator: Authenticator
) -> Object:
    """A TokenRequest for the ServiceAccount `namespace/name`, answered with its token."""
    account = objects_get(authn.SERVICE_ACCOUNTS, namespace, name)
    if account is None:
        raise errors.not_found("", "serviceaccounts", name)
    request = _body(
        body if body else {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1"}, "TokenRequest"
    )
    spec = dict(request.get("spec") or {})
    expiration = int(spec.get("expirationSeconds") or 3600)
    if expiration < MIN_EXPIRATION:
        raise errors.invalid(
            "authentication.k8s.io", "TokenRequest", name,
            [FieldError("FieldValueInvalid", f"Invalid value: {expiration}: may not specify a duration less than 10 minutes", "spec.expirationSeconds")],
        )  # fmt: skip
    audiences = list(spec.get("audiences") or [authn.API_AUDIENCE])
    spec.update({"audiences": audiences, "expirationSeconds": expiration})
    issued = authenticator.issue(namespace, name, account["metadata"]["uid"], audiences, expiration)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": issued.token, "expirationTimestamp": _timestamp(issued.expires)},
    }
