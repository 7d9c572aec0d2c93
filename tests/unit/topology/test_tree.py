"""Building the tree from observed nodes: order along the topology, grouping by coordinates, reserve nodes."""

from __future__ import annotations

from superpod.topology import inventory, profiles, tree

ObservedNode = inventory.ObservedNode


def node(name: str, pod: int = -1, rack: int = -1, server: int = -1, **fields: object) -> ObservedNode:
    return ObservedNode(name=name, superpod_index=pod, rack=rack, server_index=server, **fields)  # type: ignore[arg-type]


def test_nodes_are_ordered_by_coordinates_then_name_with_unknown_last():
    built = tree.build(
        profiles.CLOUDMATRIX_384,
        [node("zeta"), node("b", 0, 0, 5), node("a", 0, 0, 7), node("alpha")],
        reserve_nodes=0,
    )
    assert [n.name for n in built.nodes] == ["b", "a", "alpha", "zeta"]


def test_racks_follow_the_device_plugin_rack_ids():
    nodes = [node(f"n{i}", 0, rack, i) for i, rack in enumerate([3, 3, 3, 7, 7])]
    built = tree.build(profiles.ATLAS_950, nodes)
    racks = built.levels[1]
    assert [(rack.id, rack.end_node - rack.first_node) for rack in racks] == [("rack-3", 3), ("rack-7", 2)]
    assert built.levels[2][0].id == "superpod-0"


def test_gb200_racks_are_the_nvlink_cliques_whatever_the_node_names():
    # two NVLink domains of unequal size whose node names interleave: chunks of 18 by name would mix them
    cliques = {f"gpu-{i:02d}": f"uuid-{'a' if i % 3 else 'b'}.1" for i in range(24)}
    built = tree.build(
        profiles.BUILTIN["nvidia-gb200-nvl72"], [node(n, rack_label=c) for n, c in cliques.items()]
    )
    racks = built.levels[1]
    assert [(rack.id, rack.end_node - rack.first_node) for rack in racks] == [
        ("rack-uuid-a.1", 16),
        ("rack-uuid-b.1", 8),
    ]
    for rack in racks:
        members = {built.nodes[i].name for i in range(rack.first_node, rack.end_node)}
        assert {cliques[name] for name in members} == {rack.id.removeprefix("rack-")}


def test_without_rack_ids_racks_are_chunks_of_the_nominal_size():
    nodes = [node(f"n{i:02d}") for i in range(20)]
    built = tree.build(profiles.ATLAS_950, nodes)
    assert [rack.end_node - rack.first_node for rack in built.levels[1]] == [8, 8, 4]


def test_the_supercluster_nests_racks_inside_superpods():
    nodes = [
        node(f"p{pod}r{rack}n{i}", pod, rack, i) for pod in range(2) for rack in range(2) for i in range(2)
    ]
    built = tree.build(profiles.ATLAS_950_SUPERCLUSTER, nodes)
    assert [d.id for d in built.levels[1]] == [
        "superpod-0/rack-0",
        "superpod-0/rack-1",
        "superpod-1/rack-0",
        "superpod-1/rack-1",
    ]
    assert [d.id for d in built.levels[2]] == ["superpod-0", "superpod-1"]
    assert built.node_domains(built.nodes[-1]) == {
        "node": "p1r1n1",
        "rack": "superpod-1/rack-1",
        "superpod": "superpod-1",
        "cluster": "cluster",
    }


def test_the_last_nodes_along_the_topology_are_the_reserve():
    built = tree.build(profiles.CLOUDMATRIX_384, inventory.synthesize(profiles.CLOUDMATRIX_384))
    assert [n.index for n in built.nodes if n.reserve] == [46, 47]


def test_health_at_observation_becomes_the_initial_unhealthy_mask():
    devices = profiles.CLOUDMATRIX_384.device_names()
    built = tree.build(
        profiles.CLOUDMATRIX_384,
        [
            node("a", devices=devices, unhealthy=frozenset({"Ascend910-3"})),
            node("b", devices=devices, ready=False),
        ],
        reserve_nodes=0,
    )
    assert built.nodes[0].initially_unhealthy == 1 << 3
    assert built.nodes[1].initially_unhealthy == (1 << 16) - 1


def test_devices_are_numbered_by_their_id_not_their_spelling():
    built = tree.build(
        profiles.CLOUDMATRIX_384,
        [node("a", devices=("Ascend910-10", "Ascend910-2", "Ascend910-1"))],
        reserve_nodes=0,
    )
    assert built.nodes[0].devices == ("Ascend910-1", "Ascend910-2", "Ascend910-10")


def test_synthesised_inventories_fill_the_profile():
    for profile in profiles.BUILTIN.values():
        nodes = inventory.synthesize(profile)
        assert len(nodes) == profile.default_nodes
        assert len({n.name for n in nodes}) == len(nodes)
    assert tree.build(profiles.ATLAS_960, inventory.synthesize(profiles.ATLAS_960)).total_devices == 15_488


def test_a_node_missing_a_die_never_pairs_dies_of_two_modules():
    devices = tuple(f"Ascend910-{i}" for i in range(16) if i != 2)
    built = tree.build(profiles.CLOUDMATRIX_384, [node("a", devices=devices)], reserve_nodes=0)
    only = built.nodes[0]
    pairs = [[only.devices[bit] for bit in range(16) if module >> bit & 1] for module in only.modules]
    assert ["Ascend910-3"] in pairs  # its partner, die 2, is missing
    assert ["Ascend910-4", "Ascend910-5"] in pairs
    assert all(len(pair) == 2 or pair == ["Ascend910-3"] for pair in pairs)
