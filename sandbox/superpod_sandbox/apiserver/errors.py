"""Kubernetes `Status` failures, shaped byte for byte as kube-apiserver writes them.

Handlers raise `ApiError`; the HTTP layer turns it into a JSON `Status` body with the same code. The builders
below mirror k8s.io/apimachinery/pkg/api/errors (NewNotFound, NewAlreadyExists, NewConflict, NewInvalid, ...),
because clients (kopf, kubectl, the `kubernetes` client) branch on `reason`, `code` and `details`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One metav1.StatusCause: `reason` e.g. FieldValueInvalid, `message` the error body, `field` e.g. spec.x."""

    reason: str
    message: str
    field: str


class ApiError(Exception):
    """A failure to return to the client as a `Status` object."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", ""))
        self.status = status

    @property
    def code(self) -> int:
        code: int = self.status["code"]
        return code


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success(details: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def qualified(group: str, resource: str) -> str:
    """`configmaps` for the core group, `superpods.superpod.dev` otherwise (schema.GroupResource.String)."""
    return f"{resource}.{group}" if group else resource


def _details(group: str, resource: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(group: str, resource: str, name: str) -> ApiError:
    message = f'{qualified(group, resource)} "{name}" not found'
    return ApiError(status(404, "NotFound", message, _details(group, resource, name)))


def already_exists(group: str, resource: str, name: str) -> ApiError:
    message = f'{qualified(group, resource)} "{name}" already exists'
    return ApiError(status(409, "AlreadyExists", message, _details(group, resource, name)))


def conflict(group: str, resource: str, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {qualified(group, resource)} "{name}": {why}'
    return ApiError(status(409, "Conflict", message, _details(group, resource, name)))


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def stale(group: str, resource: str, name: str) -> ApiError:
    return conflict(group, resource, name, STALE)


def invalid(group: str, kind: str, name: str, causes: list[FieldError]) -> ApiError:
    """422 Invalid: `Kind.group "name" is invalid: field: message` (an aggregate in brackets when several)."""
    qualified_kind = f"{kind}.{group}" if group else kind
    texts = [f"{cause.field}: {cause.message}" if cause.field else cause.message for cause in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [
        {"reason": cause.reason, "message": cause.message, "field": cause.field} for cause in causes
    ]
    return ApiError(status(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {joined}', details))


def bad_request(message: str) -> ApiError:
    return ApiError(status(400, "BadRequest", message))


def forbidden(group: str, resource: str, name: str, why: str) -> ApiError:
    message = f'{qualified(group, resource)} "{name}" is forbidden: {why}'
    return ApiError(status(403, "Forbidden", message, _details(group, resource, name)))


def forbidden_request(group: str, resource: str, name: str, why: str) -> ApiError:
    """The authorizer's refusal (kube's NewForbidden): `pods "a" is forbidden: ...`, `pods is forbidden: ...`,
    or `forbidden: ...` for a non-resource path."""
    target = qualified(group, resource)
    if name:
        target = f'{target} "{name}"'
    message = f"{target} is forbidden: {why}" if target else f"forbidden: {why}"
    details: dict[str, Any] = {"name": name} if name else {}
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return ApiError(status(403, "Forbidden", message, details))


def unauthorized() -> ApiError:
    return ApiError(status(401, "Unauthorized", "Unauthorized"))


def method_not_allowed(verb: str, group: str, resource: str) -> ApiError:
    """A verb the resource has no route for: kube's generic 405 (the route table answers, not the resource)."""
    del verb, group, resource  # kube's generic answer names none of them
    message = "the server does not allow this method on the requested resource"
    return ApiError(status(405, "MethodNotAllowed", message, {}))


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    message = f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}"
    return ApiError(status(415, "UnsupportedMediaType", message))


def not_acceptable(accepted: list[str]) -> ApiError:
    message = f"only the following media types are accepted: {', '.join(accepted)}"
    return ApiError(status(406, "NotAcceptable", message))


def expired(message: str) -> ApiError:
    return ApiError(status(410, "Expired", message))


def gone(message: str) -> ApiError:
    return ApiError(status(410, "Gone", message))


def path_not_found() -> ApiError:
    return ApiError(status(404, "NotFound", "the server could not find the requested resource", {}))


def internal(message: str) -> ApiError:
    return ApiError(status(500, "InternalError", message, {"causes": [{"message": message}]}))


def timeout(message: str) -> ApiError:
    return ApiError(status(504, "Timeout", message))
