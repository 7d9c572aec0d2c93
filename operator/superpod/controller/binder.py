"""Claiming and releasing slots in a partition's status, atomically, across requests and operator replicas.

Every replica serves the webhook (kube-apiserver calls whichever the Service picks), so no in-memory lock can
make a claim safe. The claim is a status patch carrying the `metadata.resourceVersion` the decision was made
on: kube-apiserver applies it only if the partition is unchanged since, else answers 409 Conflict, and the
decision is made again on a fresh read. Two claims can therefore never both see a slot free and both win.

Within one replica, requests for the same partition are queued and committed in batches (group commit): while
one patch is in flight the next requests gather, and the next patch decides all of them. 32 pods created at
once then cost a few writes instead of 32 rounds of conflicts. The last object read or written is kept, so a
batch usually needs no read; a denial is only ever given on a fresh read, so stale memory never refuses a pod,
and a grant either is a write checked against the version it was decided on or is made on a fresh read (a pod
admitted again under its name, a dry run), so stale memory never grants a slot another replica gave away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence

from superpod.api import common, views
from superpod.cluster import client, writer
from superpod.controller import podrequest, slotclaims
from superpod.controller import status as derive

JSON = common.JSON
ATTEMPTS = 20
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    """The decision for one pod, and the partition it was made on (None: no such partition)."""

    decision: slotclaims.Decision | None
    partition: JSON | None


@dataclasses.dataclass
class _Claim:
    request: podrequest.PodRequest
    resource: str
    future: asyncio.Future[ClaimResult]


@dataclasses.dataclass
class _Release:
    pods: frozenset[str]
    future: asyncio.Future[ClaimResult]


_Operation = _Claim | _Release


@dataclasses.dataclass
class _Queue:
    operations: list[_Operation] = dataclasses.field(default_factory=list)
    task: asyncio.Task[None] | None = None


class Binder:
    """Slot claims and releases of every partition, batched per partition."""

    def __init__(
        self, api: client.KubeClient, *, attempts: int = ATTEMPTS, clock: Callable[[], str] = writer.now
    ) -> None:
        self.api = api
        self.attempts = attempts
        self.clock = clock
        self.writes = 0  # status patches that succeeded
        self.conflicts = 0  # status patches refused with 409 (another writer was first)
        self._queues: dict[tuple[str, str], _Queue] = {}
        self._known: dict[tuple[str, str], JSON] = {}  # the partition as last read or written

    async def claim(
        self,
        namespace: str,
        name: str,
        request: podrequest.PodRequest,
        *,
        resource: str,
        seen: JSON | None = None,
    ) -> ClaimResult:
        """Claim a slot for `request`; `seen` is a copy of the partition the caller holds (saves a read)."""
        if seen is not None:
            self._known[(namespace, name)] = views.newest(self._known.get((namespace, name)), seen) or seen
        future: asyncio.Future[ClaimResult] = asyncio.get_running_loop().create_future()
        self._enqueue((namespace, name), _Claim(request, resource, future))
        return await future

    async def release(self, namespace: str, name: str, pods: Collection[str]) -> None:
        if not pods:
            return
        future: asyncio.Future[ClaimResult] = asyncio.get_running_loop().create_future()
        self._enqueue((namespace, name), _Release(frozenset(pods), future))
        await future

    def known(self, namespace: str, name: str) -> JSON | None:
        """The partition as this binder last read or wrote it."""
        return self._known.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered of a deleted partition."""
        self._known.pop((namespace, name), None)

    def _enqueue(self, key: tuple[str, str], operation: _Operation) -> None:
        queue = self._queues.setdefault(key, _Queue())
        queue.operations.append(operation)
        if queue.task is None or queue.task.done():
            queue.task = asyncio.create_task(self._drain(key, queue), name=f"binder {key[0]}/{key[1]}")

    async def _drain(self, key: tuple[str, str], queue: _Queue) -> None:
        while queue.operations:
            batch, queue.operations = queue.operations, []
            try:
                await self._commit(key, batch)
            except Exception as error:  # the requests get the error; the queue lives on
                logger.warning("binding in partition %s/%s failed: %s", *key, error)
                for operation in batch:
                    if not operation.future.done():
                        operation.future.set_exception(error)
        if self._queues.get(key) is queue and not queue.operations:
            del self._queues[key]

    async def _read(self, key: tuple[str, str]) -> JSON | None:
        obj = await self.api.get_or_none(writer.partition_path(*key))
        if obj is None:
            self._known.pop(key, None)
        else:
            self._known[key] = obj
        return obj

    async def _commit(self, key: tuple[str, str], batch: list[_Operation]) -> None:
        claims = [op for op in batch if isinstance(op, _Claim)]
        released = frozenset().union(*(op.pods for op in batch if isinstance(op, _Release)))
        resource = claims[0].resource if claims else ""
        partition = f"{key[0]}/{key[1]}"
        obj, fresh = self._known.get(key), False
        if obj is None:
            obj, fresh = await self._read(key), True
        for attempt in range(self.attempts):
            logger.debug(
                "partition %s: batch of %d, attempt %d, fresh %s", partition, len(batch), attempt, fresh
            )
            if obj is None:
                _resolve(batch, [None] * len(claims), None)
                return
            status = dict(obj.get("status") or {})
            if released:
                status["allocation"] = slotclaims.release(status, released)
            decisions, allocation = slotclaims.decide(
                partition,
                status,
                [op.request for op in claims],
                resource=resource,
                deleting=bool(obj["metadata"].get("deletionTimestamp")),
            )
            if not fresh and any(isinstance(d, slotclaims.Denied) for d in decisions):
                obj, fresh = await self._read(key), True
                continue
            if allocation == slotclaims.ordered_allocation(obj.get("status")):
                if not fresh:  # no write will check memory's version: a pod recreated under its name, or
                    # a dry run, must not be granted a slot another replica has since released or given away
                    obj, fresh = await self._read(key), True
                    continue
                _resolve(batch, decisions, obj)
                return
            fields = derive.binding(
                obj.get("status"), allocation, views.Partition(obj).generation, self.clock()
            )
            body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": fields}
            try:
                written = await self.api.patch(writer.partition_path(*key, "status"), body)
            except client.ApiError as error:
                if error.status not in (404, 409):
                    raise
                self.conflicts += error.status == 409
                obj, fresh = await self._read(key), True
                continue
            self.writes += 1
            self._known[key] = written
            _resolve(batch, decisions, written)
            return
        message = (
            f"could not bind to partition {partition}: {self.attempts} conflicting writes in a row; retry"
        )
        _resolve(batch, [slotclaims.Denied(message)] * len(claims), obj)


def _resolve(
    batch: list[_Operation], decisions: Sequence[slotclaims.Decision | None], obj: JSON | None
) -> None:
    claims = [operation for operation in batch if isinstance(operation, _Claim)]
    for claim, decision in zip(claims, decisions, strict=True):
        if not claim.future.done():  # a cancelled request's claim stands until the sweep frees it
            claim.future.set_result(ClaimResult(decision, obj))
    for operation in batch:
        if isinstance(operation, _Release) and not operation.future.done():
            operation.future.set_result(ClaimResult(None, obj))
