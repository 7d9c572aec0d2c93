"""One admission pass built from the API's objects: quotas, tenants, PriorityClasses, preemption."""

from __future__ import annotations

import copy
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


# ---- a tenant's inputs, abused -----------------------------------------------------------------------------

SYSTEM_CLASSES = {
    "system-node-critical": tenants.PriorityClass("system-node-critical", 2_000_001_000),
    "system-cluster-critical": tenants.PriorityClass("system-cluster-critical", 2_000_000_000),
    "sneaky": tenants.PriorityClass("sneaky", 1_500_000_000),  # only system classes may go above 1e9
    "high": tenants.PriorityClass("high", 1000),
}


def test_a_partition_naming_a_class_reserved_for_kubernetes_components_is_refused():
    world = World(spec(quota("team-a", 64)), queuepass.Facts(classes=SYSTEM_CLASSES))
    for name in ("system-node-critical", "system-cluster-critical", "sneaky"):
        outcome = world.run(partition("team-a", f"p-{name}", 16, priorityClassName=name))
        (refused,) = outcome.refused
        assert refused.reason == "PriorityClassForbidden" and not refused.failed
        assert f"PriorityClass {name} " in refused.message and "reserved" in refused.message
        assert not outcome.decisions and world.allocator.placement_of(refused.key) is None


def test_a_placed_partition_renamed_to_a_system_class_does_not_become_unpreemptable():
    world = World(spec(quota("team-a", 64)), queuepass.Facts(classes=SYSTEM_CLASSES))
    for index in range(4):
        assert isinstance(only(world.run(partition("team-a", f"low-{index}", 16))), queue.Admit)
    for index in range(4):  # every placed one now names system-node-critical (spec edits of placed ones)
        world.partitions[f"team-a/low-{index}"]["spec"]["priorityClassName"] = "system-node-critical"
    urgent = only(world.run(partition("team-a", "urgent", 16, priorityClassName="high")))
    assert isinstance(urgent, queue.Admit) and len(urgent.victims) == 1


def test_a_high_priority_in_one_quota_never_preempts_another_quota_within_its_share():
    world = World(spec(quota("team-a", 32), quota("team-b", 32)), queuepass.Facts(classes=SYSTEM_CLASSES))
    for index in range(2):
        assert isinstance(only(world.run(partition("team-a", f"a-{index}", 16))), queue.Admit)
    for index in range(2):  # team-b's own work is as high as the greedy one: nothing of team-b to preempt
        placed = partition("team-b", f"b-{index}", 16, priorityClassName="high")
        assert isinstance(only(world.run(placed)), queue.Admit)
    greedy = only(world.run(partition("team-b", "greedy", 16, priorityClassName="high")))
    assert isinstance(greedy, queue.Wait) and not greedy.victims
    assert all(world.allocator.placement_of(f"team-a/a-{index}") is not None for index in range(2))


def test_quota_priority_and_borrowing_forged_in_status_are_ignored():
    world = World(
        spec(quota("team-a", 16, "Never"), quota("team-b", 48)), queuepass.Facts(classes=SYSTEM_CLASSES)
    )
    assert isinstance(only(world.run(partition("team-a", "a-1", 16))), queue.Admit)
    forged = {"quota": "team-b", "priority": 1_000_000, "borrowing": False, "borrowedNpus": None}
    world.partitions["team-a/a-1"]["status"] |= forged
    outcome = world.run(
        partition("team-a", "a-2", 16) | {"status": {"quota": "team-b", "priority": 1_000_000}}
    )
    waiting = only(outcome)
    assert isinstance(waiting, queue.Wait) and waiting.reason == "QuotaExceeded"
    assert waiting.message.startswith("quota team-a: 16 of 16 NPUs in use")
    # what the operator writes back comes from the namespace and the PriorityClass, not from the status
    assert outcome.tenancy["team-a/a-1"] == {
        "quota": "team-a",
        "priority": 0,
        "borrowing": False,
        "borrowedNpus": None,
    }
    assert (
        outcome.tenancy["team-a/a-2"]["quota"] == "team-a" and outcome.tenancy["team-a/a-2"]["priority"] == 0
    )


