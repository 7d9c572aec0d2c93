"""One admission pass built from the API's objects: quotas, tenants, PriorityClasses, preemption."""

from __future__ import annotations

from typing import Any

from superpod.controller import queuepass, superpodmodel, tenants
from superpod.placement import queue

from tests.unit.controller.test_superpodmodel import inventory

JSON = dict[str, Any]


def spec(*quotas: JSON) -> JSON:
    return {"profile": "cloudmatrix-384", "reserveNodes": 0, "superPodID": 0, "quotas": list(quotas)}


def quota(name: str, npus: int, borrowing: str = "Allowed", **where: Any) -> JSON:
    return {"name": name, "npus": npus, "borrowing": borrowing, **(where or {"namespaces": [name]})}


def partition(
    namespace: str, name: str, npus: int, created: str = "2026-01-01T00:00:00Z", **spec_fields: Any
) -> JSON:
    return {
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": created, "generation": 1},
        "spec": {"superPod": "sp", "npus": npus, "devicesPerPod": 16, **spec_fields},
    }


class World:
    """A 4-node (64-die) SuperPod model and the partitions the mirror holds."""

    def __init__(self, superpod_spec: JSON, facts: queuepass.Facts | None = None) -> None:
        nodes, configmaps = inventory(4)
        self.model = superpodmodel.build(superpodmodel.configure(superpod_spec), nodes, configmaps, {})
        assert self.model.allocator is not None
        self.allocator = self.model.allocator
        self.facts = facts or queuepass.Facts()
        self.partitions: dict[str, JSON] = {}

    def tenancy(self) -> queuepass.Tenancy:
        return queuepass.Tenancy(self.model.spec, queuepass.usable_devices(self.allocator), self.facts)

    def run(self, *objs: JSON) -> queuepass.Pass:
        keys = []
        for obj in objs:
            key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
            self.partitions[key] = obj
            keys.append(key)
        outcome = queuepass.run(self.allocator, self.tenancy(), self.partitions, keys, now=1000.0, since={})
        for decision in outcome.decisions:
            if isinstance(decision, queue.Admit):  # as the operator writes it
                placement = decision.placement
                obj = self.partitions[decision.workload.id]
                obj["status"] = {
                    "phase": "Allocated",
                    "allocation": [
                        {"rank": s.rank, "node": s.node, "devices": list(s.devices)} for s in placement.slots
                    ],
                }
            for victim in getattr(decision, "victims", ()):
                self.partitions[victim]["status"] = {"phase": "Pending", "reason": "Preempted"}
        return outcome


def only(outcome: queuepass.Pass) -> queue.Admit | queue.Wait:
    (decision,) = outcome.decisions
    return decision


def test_a_quota_that_may_not_borrow_refuses_with_its_numbers_even_when_the_superpod_is_full():
    world = World(spec(quota("team-a", 32, "Never"), quota("team-b", 32)))
    assert isinstance(only(world.run(partition("team-a", "a-1", 32))), queue.Admit)
    assert isinstance(only(world.run(partition("team-b", "b-1", 32))), queue.Admit)
    waiting = only(world.run(partition("team-a", "a-2", 16)))
    assert isinstance(waiting, queue.Wait)
    assert waiting.reason == "QuotaExceeded"
    assert waiting.message == (
        "quota team-a: 32 of 32 NPUs in use, 16 more would exceed the nominal share and borrowing is Never"
    )


def test_status_fields_name_the_quota_priority_and_borrowing():
    classes = {"high": tenants.PriorityClass("high", 1000)}
    world = World(spec(quota("team-a", 16), quota("team-b", 48)), queuepass.Facts(classes=classes))
    outcome = world.run(partition("team-a", "big", 32, priorityClassName="high"))
    assert outcome.tenancy["team-a/big"] == {
        "quota": "team-a",
        "priority": 1000,
        "borrowing": True,
        "borrowedNpus": 16,
    }
    outcome = world.run(partition("other", "free", 16))
    decision = only(outcome)
    # namespaces no quota covers may use only what no quota holds: here nothing
    assert isinstance(decision, queue.Wait) and decision.reason == "QuotaExceeded"
    assert outcome.tenancy["other/free"] == {
        "quota": None,
        "priority": 0,
        "borrowing": None,
        "borrowedNpus": None,
    }


def test_a_namespace_selector_needs_the_namespaces_labels():
    selector = {"namespaceSelector": {"matchLabels": {"team": "b"}}}
    facts = queuepass.Facts(labels={"ns-b": {"team": "b"}, "ns-x": {}})
    world = World(spec(quota("team-b", 32, **selector)), facts)
    assert world.run(partition("ns-b", "p", 16)).tenancy["ns-b/p"]["quota"] == "team-b"
    assert world.run(partition("ns-x", "q", 16)).tenancy["ns-x/q"]["quota"] is None


def test_a_missing_priority_class_keeps_the_partition_out_of_the_pass():
    world = World(spec())
    outcome = world.run(partition("team-a", "p", 16, priorityClassName="nope"))
    assert outcome.decisions == []
    (refused,) = outcome.refused
    assert (
        refused.reason == "PriorityClassNotFound" and "PriorityClass nope does not exist" in refused.message
    )


def test_the_global_default_priority_class_applies_to_partitions_naming_none():
    classes = {
        "default": tenants.PriorityClass("default", 50, global_default=True),
        "other": tenants.PriorityClass("other", 70),
    }
    world = World(spec(), queuepass.Facts(classes=classes))
    assert world.run(partition("team-a", "p", 16)).tenancy["team-a/p"]["priority"] == 50


def test_a_higher_priority_partition_preempts_within_its_quota_and_never_policy_does_not():
    classes = {
        "high": tenants.PriorityClass("high", 1000),
        "polite": tenants.PriorityClass("polite", 1000, tenants.placement_quota.PreemptionPolicy.NEVER),
    }
    world = World(spec(quota("team-a", 64)), queuepass.Facts(classes=classes))
    for index in range(4):
        assert isinstance(only(world.run(partition("team-a", f"low-{index}", 16))), queue.Admit)
    polite = only(world.run(partition("team-a", "polite", 16, priorityClassName="polite")))
    assert isinstance(polite, queue.Wait) and polite.reason == "InsufficientCapacity" and not polite.victims
    urgent = only(world.run(partition("team-a", "urgent", 16, priorityClassName="high")))
    assert isinstance(urgent, queue.Admit) and len(urgent.victims) == 1


def test_usable_devices_leave_reserve_nodes_out():
    world = World({"profile": "cloudmatrix-384", "reserveNodes": 1, "superPodID": 0})
    assert queuepass.usable_devices(world.allocator) == 48


def test_quota_status_counts_use_borrowing_and_waiting():
    world = World(spec(quota("team-a", 16), quota("team-b", 16)))
    outcome = world.run(partition("team-a", "a", 32))
    outcome.waiting["team-b"] = 2
    assert queuepass.quota_status(outcome) == [
        {"name": "team-a", "nominal": 16, "used": 32, "borrowed": 16, "pending": 0},
        {"name": "team-b", "nominal": 16, "used": 0, "borrowed": 0, "pending": 2},
    ]
    assert queuepass.quota_status(World(spec()).run()) is None
