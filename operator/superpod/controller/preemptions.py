"""Carrying out a preemption safely: victims first, the preemptor only once the victims' pods are gone.

When an admission pass (`queuepass`) preempts, the allocator already holds the preemptor on the victims'
devices (in memory: nobody else gets them), but the preemptor's status shows no allocation, so no pod of it
can be admitted yet. Then, in this order:

1. each victim's status becomes Pending, reason Preempted, naming its preemptor (`status.evicting`): no new
   pod of it is admitted, and its allocation stays in status while its pods may still use the devices, so a
   restarted operator restores it and gives those devices to nobody;
2. the preemptor's status becomes Pending, reason Preempting, naming its victims (each status change posts
   an Event with that reason and message, so both partitions' Events name the other);
3. the victims' pods are evicted through the Eviction API (`eviction.evict`), again on every pass until
   none is left: only the API's pods are trusted, not the operator's memory. A refused eviction (a
   PodDisruptionBudget, an API error) is asked again after its backoff: `evict` says when (`Round.retry_in`)
   and `retry_evictions` sets a timer that wakes the SuperPod's daemon then; the preemptor's message says what
   blocks it;
4. when every victim's pods are gone, each victim's status drops its allocation (it waits to be placed
   again, reason Preempted) and only then is the preemptor's placement written.

A preemptor deleted on the way gives its devices back to its victims (restored from their status), which
are then finished as above. After a restart the victims are restored from status as evicting partitions
and finished the same way, and the preemptor, Pending at the head of the queue, preempts again if it must.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping

from superpod.api import common, views
from superpod.api import partition as api_partition
from superpod.cluster import client
from superpod.controller import eviction, partitions, partitionwrite, superpodstate
from superpod.controller import status as derive
from superpod.placement import queue

JSON = common.JSON
PendingReason = api_partition.PendingReason
logger = logging.getLogger(__name__)
LIST_RETRY = 5.0  # seconds before the pods of a victim that could not be listed are listed again


def victim_message(preemptor: str, victim: str, admit: queue.Admit, workloads: Mapping[str, int]) -> str:
    why = (
        f"to take back quota {admit.workload.tenant}'s share"
        if victim in admit.reclaimed
        else f"priority {admit.workload.priority} over {workloads.get(victim, 0)}"
    )
    return f"preempted by {preemptor} ({why}); its pods are being evicted"


async def begin(
    statuses: partitionwrite.StatusWriter,
    partitions: Mapping[str, JSON],
    preemptor_obj: JSON,
    admit: queue.Admit,
    victim_priorities: Mapping[str, int],
    evictions: eviction.Evictions,
) -> Round:
    """Steps 1 to 3 of the module docstring; the first round of evictions."""
    preemptor = views.Partition(preemptor_obj).key
    for victim in admit.victims:
        obj = partitions.get(victim)
        if obj is None:
            continue
        message = victim_message(preemptor, victim, admit, victim_priorities)
        await statuses.write(obj, _evicting(preemptor, message, views.Partition(obj).generation))
    await show_preempting(statuses, preemptor_obj, admit.victims)
    return await evict(evictions, admit.victims)


def preempting_message(victims: tuple[str, ...], blocked: str | None = None) -> str:
    message = f"preempting {', '.join(victims)}: it takes their devices once their pods are gone"
    return f"{message}; {blocked}" if blocked else message


async def show_preempting(
    statuses: partitionwrite.StatusWriter, obj: JSON, victims: tuple[str, ...], blocked: str | None = None
) -> None:
    """The preemptor's status: Pending, Preempting, naming its victims and what blocks their eviction."""
    message = preempting_message(victims, blocked)
    generation = views.Partition(obj).generation
    await statuses.write(
        obj,
        lambda previous, now: derive.pending(
            PendingReason.PREEMPTING, message, previous=previous, generation=generation, now=now
        ),
    )


@dataclasses.dataclass(frozen=True)
class Round:
    """One round of evicting the victims' pods."""

    remaining: int  # pods that may still use the victims' devices
    retry_in: float | None  # seconds until an eviction is due again (a refused one's backoff); None: none is
    blocked: str | None = None  # why an eviction was refused (a disruption budget's words), for the preemptor

    def __bool__(self) -> bool:
        return self.remaining > 0


