"""Sharding by SuperPod: every replica reads everything and serves the webhook; each SuperPod is written by one.

Ownership rests on coordination.k8s.io Leases (`cluster.leases`, read and written through `leasebook`): a
membership Lease per replica, renewed every `retry_period` seconds, says who is alive; a Lease per SuperPod names
its owner. Which replica should own a
SuperPod is computed, not negotiated (`rendezvous.assign` over the live replicas: even, and few moves when one
joins or leaves). The SuperPod Leases make the moves safe:

- a replica takes a SuperPod only with a write of its Lease carrying the resourceVersion it read, and only when
  the Lease names nobody, names itself, or names a replica that is gone (its membership Lease deleted, or
  unchanged for its `leaseDurationSeconds` as this replica observed it, confirmed by a fresh read);
- a replica gives a SuperPod away (to the replica that should own it, once that one is alive) by stopping its
  writers first (`lost`: the SuperPod's daemon, its workers and every write they have in flight) and only then
  writing the Lease to name nobody; on a clean shutdown it does so for all, then deletes its membership Lease;
- fencing, as client-go's leader election: a replica whose last successful renewal began more than
  `renew_deadline` seconds ago (below `lease_duration`) writes nothing for any SuperPod: every write of a
  SuperPod's work passes `guard`, which checks just before each attempt. When it renews again it first drops
  every SuperPod and takes them back through their Leases like any other replica. A paused process (SIGSTOP)
  wakes up fenced, since the monotonic clock ran on.
- the renewals run on a thread of their own, with their own event loop and their own connection to the API
  server (`Renewals`), as kube-controller-manager gives leader election a client of its own: a burst of work on
  the operator's loop (a long admission pass, thousands of placements queued on the shared connection pool)
  never delays a renewal past its deadline, which would fence the replica for nothing. The fence itself is
  unchanged: it judges the renewals, wherever they run, and a renewal that finds the Lease had lapsed keeps
  the replica fenced until the operator's loop has dropped every SuperPod and abandoned every take in flight
  (`_lapse`).
- after taking SuperPods, their memory is rebuilt from a fresh list of partitions (`reload`), so nothing the
  previous owner wrote just before it let go is missed by a lagging watch; after letting one go, `released`
  drops what only its owner keeps (the fleet's model of it: inventory, tree, allocator).

What is written under a SuperPod's ownership runs with `writing_for` set to it (the kopf handlers, the daemon
and the workers it starts); the admission webhook's claims are not: the API server calls any replica, and
claims are guarded by the partition's resourceVersion (`binder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator
from typing import Any, Protocol

import kopf
from kopf._cogs.aiokits import aioenums  # kopf's own stop flag, so the workers keep their `stopped` API

from superpod.cluster import client, leases
from superpod.controller import kopfkit, leasebook, rendezvous

Run = Callable[[kopf.DaemonStopped], Awaitable[None]]
RELEASE_WAIT = 10.0  # seconds a SuperPod's writers get to stop before its Lease is given up anyway
RENEWAL_CONNECTIONS = 2  # the renewal thread's own pool: a renewal, and the read after a conflict
logger = logging.getLogger(__name__)

writing_for: contextvars.ContextVar[str | None] = contextvars.ContextVar("writing_for", default=None)
"""The SuperPod whose work the current task writes (None: not a SuperPod's work, e.g. admission)."""


class Fenced(client.ApiError):
    """A write this replica may not send: it does not own the SuperPod (now), or cannot renew its Lease."""

    def __init__(self, superpod: str, why: str) -> None:
        super().__init__(423, {"reason": "Fenced", "message": f"not writing for SuperPod {superpod}: {why}"})


class Ownership(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def owns(self, superpod: str) -> bool: ...

    def writing(self, superpod: str) -> contextlib.AbstractContextManager[None]: ...

    async def serve(self, superpod: str, stopped: kopf.DaemonStopped, run: Run) -> None: ...


class Solo:
    """A single replica (standalone), or the active one of kopf peering: it owns every SuperPod."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def owns(self, superpod: str) -> bool:
        return True

    @contextlib.contextmanager
    def writing(self, superpod: str) -> Iterator[None]:
        yield

    async def serve(self, superpod: str, stopped: kopf.DaemonStopped, run: Run) -> None:
        await run(stopped)


@dataclasses.dataclass
class Tenure:
    """One SuperPod while this replica owns it."""

    lost: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # stop writing: it is being let go
    users: int = 0  # the daemon while it runs, and each write in flight
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.users += 1
        self.idle.clear()

    def leave(self) -> None:
        self.users -= 1
        if self.users == 0:
            self.idle.set()


def default_identity() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class Shards:
    """This replica's share of the SuperPods, kept on Leases."""

    def __init__(
        self,
        api: client.KubeClient,
        *,
        identity: str,
        namespace: str,
        superpods: Callable[[], Collection[str]],
        reload: Callable[[list[str]], Awaitable[None]],
        released: Callable[[str], None] = lambda superpod: None,
        duration: float = 10.0,
        renew_deadline: float = 7.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.identity = identity
        self.namespace = namespace
        self.superpods = superpods
        self.reload = reload
        self.released = released  # told of a SuperPod whose Lease this replica let go (its memory may go)
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.held: dict[str, Tenure] = {}
        self.renewed_at: float | None = None  # monotonic start of the last successful renewal
        # lapses the renewals saw (on their thread), and how many of them the loop has acted on (every SuperPod
        # dropped): fenced while one is not acted on yet
        self.lapses = 0
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._renewals: Renewals | None = None
        self.changed = asyncio.Event()  # held SuperPods or the Leases changed: balance again
        self._opened: dict[str, asyncio.Event] = {}  # SuperPod -> set when this replica takes it (its daemon)
        self.epoch = 0  # counts the times this replica dropped everything (fenced)
        self._tasks: list[asyncio.Task[None]] = []
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self.book = leasebook.LeaseBook(
            api,
            identity=identity,
            namespace=namespace,
            duration=duration,
            changed=self.changed.set,
            clock=clock,
        )

    # ---- what the rest of the operator asks ------------------------------------------------------------

    def fenced(self) -> bool:
        """May this replica write nothing for any SuperPod now? (Read on the renewal thread too.)"""
        renewed = self.renewed_at
        return self.dropped < self.lapses or renewed is None or self.clock() - renewed > self.renew_deadline

    def owns(self, superpod: str) -> bool:
        """May this replica write for `superpod` now? A name no SuperPod has goes to its rendezvous choice."""
        if self.fenced():
            return False
        tenure = self.held.get(superpod)
        if tenure is not None:
            return not tenure.lost.is_set()
        if superpod in self.superpods():
            return False
        return rendezvous.preference(superpod, self.live())[0] == self.identity

    def owned(self) -> list[str]:
        return sorted(name for name in self.held if self.owns(name))

    @contextlib.contextmanager
    def writing(self, superpod: str) -> Iterator[None]:
        token = writing_for.set(superpod)
        try:
            yield
        finally:
            writing_for.reset(token)

    @contextlib.contextmanager
    def guard(self, method: str, path: str) -> Iterator[Callable[[], None]]:
        """`client.KubeClient.write_guard`: writes of a SuperPod's work go out only while it is owned."""
        superpod = writing_for.get()
        if superpod is None:
            yield _free
            return
        tenure = self.held.get(superpod)

        def check() -> None:
            if self.fenced():
                raise Fenced(superpod, "this replica's Lease is not renewed")
            if not self.owns(superpod) or self.held.get(superpod) is not tenure:
                raise Fenced(superpod, "another replica owns it")

        check()
        if tenure is None:
            yield check
            return
        tenure.enter()
        try:
            yield check
        finally:
            tenure.leave()

    async def serve(self, superpod: str, stopped: kopf.DaemonStopped, run: Run) -> None:
        """The SuperPod's kopf daemon: wait until this replica owns it, run `run` until it does not, again."""
        async with kopfkit.Sleeper(stopped) as sleeper:
            while not stopped:
                tenure = self.held.get(superpod)
                if tenure is None or tenure.lost.is_set() or self.fenced():
                    opened = self._opened.setdefault(superpod, asyncio.Event())
                    opened.clear()
                    await sleeper.until_poked(opened, self.retry_period)
                    continue
                flag: aioenums.FlagSetter[kopf.DaemonStoppingReason] = aioenums.FlagSetter()
                relay = asyncio.create_task(_relay(stopped, tenure.lost, flag))
                tenure.enter()
                token = writing_for.set(superpod)
                try:
                    await run(flag.async_waiter)
                except Fenced:
                    if not (tenure.lost.is_set() or self.fenced()):
                        raise
                    # a write fell on the end of the tenure: stop quietly, run again once it is owned again
                finally:
                    writing_for.reset(token)
                    tenure.leave()
                    relay.cancel()

    # ---- start and stop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join: list the Leases, write this replica's own, then renew it on a thread of its own, and follow
        and balance in the background."""
        self._loop = asyncio.get_running_loop()
        await self.book.reflector.relist()
        await self._renew(self.api)
        self._renewals = Renewals(self.api, self._renewing, name=f"lease renewals of {self.identity}")
        self._renewals.start()
        self._tasks = [
            asyncio.create_task(self.book.reflector.run()),
            asyncio.create_task(self._balancing()),
        ]
        logger.info("replica %s joined (Leases in namespace %s)", self.identity, self.namespace)

    async def stop(self) -> None:
        """Leave: give every SuperPod up (writers stopped first), then delete this replica's Lease."""
        follow, balance = self._tasks if self._tasks else (None, None)
        if balance is not None:
            balance.cancel()
            await asyncio.gather(balance, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(self._release(name) for name in list(self.held)))
        if self._renewals is not None:
            await asyncio.to_thread(self._renewals.stop)
        if follow is not None:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.book.leave()
        logger.info("replica %s left", self.identity)

    # ---- membership: renewing this replica's Lease, and who is alive -------------------------------------

    async def _renewing(self, api: client.KubeClient, stopping: asyncio.Event) -> None:
        """On the renewal thread (`Renewals`), through its own client: renew every `retry_period` seconds."""
        while not stopping.is_set():
            began = self.clock()
            try:
                await asyncio.wait_for(self._renew(api), timeout=self.renew_deadline)
            except Exception as error:  # kept trying; the fence stops the writes meanwhile
                logger.warning(
                    "replica %s: renewing its Lease failed after %.1f s: %r",
                    self.identity,
                    self.clock() - began,
                    error,
                )
            if self.fenced() and self.held:
                self._lapse("its Lease was not renewed in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), max(0.0, self.retry_period - (self.clock() - began)))

    async def _renew(self, api: client.KubeClient) -> None:
        began = self.clock()
        await self.book.renew(api)
        took = self.clock() - began
        if took > self.retry_period:  # the API server answers slowly: the margin before the deadline shrinks
            logger.warning("replica %s: renewing its Lease took %.1f s", self.identity, took)
        if self.renewed_at is not None and self.fenced():
            # it had lapsed: nothing held before, nor being taken, is ours any more (fenced until dropped)
            since = self.clock() - self.renewed_at
            self._lapse(f"its Lease lapsed before this renewal (the last one began {since:.1f} s ago)")
        self.renewed_at = began

    def _lapse(self, why: str) -> None:
        """Fenced until the operator's loop has dropped every SuperPod and abandoned every take in flight
        (called on the renewal thread: the loop acts on it at its next turn)."""
        self.lapses += 1
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the operator has stopped
            self._loop.call_soon_threadsafe(self._drop_all, why, self.lapses)

    def live(self) -> set[str]:
        """The replicas alive as seen from here (this one while it is not fenced)."""
        return self.book.alive() | (set() if self.fenced() else {self.identity})

    # ---- balancing: give away and take SuperPods ---------------------------------------------------------

    async def _balancing(self) -> None:
        while True:
            try:
                await self._balance()
            except Exception as error:
                logger.warning("replica %s: balancing SuperPods failed: %s", self.identity, error)
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=self.retry_period)

    async def _balance(self) -> None:
        if self.fenced():
            return
        live = self.live()
        names = set(self.superpods())
        plan = rendezvous.assign(names, live)
        for name in list(self.held):
            moved = name in names and plan.get(name) != self.identity
            deleted = name not in names and self.held[name].idle.is_set()  # its daemon is done (untainted)
            if (moved or deleted) and name not in self._releasing:
                self._releasing[name] = asyncio.create_task(self._release(name, drop=name not in names))
        await self._tidy(names, live, plan)
        epoch = self.epoch
        untouched = {name for name in names if self.book.untouched(name)}
        taken = [name for name in sorted(names) if plan.get(name) == self.identity and name not in self.held
                 and await self.book.acquire(name, live)]  # fmt: skip
        if not taken:
            return
        # a SuperPod nobody took since this replica last held it (fenced for a moment: a stall, a slow
        # renewal) keeps its memory; the others are rebuilt from a fresh list
        fresh = [name for name in taken if name not in untouched]
        if fresh:
            await self.reload(fresh)
        for name in taken:
            self.book.keep(name)
        if self.fenced() or epoch != self.epoch:
            return  # the Leases name this replica; they are taken again through them
        for name in taken:
            self.held[name] = tenure = Tenure()
            tenure.idle.set()
            self._opened.setdefault(name, asyncio.Event()).set()
        resumed = (
            f" ({len(taken) - len(fresh)} resumed: no other replica took them)"
            if len(fresh) < len(taken)
            else ""
        )
        logger.info("replica %s owns %s%s", self.identity, ", ".join(taken), resumed)
        self.changed.set()

    async def _release(self, superpod: str, *, drop: bool = False) -> None:
        """Stop writing for the SuperPod, wait for its writers, then let its Lease name nobody (or delete it)."""
        try:
            tenure = self.held.get(superpod)
            if tenure is not None:
                tenure.lost.set()
                self.changed.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(tenure.idle.wait(), timeout=RELEASE_WAIT)
                self.held.pop(superpod, None)
            await self.book.let_go(leases.superpod_name(superpod), drop=drop)
            self.released(superpod)
            logger.info("replica %s gave SuperPod %s up", self.identity, superpod)
        finally:
            self._releasing.pop(superpod, None)

    async def _tidy(self, names: set[str], live: set[str], plan: dict[str, str]) -> None:
        """Leases naming this replica that it does not hold, nor is about to take again, are let go; those of
        deleted SuperPods removed."""
        for name, seen in self.book.superpods():
            superpod, holder = leases.superpod_of(seen.lease), leases.holder(seen.lease)
            if superpod in self.held or superpod in self._releasing:
                continue
            if superpod not in names and holder not in live and live and min(live) == self.identity:
                await self.book.remove(name, seen)
            elif holder == self.identity and plan.get(superpod) != self.identity:
                await self.book.let_go(name, drop=superpod not in names)
                self.released(superpod)

    def _drop_all(self, why: str, lapse: int) -> None:
        """Fenced: every SuperPod stops at once (the writes were refused already), and a take in flight is
        abandoned (`epoch`); they are taken again through their Leases."""
        if self.held:
            logger.warning(
                "replica %s stops writing for %s: %s", self.identity, ", ".join(sorted(self.held)), why
            )
        self.epoch += 1
        for tenure in self.held.values():
            tenure.lost.set()
        self.held.clear()
        self.dropped = max(self.dropped, lapse)
        self.changed.set()


async def _relay(
    stopped: kopf.DaemonStopped, lost: asyncio.Event, flag: aioenums.FlagSetter[kopf.DaemonStoppingReason]
) -> None:
    """Stop the tenure's work when kopf stops the daemon (with its reason) or the SuperPod is let go."""
    async with kopfkit.Sleeper(stopped) as sleeper:
        await sleeper.until_poked(lost, None)
    flag.set(stopped.reason if stopped else kopf.DaemonStoppingReason.OPERATOR_PAUSING)


def _free() -> None:
    pass


class Renewals:
    """`work(api, stopping)` on a thread of its own, with its own event loop and its own client (the
    credentials and User-Agent of `api`, a small pool of its own): nothing the operator's loop does delays it,
    neither a long synchronous step nor a queue of requests on the shared pool (Python hands the interpreter to
    another thread every few milliseconds while one computes)."""

    def __init__(
        self,
        api: client.KubeClient,
        work: Callable[[client.KubeClient, asyncio.Event], Coroutine[Any, Any, None]],
        *,
        name: str,
    ) -> None:
        self.credentials = api.credentials
        self.user_agent = api.user_agent
        self.work = work
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        """Stop the work (cancelled if it is in a request) and wait for the thread (blocking)."""
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = stopping = asyncio.Event()
        self._started.set()
        own = client.KubeClient(self.credentials, user_agent=self.user_agent, connections=RENEWAL_CONNECTIONS)
        async with own as api:
            work = asyncio.create_task(self.work(api, stopping))
            await stopping.wait()
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
