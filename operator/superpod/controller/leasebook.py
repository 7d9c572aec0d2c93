"""The shard Leases as this replica sees them, and its writes of them; `controller.shards` decides the writes.

Three kinds of write, each against the version last read, so two replicas never both win one (`cluster.leases`
has the names and bodies):

- `renew`: this replica's membership Lease, created on the first call, replaced on each later one;
- `acquire`: a SuperPod's Lease names this replica, only when it names nobody, this replica, or a replica that
  is gone: not alive as observed here (`alive`: its membership Lease changed within its `leaseDurationSeconds`
  by this replica's monotonic clock, never by the timestamps in it) and confirmed by a fresh read (`gone`);
- `let_go`: a Lease naming this replica names nobody (or is deleted with its SuperPod); `remove` deletes a
  deleted SuperPod's Lease whoever it names (the replica that tidies them up).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from superpod.cluster import client, leases, reflector

JSON = dict[str, Any]


@dataclasses.dataclass
class Seen:
    lease: JSON
    since: float  # monotonic: when this version of it was first seen here


class LeaseBook:
    """The Leases in one namespace (both roles), followed by a watch and updated by this replica's writes."""

    def __init__(
        self,
        api: client.KubeClient,
        *,
        identity: str,
        namespace: str,
        duration: float,
        changed: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.identity = identity
        self.namespace = namespace
        self.duration = duration
        self.changed = changed  # called on every Lease event: the caller balances again
        self.clock = clock
        self.seen: dict[str, Seen] = {}  # Lease name -> as last seen
        self.kept: dict[
            str, str
        ] = {}  # SuperPod -> its Lease's version when this replica's memory of it was good
        self._mine: JSON | None = None  # this replica's membership Lease as last written
        self._member = leases.member_name(identity)
        self.reflector = reflector.Reflector(
            api, leases.collection(namespace), self._event, label_selector=leases.ROLE_LABEL
        )

    def _event(self, key: str, old: JSON | None, new: JSON | None) -> None:
        name = key.rpartition("/")[2]
        if new is None:
            self.seen.pop(name, None)
        elif old is None or leases.version(old) != leases.version(new) or name not in self.seen:
            self.seen[name] = Seen(new, self.clock())
        self.changed()

    # ---- membership --------------------------------------------------------------------------------------

    async def renew(self, api: client.KubeClient | None = None) -> None:
        """Write this replica's membership Lease (replace the version last written, else read and replace),
        through `api` (default: the book's; the renewals have a client of their own, `shards.Renewals`)."""
        api = api or self.api
        path = leases.path(self.namespace, self._member)
        kind, me, seconds = leases.MEMBER, self.identity, self.duration
        try:
            if self._mine is None:
                raise client.ApiError(409, {})
            written = await api.replace(path, leases.body(self.namespace, self._member, kind, me, seconds,
                                                          previous=self._mine))  # fmt: skip
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise
            current = await api.get_or_none(path)
            new = leases.body(self.namespace, self._member, kind, me, seconds, previous=current)
            written = await (
                api.replace(path, new) if current else api.create(leases.collection(self.namespace), new)
            )
        self._mine = written

    async def leave(self) -> None:
        await self.api.delete(leases.path(self.namespace, self._member))

    def alive(self) -> set[str]:
        """The other replicas whose membership Lease changed within its duration, as observed here."""
        now = self.clock()
        alive = set()
        for seen in self.seen.values():
            if leases.role(seen.lease) != leases.MEMBER:
                continue
            holder = leases.holder(seen.lease)
            if (
                holder
                and holder != self.identity
                and now - seen.since < leases.duration(seen.lease, self.duration)
            ):
                alive.add(holder)
        return alive

    async def gone(self, replica: str) -> bool:
        """Confirm by a fresh read that `replica` stopped renewing: its Lease is gone or still as seen."""
        name = leases.member_name(replica)
        current = await self.api.get_or_none(leases.path(self.namespace, name))
        if current is None:
            return True
        seen = self.seen.get(name)
        if seen is None or leases.version(seen.lease) != leases.version(current):
            self.seen[name] = Seen(current, self.clock())
            return False
        return self.clock() - seen.since >= leases.duration(current, self.duration)

    # ---- SuperPod Leases ---------------------------------------------------------------------------------

    def keep(self, superpod: str) -> None:
        """This replica holds the SuperPod with a good memory of it, as of its Lease's current version."""
        seen = self.seen.get(leases.superpod_name(superpod))
        if seen is not None:
            self.kept[superpod] = leases.version(seen.lease)

    def untouched(self, superpod: str) -> bool:
        """Nobody wrote the SuperPod's Lease since `keep`: it still names this replica at that version, so no
        other replica took it (taking it is a write), and none wrote for the SuperPod meanwhile."""
        seen = self.seen.get(leases.superpod_name(superpod))
        return (
            seen is not None
            and leases.holder(seen.lease) == self.identity
            and self.kept.get(superpod) == leases.version(seen.lease)
        )

    def superpods(self) -> list[tuple[str, Seen]]:
        """(Lease name, as seen) of every SuperPod Lease."""
        return [
            (name, seen) for name, seen in self.seen.items() if leases.role(seen.lease) == leases.SUPERPOD
        ]

    async def acquire(self, superpod: str, live: set[str]) -> bool:
        """Write the SuperPod's Lease to name this replica, if nobody alive holds it; False if not taken."""
        name = leases.superpod_name(superpod)
        seen = self.seen.get(name)
        kind = leases.SUPERPOD
        try:
            if seen is None:
                new = leases.body(self.namespace, name, kind, self.identity, self.duration, superpod=superpod)
                written = await self.api.create(leases.collection(self.namespace), new)
            else:
                holder = leases.holder(seen.lease)
                if holder not in ("", self.identity) and (holder in live or not await self.gone(holder)):
                    return False
                new = leases.body(self.namespace, name, kind, self.identity, self.duration,
                                  superpod=superpod, previous=seen.lease)  # fmt: skip
                written = await self.api.replace(leases.path(self.namespace, name), new)
        except client.ApiError as error:
            if error.status == 409 and seen is not None:
                await self._refresh(name, seen)
            if error.status in (404, 409):
                return False  # someone else moved first; seen again at the next round
            raise
        self.seen[name] = Seen(written, self.clock())
        return True

    async def _refresh(self, name: str, seen: Seen) -> None:
        """After a conflict, the Lease as it is now. The copy seen can be older than the watch's: a write's
        answer kept after the watch had shown a later write (another replica taking it), and nobody writes a
        SuperPod's Lease again once its holder died, so without a read every take was refused (409) for ever."""
        current = await self.api.get_or_none(leases.path(self.namespace, name))
        if current is None:
            self.seen.pop(name, None)
        elif leases.version(current) != leases.version(seen.lease):
            self.seen[name] = Seen(current, self.clock())

    async def let_go(self, name: str, *, drop: bool) -> None:
        """A Lease naming this replica names nobody, or with `drop` (its SuperPod is deleted) is deleted."""
        seen = self.seen.get(name)
        if seen is None or leases.holder(seen.lease) != self.identity:
            return
        path = leases.path(self.namespace, name)
        try:
            if drop:
                await self.api.request(
                    "DELETE", path, body={"preconditions": {"resourceVersion": leases.version(seen.lease)}}
                )
                self.seen.pop(name, None)
            else:
                new = leases.body(self.namespace, name, leases.SUPERPOD, "", self.duration,
                                  superpod=leases.superpod_of(seen.lease), previous=seen.lease)  # fmt: skip
                self.seen[name] = Seen(await self.api.replace(path, new), self.clock())
        except client.ApiError as error:
            if error.status not in (404, 409):
                raise

    async def remove(self, name: str, seen: Seen) -> None:
        """Delete a Lease as seen (a deleted SuperPod's, whoever it names); a newer version stays."""
        with contextlib.suppress(client.ApiError):
            await self.api.request("DELETE", leases.path(self.namespace, name),
                                   body={"preconditions": {"resourceVersion": leases.version(seen.lease)}})  # fmt: skip
