"""A SuperPod's Lease seen older than it is (a write's answer kept after the watch showed a later write) is read
again after the conflict it causes, so the SuperPod of a dead holder is taken at the next round, not refused for
ever (nobody writes that Lease again once its holder died)."""

from __future__ import annotations

from typing import Any

from superpod.cluster import client, leases
from superpod.controller import leasebook

NAMESPACE = "default"


def lease(name: str, holder: str, version: int, *, superpod: str | None = None, role: str) -> dict[str, Any]:
    written = leases.body(NAMESPACE, name, role, holder, 10, superpod=superpod)
    written["metadata"]["resourceVersion"] = str(version)
    return written


class FakeApi:
    """The Leases as the API server holds them: a replace of an older version is refused (409)."""

    def __init__(self, stored: dict[str, dict[str, Any]]) -> None:
        self.stored = stored
        self.version = 100

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        return self.stored.get(path.rpartition("/")[2])

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = path.rpartition("/")[2]
        if leases.version(body) != leases.version(self.stored[name]):
            raise client.ApiError(409, {"reason": "Conflict", "message": "the object has been modified"})
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.stored[name] = body
        return body


async def test_a_stale_copy_is_read_again_after_the_conflict_and_the_dead_holders_superpod_taken():
    shard = leases.superpod_name("bench-10")
    member = leases.member_name("r1")
    now = [0.0]
    taken_by_r1 = lease(shard, "r1", 7, superpod="bench-10", role=leases.SUPERPOD)
    dead_member = lease(member, "r1", 5, role=leases.MEMBER)
    api = FakeApi({shard: taken_by_r1, member: dead_member})
    book = leasebook.LeaseBook(
        api,  # type: ignore[arg-type]
        identity="r0",
        namespace=NAMESPACE,
        duration=10,
        changed=lambda: None,
        clock=lambda: now[0],
    )
    # r0's own letting go (version 6) kept after the watch had shown r1's take (version 7)
    book.seen[shard] = leasebook.Seen(lease(shard, "", 6, superpod="bench-10", role=leases.SUPERPOD), 0.0)
    book.seen[member] = leasebook.Seen(dead_member, 0.0)
    now[0] = 30.0  # r1 stopped renewing 30 s ago, three lease durations

    assert not await book.acquire("bench-10", live={"r0"})  # refused: the copy was stale
    assert leases.holder(book.seen[shard].lease) == "r1"  # read again
    assert await book.acquire("bench-10", live={"r0"})  # the next round takes it
    assert leases.holder(api.stored[shard]) == "r0"
