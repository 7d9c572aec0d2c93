"""Who may read an endpoint of the operator, as the API server decides: TokenReview, then SubjectAccessReview.

The same two questions controller-runtime's secure metrics (`filters.WithAuthenticationAndAuthorization`) and
kube-rbac-proxy ask: the bearer token is sent to `authentication.k8s.io/v1` TokenReview (who is it?), and the
user it names to `authorization.k8s.io/v1` SubjectAccessReview with nonResourceAttributes (may it `get` this
path?). RBAC then decides, e.g. a ClusterRole with `nonResourceURLs: ["/metrics"]`, `verbs: ["get"]`.

No token is 401, a token the API server does not accept is 401, an authenticated user RBAC does not allow is
403, and a review the API server cannot answer is 500 (never served). Answers are cached briefly (a scrape every
few seconds must not cost two API calls): accepted tokens and decisions for `ttl` seconds, refusals for
`denied_ttl`, so a revoked binding or token takes effect within a minute, as with kube-rbac-proxy's cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import aiohttp

from superpod.cluster import client

JSON = dict[str, Any]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
CACHE_LIMIT = 4096  # entries of each cache
logger = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


@dataclasses.dataclass(frozen=True)
class Decision:
    status: int  # 200 allowed, 401 not authenticated, 403 not authorized, 500 the API server did not answer
    reason: str
    user: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header ('' when there is none)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class Reviewer:
    """Asks the API server who a token is and what it may do; remembers the answers briefly."""

    def __init__(
        self,
        api: client.KubeClient,
        *,
        ttl: float = 60.0,
        denied_ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        limit: int = CACHE_LIMIT,
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.denied_ttl = denied_ttl
        self.clock = clock
        self._users: _Cache[str, User | None] = _Cache(clock, limit)  # token digest -> the user, or None
        self._decisions: _Cache[tuple[User, str, str], bool] = _Cache(clock, limit)

    @property
    def remembered_tokens(self) -> int:
        """How many tokens' answers are cached (bounded by `limit`)."""
        return len(self._users)

    async def check(self, authorization: str | None, verb: str, path: str) -> Decision:
        token = bearer_token(authorization)
        if not token:
            return Decision(401, "a bearer token is required")
        try:
            user = await self._authenticate(token)
            if user is None:
                return Decision(401, "the token is not valid")
            if not await self._authorize(user, verb, path):
                return Decision(403, f'{user.name} may not {verb} the path "{path}"', user.name)
        except (client.ApiError, aiohttp.ClientConnectionError, TimeoutError) as error:
            logger.warning("could not review a request for %s: %s", path, error)
            return Decision(500, "the API server could not review the request")
        return Decision(200, "allowed", user.name)

    async def _authenticate(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._users.get(key)
        if cached is not None:
            return cached.value
        review = await self._review(
            TOKEN_REVIEWS,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = review.get("status") or {}
        user = None
        if status.get("authenticated"):
            info = status.get("user") or {}
            user = User(
                name=str(info.get("username") or ""),
                uid=str(info.get("uid") or ""),
                groups=tuple(info.get("groups") or ()),
                extra=tuple(sorted((k, tuple(v)) for k, v in (info.get("extra") or {}).items())),
            )
        self._users.put(key, user, self.ttl if user is not None else self.denied_ttl)
        return user

    async def _authorize(self, user: User, verb: str, path: str) -> bool:
        key = (user, verb, path)
        cached = self._decisions.get(key)
        if cached is not None:
            return cached.value
        spec: JSON = {
            "user": user.name,
            "groups": list(user.groups),
            "nonResourceAttributes": {"path": path, "verb": verb},
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        review = await self._review(
            ACCESS_REVIEWS,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, self.ttl if allowed else self.denied_ttl)
        return allowed

    async def _review(self, path: str, body: JSON) -> JSON:
        """A review is answered, never stored: repeating one after a broken connection is safe."""
        return await self.api.request("POST", path, body=body, retries=2)


@dataclasses.dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires: float


class _Cache(Generic[K, V]):
    """Answers until they expire; everything is dropped when it holds `limit` (a flood of bad tokens)."""

    def __init__(self, clock: Callable[[], float], limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.entries: dict[K, _Entry[V]] = {}

    def get(self, key: K) -> _Entry[V] | None:
        entry = self.entries.get(key)
        return entry if entry is not None and entry.expires > self.clock() else None

    def put(self, key: K, value: V, seconds: float) -> None:
        if len(self.entries) >= self.limit:
            self.entries.clear()
        self.entries[key] = _Entry(value, self.clock() + seconds)

    def __len__(self) -> int:
        return len(self.entries)