async def evict(evictions: eviction.Evictions, victims: tuple[str, ...]) -> Round:
    """Evict the victims' pods (again, as `eviction.Evictions` paces it: a refused eviction is asked again
    after its backoff). A victim whose pods cannot be listed counts as not done, to be looked at again after
    `LIST_RETRY` seconds."""
    remaining = 0
    due: list[float] = []
    blocked: str | None = None
    for victim in victims:
        namespace, name = victim.split("/", 1)
        try:
            pods = await eviction.list_pods(evictions.api, namespace, f"{common.PARTITION_LABEL}={name}")
        except (client.ApiError, OSError, TimeoutError) as error:
            logger.warning("pods of preempted partition %s could not be listed: %s", victim, error)
            remaining += 1
            due.append(LIST_RETRY)
            continue
        progress = await evictions.evict(victim, pods)
        if progress.done:
            evictions.forget(victim)
        remaining += len(progress.remaining)
        if progress.retry_in is not None:
            due.append(progress.retry_in)
        if progress.blocked and blocked is None:
            blocked = f"{victim}: {progress.summary()}"
    return Round(remaining, min(due) if due else None, blocked)


def _evicting(preemptor: str, message: str, generation: int | None) -> Callable[[JSON | None, str], JSON]:
    return lambda previous, now: derive.evicting(
        preemptor, message, previous=previous, generation=generation, now=now
    )


async def requeue(statuses: partitionwrite.StatusWriter, obj: JSON, preemptor: str) -> None:
    """Step 4 for one victim: its pods are gone, its allocation goes, it waits to be placed again."""
    view = views.Partition(obj)
    message = f"preempted by {preemptor}; its pods are gone and it waits to be placed again"
    await statuses.write(
        obj,
        lambda previous, now: derive.pending(
            PendingReason.PREEMPTED,
            message,
            previous=previous,
            generation=view.generation,
            now=now,
            preempted_by=preemptor,
        ),
    )


async def advance(
    writes: partitions.Partitions, evictions: eviction.Evictions, state: superpodstate.SuperPodState
) -> None:
    """Evict the victims' pods again; where they are all gone, requeue the victims, then write their
    preemptor's placement (step 4 above). Victims restored after a restart are finished alike."""
    held = state.allocator
    orphans = sorted(
        key
        for key in writes.partitions.preempted  # the few with reason Preempted, not every partition held
        if held is not None
        and held.placement_of(key) is not None
        and views.Partition(writes.partitions[key]).evicting
    )
    for key in orphans:
        preemptor = str(views.Partition(writes.partitions[key]).status.get("preemptedBy") or "")
        evicting = await evict(evictions, (key,))
        retry_evictions(state, evicting.retry_in)
        if evicting:
            continue
        async with writes.serial.hold(key), state.lock:
            if state.allocator is not None:
                state.allocator.release(key)
        obj = writes.partitions.get(key)
        if obj is not None:
            await requeue(writes.statuses, obj, preemptor)
        state.poke()
    for preemptor, entry in list(state.preempting.items()):
        evicting = await evict(evictions, entry.victims)
        retry_evictions(state, evicting.retry_in)
        if evicting:
            obj = writes.partitions.get(preemptor)
            if obj is not None and state.preempting.get(preemptor) is entry:
                async with writes.serial.hold(preemptor):
                    await show_preempting(writes.statuses, obj, entry.victims, evicting.blocked)
            continue
        for victim in entry.victims:
            obj = writes.partitions.get(victim)
            if obj is not None:
                async with writes.serial.hold(victim):
                    await requeue(writes.statuses, obj, preemptor)
        if state.preempting.get(preemptor) is not entry:
            continue
        del state.preempting[preemptor]
        obj = writes.partitions.get(preemptor)
        allocator = state.allocator
        if obj is None or allocator is None or views.Partition(obj).deleting:
            continue
        fields = state.tenancy.tenancy.get(preemptor) if state.tenancy is not None else None
        async with writes.serial.hold(preemptor):
            await writes.write_placement(state, allocator, obj, entry.placement, fields)


def retry_evictions(state: superpodstate.SuperPodState, delay: float | None) -> None:
    """Wake the SuperPod's daemon when an eviction is due again (`delay` seconds; None: none is), so that a
    refused eviction is retried after its backoff even if nothing else happens in the cluster. One timer per
    SuperPod, the earliest wins."""
    if delay is None:
        return
    loop = asyncio.get_running_loop()
    when = loop.time() + max(delay, 0.05)
    timer = state.eviction_retry
    if timer is not None and not timer.cancelled() and loop.time() <= timer.when() <= when:
        return
    if timer is not None:
        timer.cancel()
    state.eviction_retry = loop.call_at(when, state.poke)
