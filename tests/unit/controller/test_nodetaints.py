"""The isolation taint: on every member node of an isolating SuperPod, on no other node, others' taints kept."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from superpod.api import superpod as api_superpod
from superpod.cluster import client
from superpod.controller import membership, nodetaints, shards

JSON = dict[str, Any]
OURS = {"key": "superpod.dev/partitions-only", "value": "cm384-a", "effect": "NoSchedule"}
OTHER = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}


def node(name: str = "a3-0", taints: list[JSON] | None = None, **labels: str) -> JSON:
    body: JSON = {"metadata": {"name": name, "labels": labels, "resourceVersion": "1"}, "spec": {}}
    if taints is not None:
        body["spec"]["taints"] = taints
    return body


@pytest.mark.parametrize(
    ("case", "taints", "member", "wanted"),
    [
        ("a member without it gets it", None, True, [OURS]),
        ("a member keeps other taints beside it", [OTHER], True, [OTHER, OURS]),
        ("a member that has it is left alone", [OTHER, OURS], True, None),
        (
            "a member tainted for another SuperPod is left alone (one taint per key and effect)",
            [{**OURS, "value": "cm384-b"}],
            True,
            None,
        ),
        ("a node that left loses it, and only it", [OTHER, OURS], False, [OTHER]),
        ("a node that left and had only it ends with none", [OURS], False, []),
        (
            "another SuperPod's taint on a non-member is not ours to remove",
            [{**OURS, "value": "x"}],
            False,
            None,
        ),
        ("a non-member without it is left alone", [OTHER], False, None),
    ],
)
def test_the_taints_a_node_should_carry(case, taints, member, wanted):
    assert nodetaints.wanted_taints(node(taints=taints), "cm384-a", member) == wanted, case


class Api:
    """Takes node patches; answers with the node as written (its resourceVersion one higher) when `answers`."""

    def __init__(self, answers: bool = False, conflict: bool = False) -> None:
        self.patches: list[tuple[str, JSON]] = []
        self.answers = answers
        self.conflict = conflict

    async def patch(self, path: str, body: JSON) -> JSON:
        name = path.rpartition("/")[2]
        self.patches.append((name, body))
        if self.conflict:
            raise client.ApiError(409, {"reason": "Conflict"})
        if not self.answers:
            return {}
        version = str(int(body["metadata"]["resourceVersion"]) + 1)
        return {
            "metadata": {"name": name, "resourceVersion": version},
            "spec": {"taints": body["spec"]["taints"]},
        }


def spec(isolation: str = "Partitions") -> api_superpod.SuperPodSpec:
    return api_superpod.SuperPodSpec.model_validate(
        {
            "profile": "cloudmatrix-384",
            "nodeSelector": {"matchLabels": {"pool": "sp"}},
            "isolation": isolation,
        }
    )


async def test_members_are_tainted_and_a_node_that_leaves_or_a_superpod_that_stops_isolating_is_untainted():
    view = membership.Membership()
    view.on_node("a3-0", None, node("a3-0", pool="sp"))
    view.on_node("cpu-0", None, node("cpu-0", taints=[OURS], pool="cpu"))
    view.on_superpod("cm384-a", spec(), "huawei.com/Ascend910")
    api = Api()
    taints = nodetaints.NodeTaints(api, view)  # type: ignore[arg-type]

    assert await taints.reconcile("cm384-a")
    assert api.patches == [
        ("a3-0", {"metadata": {"resourceVersion": "1"}, "spec": {"taints": [OURS]}}),
        ("cpu-0", {"metadata": {"resourceVersion": "1"}, "spec": {"taints": None}}),
    ]

    api.patches.clear()
    view.on_node("a3-0", None, node("a3-0", taints=[OURS], pool="sp"))  # the writes, as the watch shows them
    view.on_node("cpu-0", None, node("cpu-0", pool="cpu"))
    view.on_superpod("cm384-a", spec("None"), "huawei.com/Ascend910")
    assert view.changed("cm384-a").is_set()
    await taints.reconcile("cm384-a")
    assert api.patches == [("a3-0", {"metadata": {"resourceVersion": "1"}, "spec": {"taints": None}})]


async def test_a_deleted_superpod_takes_its_taints_away():
    view = membership.Membership()
    view.on_superpod("cm384-a", spec(), "huawei.com/Ascend910")
    view.on_node("a3-0", None, node("a3-0", taints=[OURS], pool="sp"))
    api = Api()
    await nodetaints.NodeTaints(api, view).reconcile("cm384-a", deleted=True)  # type: ignore[arg-type]
    assert [name for name, _ in api.patches] == ["a3-0"]


async def test_a_write_the_watch_has_not_brought_yet_counts():
    """Tainted a moment ago, the node still looks untainted to the watch: deleted now, the taint must go anyway."""
    view = membership.Membership()
    view.on_superpod("cm384-a", spec(), "huawei.com/Ascend910")
    view.on_node("a3-0", None, node("a3-0", pool="sp"))
    api = Api(answers=True)
    taints = nodetaints.NodeTaints(api, view)  # type: ignore[arg-type]
    assert await taints.reconcile("cm384-a")
    assert await taints.reconcile("cm384-a")  # the answer says it is done: not written twice
    assert len(api.patches) == 1

    await taints.reconcile("cm384-a", deleted=True)  # the watch still shows version 1, untainted
    assert api.patches[1] == ("a3-0", {"metadata": {"resourceVersion": "2"}, "spec": {"taints": None}})

    view.on_node("a3-0", None, node("a3-0", taints=[{**OURS, "value": "cm384-b"}], pool="sp"))  # moved on
    assert taints.newest("a3-0") == view.nodes["a3-0"]  # a newer copy than the answer: the watch's


class Owner:
    def __init__(self, owned: set[str], fenced: bool = False) -> None:
        self.owned = owned
        self.fenced = fenced

    def owns(self, superpod: str) -> bool:
        return superpod in self.owned

    @contextlib.contextmanager
    def writing(self, superpod: str) -> Iterator[None]:
        if self.fenced:
            raise shards.Fenced(superpod, "this replica's Lease is not renewed")
        yield


@pytest.mark.parametrize(
    ("case", "exists", "owner", "untainted"),
    [
        ("a gone SuperPod's taint is removed by the owner of its name", False, Owner({"gone"}), ["a3-0"]),
        ("not by another replica", False, Owner(set()), []),
        ("an existing SuperPod's taint stays (its own loop keeps it)", True, Owner({"gone"}), []),
    ],
)
async def test_taints_of_superpods_that_are_gone_are_swept(case, exists, owner, untainted):
    view = membership.Membership()
    view.on_node("a3-0", None, node("a3-0", taints=[OTHER, {**OURS, "value": "gone"}], pool="sp"))
    view.on_node("a3-1", None, node("a3-1", taints=[OTHER], pool="sp"))
    api = Api()
    settled = await nodetaints.NodeTaints(api, view).sweep_orphans(lambda name: exists, owner)  # type: ignore[arg-type]
    assert [name for name, _ in api.patches] == untainted, case
    assert [body["spec"]["taints"] for _, body in api.patches] == [[OTHER]] * len(untainted), case
    assert settled, case


async def test_a_sweep_that_lost_a_race_says_so():
    """A heartbeat changed the node between the copy and the write (409): the sweep is not settled."""
    view = membership.Membership()
    view.on_node("a3-0", None, node("a3-0", taints=[{**OURS, "value": "gone"}], pool="sp"))
    api = Api(conflict=True)
    assert not await nodetaints.NodeTaints(api, view).sweep_orphans(lambda name: False, Owner({"gone"}))  # type: ignore[arg-type]


async def test_a_fenced_replica_sweeps_nothing_and_does_not_fail():
    view = membership.Membership()
    view.on_node("a3-0", None, node("a3-0", taints=[{**OURS, "value": "gone"}], pool="sp"))
    api = Api()
    await nodetaints.NodeTaints(api, view).sweep_orphans(lambda name: False, Owner({"gone"}, fenced=True))  # type: ignore[arg-type]
    assert api.patches == []


def test_membership_follows_labels_and_lists_only_isolating_superpods():
    view = membership.Membership()
    view.on_superpod("cm384-a", spec(), "huawei.com/Ascend910")
    view.on_superpod("open", spec("None"), "huawei.com/Ascend910")
    view.on_node("a3-0", None, node("a3-0", pool="sp"))
    assert [(s.name, sorted(s.members)) for s in view.isolated()] == [("cm384-a", ["a3-0"])]
    view.on_node("a3-0", node("a3-0", pool="sp"), node("a3-0", pool="cpu"))
    assert view.isolated_member("a3-0") is None
    assert view.device_keys() == {"huawei.com/Ascend910"}


def test_membership_indexes_the_nodes_each_superpods_taint_is_on():
    view = membership.Membership()
    view.on_node("a3-0", None, node("a3-0", taints=[OTHER, OURS]))
    view.on_node("a3-1", None, node("a3-1", taints=[{**OURS, "value": "cm384-b"}]))
    view.on_node("a3-2", None, node("a3-2", taints=[OTHER]))
    assert view.tainted == {"cm384-a": {"a3-0"}, "cm384-b": {"a3-1"}}
    view.on_node("a3-1", view.nodes["a3-1"], node("a3-1", taints=[OURS]))  # its taint now names cm384-a
    view.on_node("a3-0", view.nodes["a3-0"], node("a3-0", taints=[OTHER]))  # untainted
    assert view.tainted == {"cm384-a": {"a3-1"}}
    view.on_node("a3-1", view.nodes["a3-1"], None)  # deleted
    assert view.tainted == {}


async def test_nodes_neither_members_nor_tainted_are_left_alone_among_many():
    view = membership.Membership()
    view.on_superpod("cm384-a", spec(), "huawei.com/Ascend910")
    for index in range(200):
        view.on_node(f"cpu-{index}", None, node(f"cpu-{index}", taints=[OTHER], pool="cpu"))
    view.on_node("a3-0", None, node("a3-0", pool="sp"))
    view.on_node("cpu-x", None, node("cpu-x", taints=[OURS], pool="cpu"))  # left the SuperPod, still tainted
    api = Api()
    assert await nodetaints.NodeTaints(api, view).reconcile("cm384-a")  # type: ignore[arg-type]
    assert [(name, body["spec"]["taints"]) for name, body in api.patches] == [
        ("a3-0", [OURS]),
        ("cpu-x", None),
    ]
