"""`cluster.accessreview.Reviewer` against the sandbox's TokenReview, SubjectAccessReview and RBAC.

What the docs promise: answers are remembered for `ttl` seconds (refusals `denied_ttl`), so a removed binding
takes effect within that time and not before; a flood of forged tokens cannot grow the cache without bound. The
clock is the test's, so no test waits a minute.
"""

from __future__ import annotations

from superpod.cluster import accessreview, client

from tests.integration.operator.conftest import sandbox_cluster

ACCOUNTS = "/api/v1/namespaces/monitoring/serviceaccounts"
BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


async def _setup(api: client.KubeClient) -> str:
    await api.create("/api/v1/namespaces", {"metadata": {"name": "monitoring"}})
    await api.create(ACCOUNTS, {"metadata": {"name": "prometheus"}})
    role = {"metadata": {"name": "reader"}, "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}
    await api.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
    binding = {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}],
    }
    await api.create(BINDINGS, binding)
    answer = await api.create(f"{ACCOUNTS}/prometheus/token", {"spec": {}})
    return str(answer["status"]["token"])


async def test_a_removed_binding_takes_effect_once_the_cached_answer_expires():
    now = [0.0]
    async with sandbox_cluster() as (_, api):
        token = await _setup(api)
        reviewer = accessreview.Reviewer(api, ttl=60.0, denied_ttl=10.0, clock=lambda: now[0])
        allowed = await reviewer.check(f"Bearer {token}", "get", "/metrics")
        assert (allowed.status, allowed.user) == (200, "system:serviceaccount:monitoring:prometheus")
        assert (await reviewer.check(f"Bearer {token}", "get", "/debug")).status == 403  # the path matters
        await api.delete(f"{BINDINGS}/reader")
        now[0] = 59.0
        assert (await reviewer.check(f"Bearer {token}", "get", "/metrics")).status == 200  # still remembered
        now[0] = 61.0
        refused = await reviewer.check(f"Bearer {token}", "get", "/metrics")
        assert refused.status == 403 and "may not get" in refused.reason


async def test_forged_tokens_are_refused_and_do_not_grow_the_cache_without_bound():
    async with sandbox_cluster() as (_, api):
        token = await _setup(api)
        reviewer = accessreview.Reviewer(api, limit=8)
        for header in (None, "", "Basic dXNlcjpwYXNz", "Bearer", f"bearer {token}x"):
            assert (await reviewer.check(header, "get", "/metrics")).status == 401, header
        for index in range(20):  # a flood of forged tokens: each refused, the remembered refusals bounded
            assert (await reviewer.check(f"Bearer forged-{index}", "get", "/metrics")).status == 401
            assert reviewer.remembered_tokens <= 8
        assert (await reviewer.check(f"Bearer {token}", "get", "/metrics")).status == 200
