"""ObjectMeta rules kube-apiserver enforces on every write: names, generateName, labels, immutable fields."""

from __future__ import annotations

import functools
import os
import random
import re
import string
import threading
import uuid
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.errors import FieldError

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's utilrand alphabet: no vowels, no 0/1/3

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


_RANDOM = bytearray()  # os.urandom read 4 KiB at a time: one system call per 256 uids, not one each
_RANDOM_LOCK = threading.Lock()  # sandboxes in threads (`server.in_thread`) share it


def new_uid() -> str:
    """A random (version 4) UUID, as `str(uuid.uuid4())` makes it."""
    with _RANDOM_LOCK:
        if len(_RANDOM) < 16:
            _RANDOM[:] = os.urandom(4096)
        raw = bytes(_RANDOM[-16:])
        del _RANDOM[-16:]
    return str(uuid.UUID(bytes=raw, version=4))


def generated_name(prefix: str) -> str:
    return prefix[:58] + "".join(random.choices(_SUFFIX_ALPHABET, k=5))


def name_errors(name: str, dns_label: bool) -> list[FieldError]:
    if dns_label:
        if len(name) > 63:
            return [
                FieldError(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be no more than 63 characters',
                    "metadata.name",
                )
            ]
        if not _LABEL.fullmatch(name):
            return [
                FieldError("FieldValueInvalid", f'Invalid value: "{name}": {LABEL_MESSAGE}', "metadata.name")
            ]
        return []
    if len(name) > 253:
        return [
            FieldError(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be no more than 253 characters',
                "metadata.name",
            )
        ]
    if not _SUBDOMAIN.fullmatch(name):
        return [
            FieldError("FieldValueInvalid", f'Invalid value: "{name}": {SUBDOMAIN_MESSAGE}', "metadata.name")
        ]
    return []


@functools.lru_cache(maxsize=4096)  # label and annotation keys repeat on every object of a kind
def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def label_errors(meta: dict[str, Any]) -> list[FieldError]:
    found: list[FieldError] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [FieldError("FieldValueInvalid", "Invalid value: labels must be a map", "metadata.labels")]
    for key, value in labels.items():
        if not _qualified_name_ok(key):
            found.append(
                FieldError(
                    "FieldValueInvalid",
                    f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    "metadata.labels",
                )
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            found.append(
                FieldError(
                    "FieldValueInvalid",
                    f"Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    "metadata.labels",
                )
            )
    annotations = meta.get("annotations") or {}
    for key, value in annotations.items() if isinstance(annotations, dict) else ():
        if not _qualified_name_ok(key):
            found.append(
                FieldError(
                    "FieldValueInvalid",
                    f"Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    "metadata.annotations",
                )
            )
        if not isinstance(value, str):
            found.append(
                FieldError(
                    "FieldValueInvalid",
                    "Invalid value: annotation values must be strings",
                    "metadata.annotations",
                )
            )
    return found


def reference_errors(meta: dict[str, Any]) -> list[FieldError]:
    """finalizers must be qualified names; ownerReferences need apiVersion, kind, name and uid (kube's rules)."""
    found: list[FieldError] = []
    finalizers = meta.get("finalizers") or []
    if not finalizers and not meta.get("ownerReferences"):
        return found
    if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
        return [
            FieldError(
                "FieldValueInvalid",
                "Invalid value: finalizers must be a list of strings",
                "metadata.finalizers",
            )
        ]
    for finalizer in finalizers:
        if not _qualified_name_ok(finalizer):
            found.append(
                FieldError(
                    "FieldValueInvalid",
                    f"Invalid value: \"{finalizer}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    "metadata.finalizers",
                )
            )
    references = meta.get("ownerReferences") or []
    if not isinstance(references, list) or not all(isinstance(r, dict) for r in references):
        return [
            *found,
            FieldError(
                "FieldValueInvalid",
                "Invalid value: ownerReferences must be a list of objects",
                "metadata.ownerReferences",
            ),
        ]
    for reference in references:
        for field in ("apiVersion", "kind", "name", "uid"):
            if not reference.get(field):
                found.append(
                    FieldError(
                        "FieldValueInvalid",
                        f'Invalid value: "": {field} must not be empty',
                        f"metadata.ownerReferences.{field}",
                    )
                )
    return found


def require_name(kind: str, group: str, meta: dict[str, Any]) -> None:
    if not meta.get("name") and not meta.get("generateName"):
        raise errors.invalid(
            group,
            kind,
            "",
            [
                FieldError(
                    "FieldValueRequired", "Required value: name or generateName is required", "metadata.name"
                )
            ],
        )


def random_token(length: int = 8) -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=length))
