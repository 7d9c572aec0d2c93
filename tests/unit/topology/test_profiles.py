"""The built-in profiles' tiers and names, portable maxTier names, and custom profiles from spec.tiers."""

from __future__ import annotations

import pytest
from superpod.api import superpod as api_superpod
from superpod.topology import profiles


@pytest.mark.parametrize(
    ("name", "tiers", "resource", "per_node", "reserve"),
    [
        ("cloudmatrix-384", [("module", 2), ("node", 16), ("superpod", 768)], "huawei.com/Ascend910", 16, 2),
        ("atlas-950", [("node", 8), ("rack", 64), ("superpod", 8192)], "huawei.com/npu", 8, 0),
        ("atlas-960", [("node", 8), ("rack", 64), ("superpod", 15488)], "huawei.com/npu", 8, 0),
        (
            "atlas-950-supercluster",
            [("node", 8), ("rack", 64), ("superpod", 8192), ("cluster", 524288)],
            "huawei.com/npu",
            8,
            0,
        ),
        ("ascend-910a", [("module", 4), ("node", 8), ("cluster", 1 << 20)], "huawei.com/Ascend910", 8, 0),
        ("ascend-910b", [("node", 8), ("cluster", 1 << 20)], "huawei.com/Ascend910", 8, 0),
        ("nvidia-gb200-nvl72", [("node", 4), ("rack", 72), ("cluster", 1 << 20)], "nvidia.com/gpu", 4, 0),
    ],
)
def test_builtin_profiles(name, tiers, resource, per_node, reserve):
    profile = profiles.BUILTIN[name]
    assert [(tier.name, tier.domain_size) for tier in profile.tiers] == tiers
    assert profile.resource_name == resource
    assert profile.devices_per_node == per_node
    assert profile.reserve_nodes == reserve
    assert all(tier.bandwidth_gbps > 0 and tier.latency_us > 0 for tier in profile.tiers)


def test_design_figures_are_kept():
    superpod_tier = profiles.CLOUDMATRIX_384.tiers[-1]
    assert superpod_tier.bandwidth_gbps == 392.0  # A3 UB, >392 GB/s per chip one way
    assert profiles.ATLAS_950_SUPERCLUSTER.tiers[-1].bandwidth_gbps == 50.0  # RoCE 400 Gb/s per NPU


@pytest.mark.parametrize(
    ("profile", "written", "meant"),
    [
        pytest.param(profiles.ATLAS_950, "rack", "rack", id="an exact tier name is that tier"),
        pytest.param(
            profiles.CLOUDMATRIX_384, "rack", "node", id="rack on a profile without racks means node"
        ),
        pytest.param(profiles.ASCEND_910B, "superpod", "node", id="superpod on 910B means node"),
        pytest.param(profiles.ASCEND_910B, "module", None, id="module below the tightest tier means nothing"),
        pytest.param(profiles.ATLAS_950, "galaxy", None, id="an unknown name means nothing"),
    ],
)
def test_portable_max_tier_never_loosens_the_limit(profile, written, meant):
    index = profile.tier_index(written)
    assert (profile.tiers[index].name if index is not None else None) == meant


def tier(name: str, size: int) -> api_superpod.TierSpec:
    return api_superpod.TierSpec(name=name, domain_size=size, bandwidth_g_bps=100.0)


def test_a_custom_profile_takes_its_tiers_from_the_spec():
    spec = api_superpod.SuperPodSpec(
        profile=api_superpod.Profile.CUSTOM,
        super_pod_id=0,
        tiers=[tier("pair", 2), tier("node", 8), tier("pod", 64)],
    )
    profile = profiles.for_spec(spec)
    assert [t.name for t in profile.tiers] == ["pair", "node", "pod"]
    assert profile.rule.module_size == 2
    assert profile.devices_per_node == 8


def test_a_custom_profile_without_a_node_tier_names_one():
    profile = profiles.custom([tier("board", 4), tier("chassis", 16)], devices_per_node=4)
    assert [t.name for t in profile.tiers] == ["node", "chassis"]


def test_custom_tiers_must_nest():
    with pytest.raises(profiles.ProfileError, match="multiple"):
        profiles.custom([tier("node", 8), tier("rack", 12)])


def test_the_spec_resource_name_overrides_the_profile():
    spec = api_superpod.SuperPodSpec(
        profile=api_superpod.Profile.ATLAS_950, super_pod_id=1, resource_name="example.com/npu"
    )
    assert profiles.for_spec(spec).resource_name == "example.com/npu"


@pytest.mark.parametrize(
    ("profile", "name", "number"),
    [
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-0", 0, id="the first die of an A3 node"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-15", 15, id="the last die of an A3 node"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-16", None, id="past the 16 dies of an A3 node"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-99", None, id="far past them"),
        pytest.param(profiles.ASCEND_910B, "Ascend910-8", None, id="past the 8 NPUs of a 910B node"),
        pytest.param(profiles.CLOUDMATRIX_384, "bogus", None, id="no number"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-", None, id="a prefix alone"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-07", None, id="a leading zero"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910--1", None, id="a sign"),
        pytest.param(profiles.CLOUDMATRIX_384, "Ascend910-\u0663", None, id="a digit that is not ASCII"),
        pytest.param(profiles.CLOUDMATRIX_384, "npu-3", None, id="another profile's prefix"),
        pytest.param(profiles.ATLAS_950, "npu-7", 7, id="an Atlas 950 NPU"),
    ],
)
def test_device_names_a_node_of_the_profile_can_have(profile, name, number):
    assert profile.device_number(name) == number


def test_a_resource_name_override_renames_the_devices_as_the_device_plugin_does():
    spec = api_superpod.SuperPodSpec(
        profile=api_superpod.Profile.ASCEND_910B, super_pod_id=0, resource_name="huawei.com/Ascend910B"
    )
    profile = profiles.for_spec(spec)
    assert profile.device_names()[:2] == ("Ascend910B-0", "Ascend910B-1")
    assert profile.device_number("Ascend910B-7") == 7
    assert profile.device_number("Ascend910-7") is None
