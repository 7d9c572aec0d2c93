"""Each profile gets its rank table version, and a table renders to the compact text MindCluster stores."""

from __future__ import annotations

import json

import pytest
from superpod.api import superpod
from superpod.ranktable import levels, render, tables, versions

from tests.unit.ranktable import builders


@pytest.mark.parametrize(
    ("profile", "version"),
    [
        pytest.param(superpod.Profile.ASCEND_910A, tables.Version.V1_0, id="910A servers read v1.0"),
        pytest.param(superpod.Profile.ASCEND_910B, tables.Version.V1_0, id="910B servers read v1.0"),
        pytest.param(superpod.Profile.CLOUDMATRIX_384, tables.Version.V1_2, id="the A3 SuperPoD reads v1.2"),
        pytest.param(superpod.Profile.ATLAS_950, tables.Version.V2_0, id="the Atlas 950 reads v2.0"),
        pytest.param(superpod.Profile.ATLAS_960, tables.Version.V2_0, id="the Atlas 960 reads v2.0"),
        pytest.param(
            superpod.Profile.ATLAS_950_SUPERCLUSTER, tables.Version.V2_0, id="the SuperCluster reads v2.0"
        ),
        pytest.param(superpod.Profile.NVIDIA_GB200_NVL72, None, id="GB200 runs NCCL and gets no rank table"),
        pytest.param(superpod.Profile.CUSTOM, None, id="custom hardware gets no rank table"),
    ],
)
def test_the_profile_decides_the_version(profile, version):
    assert versions.version_for_profile(profile) is version
    assert versions.version_for_profile(profile.value) is version


def test_every_profile_has_a_decision():
    for profile in superpod.Profile:
        # a profile added to the API without a decision here raises KeyError
        assert versions.version_for_profile(profile) in (*tables.Version, None)


def test_an_unknown_profile_name_is_an_error():
    with pytest.raises(ValueError, match="not-a-profile"):
        versions.version_for_profile("not-a-profile")


@pytest.mark.parametrize("version", list(tables.Version), ids=lambda v: f"v{v.value}")
def test_build_dispatches_to_the_builder_of_the_version(version):
    value = builders.annotation("10.0.0.1", [builders.device(0, "29.0.0.1", "37748736")])

    table = versions.build(version, [builders.slot(0, [0], value)])

    assert table.version is version
    assert json.loads(render.render(table))["version"] == version.value


def test_the_text_is_compact_json_without_a_trailing_newline():
    table = tables.ServerRankTable(
        status=tables.Status.COMPLETED,
        version=tables.Version.V1_0,
        servers=(tables.ServerEntry("s", "h", (tables.DeviceEntry("0", "ip", 0),)),),
    )

    assert render.render(table) == (
        '{"status":"completed","version":"1.0","server_count":"1","server_list":'
        '[{"server_id":"s","host_ip":"h","device":[{"device_id":"0","device_ip":"ip","rank_id":"0"}]}]}'
    )


def test_unknown_optional_fields_are_left_out_as_go_omitempty_does():
    server = tables.ServerEntry(
        "s", "h", (tables.DeviceEntry("0", "ip", 0),), container_ip=None, hardware_type=""
    )

    assert list(
        render.document(tables.ServerRankTable(tables.Status.INITIALIZING, tables.Version.V1_0, (server,)))[
            "server_list"
        ][0]
    ) == ["server_id", "host_ip", "device"]


def test_characters_go_escapes_are_escaped_the_same_way_and_the_rest_stays_utf8():
    element = levels.LevelElement(0, "a<b>&c\u2028é", "TOPO_FILE_DESC", "", ())
    table = tables.RankListTable(tables.Status.COMPLETED, (tables.RankEntry(0, 0, 0, (element,)),))

    text = render.render(table)

    assert '"net_instance_id":"a\\u003cb\\u003e\\u0026c\\u2028é"' in text
    assert json.loads(text)["rank_list"][0]["level_list"][0]["net_instance_id"] == "a<b>&c\u2028é"