def decide(world: World, *objs: JSON, fitting: bool) -> tuple[queuepass.Pass, bool]:
    """A pass as the operator makes it: `run_fitting` first (when `fitting`), else `run`; and whether the
    shortcut decided it."""
    if not fitting:
        return world.run(*objs), False
    keys = []
    for obj in objs:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        world.partitions[key] = obj
        keys.append(key)
    outcome = queuepass.run_fitting(
        world.allocator, world.tenancy(), world.partitions, keys, now=1000.0, since={}
    )
    if outcome is None:
        return world.run(*objs), False
    for decision in outcome.decisions:
        assert isinstance(decision, queue.Admit)
        world.partitions[decision.workload.id]["status"] = {
            "phase": "Allocated",
            "allocation": [
                {"rank": s.rank, "node": s.node, "devices": list(s.devices)} for s in decision.placement.slots
            ],
        }
    return outcome, True


def test_without_quotas_a_pass_of_partitions_that_fit_decides_as_the_full_pass_does():
    """The shortcut that reads no placed partition admits the same partitions on the same devices, in the same
    order, with the same status fields; a pass with one that does not fit falls back and matches too."""
    classes = {"high": tenants.PriorityClass("high", 1000)}
    batches = [
        [
            partition("a", "one", 4, devicesPerPod=4),
            partition("b", "two", 8, "2026-01-01T00:00:01Z", devicesPerPod=8),
        ],
        [partition("a", "three", 16, priorityClassName="high"), partition("b", "four", 2, devicesPerPod=2)],
        [partition("a", "five", 16), partition("b", "six", 8, devicesPerPod=8)],
        [
            partition("a", "one", 4, devicesPerPod=4),
            partition("b", "eight", 2, devicesPerPod=2),
        ],  # one: placed
        [partition("a", "seven", 32)],  # 8 devices free: does not fit as things are
    ]
    full, fast = (
        World(spec(), queuepass.Facts(classes=classes)),
        World(spec(), queuepass.Facts(classes=classes)),
    )
    shortcuts = []
    for batch in batches:
        expected, _ = decide(full, *[copy.deepcopy(obj) for obj in batch], fitting=False)
        got, shortcut = decide(fast, *[copy.deepcopy(obj) for obj in batch], fitting=True)
        shortcuts.append(shortcut)
        assert [(type(d), d.workload.id, getattr(d, "placement", None)) for d in got.decisions] == [
            (type(d), d.workload.id, getattr(d, "placement", None)) for d in expected.decisions
        ]
        for obj in batch:
            key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
            assert got.tenancy[key] == expected.tenancy[key]
    assert full.allocator.capacity() == fast.allocator.capacity()
    assert shortcuts == [True, True, True, True, False]


def test_the_shortcut_changes_nothing_when_a_partition_does_not_fit_or_quotas_apply():
    world = World(spec())
    assert isinstance(only(world.run(partition("a", "big", 48))), queue.Admit)
    before = world.allocator.capacity()
    world.partitions["a/x"] = partition("a", "x", 8, devicesPerPod=8)
    world.partitions["a/y"] = partition("a", "y", 16, created="2026-01-01T00:00:01Z")  # 8 + 16 > 16 free
    tenancy = world.tenancy()
    assert (
        queuepass.run_fitting(world.allocator, tenancy, world.partitions, ["a/x", "a/y"], now=1.0, since={})
        is None
    )
    assert world.allocator.capacity() == before and world.allocator.placement_of("a/x") is None

    quoted = World(spec(quota("a", 32)))
    quoted.partitions["a/x"] = partition("a", "x", 16)
    assert (
        queuepass.run_fitting(
            quoted.allocator, quoted.tenancy(), quoted.partitions, ["a/x"], now=1.0, since={}
        )
        is None
    )
