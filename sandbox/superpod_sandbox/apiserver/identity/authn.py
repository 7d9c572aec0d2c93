"""Authentication: who a request comes from, decided from its credentials as kube-apiserver decides it.

Three authenticators, tried in kube's order (the first that recognises the credentials wins):

- client certificates (`--tls` only): a certificate signed by the sandbox's client CA is the user named by its
  Common Name, in the groups named by its Organizations (`Sandbox.user_kubeconfig` makes one);
- the static token file (kube's `--token-auth-file`): `add_token(token, user, groups)`; the sandbox's own
  kubeconfig token `sandbox` is `system:admin` in `system:masters`;
- ServiceAccount tokens issued through the TokenRequest API (`serviceaccounts/<name>/token`): signed JWTs
  naming the ServiceAccount and its uid, with an audience and an expiry; a token whose ServiceAccount was
  deleted (or recreated: another uid), whose signature does not verify, that has expired or that was issued
  for another audience is refused.

A request nobody recognises is refused (401 Unauthorized) and a request without credentials is
`system:anonymous` in `system:unauthenticated`, as in kube, when the sandbox is strict. A lenient sandbox (the
default, so tools and tests that predate identities keep working) takes both for `system:admin`; JWT-shaped
tokens (three dot-separated parts) are always checked, so an expired or forged ServiceAccount token is a 401
either way.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

from superpod_sandbox.apiserver.storage import store

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"  # kube's default --api-audiences
ISSUER = API_AUDIENCE
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNTS: tuple[str, str] = ("", "serviceaccounts")


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated user: kube's user.Info."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def user_info(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 UserInfo, as admission requests and reviews carry it."""
        info: dict[str, Any] = {"username": self.name}
        if self.uid:
            info["uid"] = self.uid
        if self.groups:
            info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {key: list(values) for key, values in self.extra}
        return info


ADMIN = Identity("system:admin", groups=("system:masters", AUTHENTICATED))
ANONYMOUS = Identity("system:anonymous", groups=("system:unauthenticated",))


class Unauthorized(Exception):
    """Credentials were presented and are not valid: kube answers 401 Unauthorized."""


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_identity(namespace: str, name: str, uid: str) -> Identity:
    return Identity(
        service_account_user(namespace, name),
        uid=uid,
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


def user_identity(name: str, groups: Iterable[str] = ()) -> Identity:
    """A user as kube's token and x509 authenticators give it: its groups plus system:authenticated."""
    listed = [group for group in groups if group != AUTHENTICATED]
    return Identity(name, groups=(*listed, AUTHENTICATED))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    token: str
    expires: float  # epoch seconds


class Authenticator:
    """The sandbox's authenticators and the key its ServiceAccount tokens are signed with."""

    def __init__(self, objects: store.Store, strict: bool = False) -> None:
        self._store = objects
        self.strict = strict
        self._tokens: dict[str, Identity] = {"sandbox": ADMIN}
        self._key = secrets.token_bytes(32)
        self._kid = secrets.token_hex(8)

    # static tokens ------------------------------------------------------------------------------------

    def add_token(self, token: str, user: str, groups: Iterable[str] = (), uid: str = "") -> Identity:
        """A line of kube's --token-auth-file: `token` authenticates as `user` in `groups`."""
        identity = dataclasses.replace(user_identity(user, groups), uid=uid)
        self._tokens[token] = identity
        return identity

    def new_user_token(self, user: str, groups: Iterable[str] = ()) -> str:
        token = secrets.token_urlsafe(24)
        self.add_token(token, user, groups)
        return token

    # ServiceAccount tokens ----------------------------------------------------------------------------

    def issue(
        self,
        namespace: str,
        name: str,
        uid: str,
        audiences: Iterable[str] = (API_AUDIENCE,),
        expiration_seconds: float = 3600,
    ) -> IssuedToken:
        """A signed token for the ServiceAccount `namespace/name` (whose uid is `uid`)."""
        now = time.time()
        expires = now + expiration_seconds
        header = {"alg": "HS256", "kid": self._kid, "typ": "JWT"}
        claims = {
            "iss": ISSUER,
            "sub": service_account_user(namespace, name),
            "aud": list(audiences),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(expires),
            "jti": secrets.token_hex(8),
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        signing_input = f"{_b64(_compact(header))}.{_b64(_compact(claims))}"
        return IssuedToken(f"{signing_input}.{self._sign(signing_input)}", expires)

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest())

    def _service_account(self, token: str, audiences: Iterable[str]) -> Identity:
        """The ServiceAccount a JWT names, or Unauthorized with kube's reason."""
        parts = token.split(".")
        if len(parts) != 3:
            raise Unauthorized("invalid bearer token")
        signing_input = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signing_input), parts[2]):
            raise Unauthorized("invalid bearer token, square/go-jose: error in cryptographic primitive")
        try:
            claims = json.loads(_unb64(parts[1]))
            scope = claims["kubernetes.io"]
            namespace, account = scope["namespace"], scope["serviceaccount"]
            name, uid = account["name"], account["uid"]
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("invalid bearer token") from None
        if float(claims.get("exp", 0)) < time.time():
            raise Unauthorized("invalid bearer token, service account token has expired")
        if not set(claims.get("aud") or []) & set(audiences):
            raise Unauthorized("invalid bearer token, token audiences don't match")
        found = self._store.get(SERVICE_ACCOUNTS, namespace, name)
        if found is None or found["metadata"].get("deletionTimestamp"):
            raise Unauthorized(f"invalid bearer token, service account {namespace}/{name} has been deleted")
        if found["metadata"].get("uid") != uid:
            raise Unauthorized(
                f"invalid bearer token, service account UID ({uid}) does not match claim "
                f"({found['metadata'].get('uid')})"
            )
        return service_account_identity(namespace, name, uid)

    # deciding -----------------------------------------------------------------------------------------

    def token_identity(self, token: str, audiences: Iterable[str] = (API_AUDIENCE,)) -> Identity:
        """The identity a bearer token authenticates as (TokenReview asks this too); Unauthorized if none."""
        known = self._tokens.get(token)
        if known is not None:
            return known
        return self._service_account(token, audiences)

    def authenticate(self, authorization: str | None, peer_certificate: Mapping[str, Any] | None) -> Identity:
        """The request's identity from its Authorization header and TLS client certificate."""
        if peer_certificate:
            certificate_identity = _certificate_identity(peer_certificate)
            if certificate_identity is not None:
                return certificate_identity
        if not authorization:
            return ANONYMOUS if self.strict else ADMIN
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            if self.strict:
                raise Unauthorized("invalid authorization header")
            return ADMIN
        try:
            return self.token_identity(token)
        except Unauthorized:
            if self.strict or token.count(".") == 2:
                raise
            return ADMIN


def _certificate_identity(certificate: Mapping[str, Any]) -> Identity | None:
    """CN is the user, each O a group (kube's x509 authenticator); the TLS layer has verified the chain."""
    common_name = ""
    organizations: list[str] = []
    for rdn in certificate.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                common_name = value
            elif key == "organizationName":
                organizations.append(value)
    if not common_name:
        return None
    return user_identity(common_name, organizations)
