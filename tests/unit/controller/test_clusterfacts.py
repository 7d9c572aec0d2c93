"""PriorityClasses are listed at start and followed by a watch: admission reads them without an API call, and a
class that appears, changes or goes tells the listeners (the fleet wakes every SuperPod's pass with it)."""

from __future__ import annotations

from typing import Any, cast

from superpod.cluster import client
from superpod.controller import clusterfacts

from tests.unit.controller import fakeapi

CLASSES = clusterfacts.PRIORITY_CLASSES


def priority_class(name: str, value: int, version: str, **extra: Any) -> dict[str, Any]:
    metadata = {"name": name, "resourceVersion": version, **extra}
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": metadata,
        "value": value,
    }


def facts(api: fakeapi.FakeApi) -> clusterfacts.ClusterFacts:
    return clusterfacts.ClusterFacts(cast(client.KubeClient, api))


async def test_a_class_created_changed_or_deleted_after_start_is_seen_at_once_and_told() -> None:
    api = fakeapi.FakeApi()
    api.listed(CLASSES, priority_class("low", 10, "1"))
    reader = facts(api)
    told: list[int] = []
    reader.listeners.append(lambda: told.append(1))
    await reader.start()
    try:
        assert {name: pc.value for name, pc in reader.priority_classes().items()} == {"low": 10}
        told.clear()

        api.send(CLASSES, "ADDED", priority_class("urgent", 1000, "2"))
        await fakeapi.until(lambda: "urgent" in reader.priority_classes())
        assert reader.priority_classes()["urgent"].value == 1000 and told == [1]

        # a label edit changes nothing admission reads: nobody is woken for it
        api.send(CLASSES, "MODIFIED", priority_class("urgent", 1000, "3", labels={"team": "b"}))
        api.send(CLASSES, "MODIFIED", priority_class("urgent", 2000, "4"))
        await fakeapi.until(lambda: reader.priority_classes()["urgent"].value == 2000)
        assert told == [1, 1]

        api.send(CLASSES, "DELETED", priority_class("low", 10, "5"))
        await fakeapi.until(lambda: "low" not in reader.priority_classes())
        assert told == [1, 1, 1]
    finally:
        await reader.stop()


class Refusing(fakeapi.FakeApi):
    """An API whose first list of PriorityClasses is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        if path == CLASSES and not self.refused:
            self.refused += 1
            raise client.ApiError(503, {"reason": "ServiceUnavailable"})
        return await super().get(path, **params)


async def test_a_refused_first_list_does_not_stop_the_start_and_is_made_again_by_the_watch() -> None:
    api = Refusing()
    api.listed(CLASSES, priority_class("urgent", 1000, "1"))
    reader = facts(api)
    told: list[int] = []
    reader.listeners.append(lambda: told.append(1))
    await reader.start()
    try:
        assert api.refused == 1 and reader.priority_classes() == {}
        await fakeapi.until(lambda: "urgent" in reader.priority_classes())
        assert told == [1]
    finally:
        await reader.stop()
