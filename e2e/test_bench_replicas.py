"""`superpod bench e2e --replicas N`: the same load on 1 replica, then on N sharing the SuperPods, side by side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e import environment
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    environment.cluster_kubeconfig() is not None, reason="the benchmark starts its own sandbox"
)


def test_the_benchmark_compares_replicas_sharing_superpods_with_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "bench", "e2e", "--profile", "cloudmatrix-384", "--superpods", "2",
         "--replicas", "2", "--partitions", "12", "--rate", "20", "--burst", "12", "--json", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    one, two = report["rounds"]
    assert (one["setup"]["replicas"], two["setup"]["replicas"]) == (1, 2)
    for round_ in (one, two):
        assert round_["setup"]["coordination"] == "leases"
        assert round_["setup"]["superpods"] == 2 and round_["setup"]["devices"] == 2 * 768
        for phase in ("paced", "burst"):
            assert round_[phase]["partitions"] == 12  # every one placed, or the phase times out
            assert 0 < round_[phase]["p50Ms"] <= round_[phase]["p99Ms"]
    assert one["ownership"] == {"r0": 2}
    assert two["ownership"] == {"r0": 1, "r1": 1}  # each replica owns one SuperPod
    assert [replica["replica"] for replica in two["perReplica"]] == ["r0", "r1"]
    assert all(replica["pacedCpuSeconds"] + replica["burstCpuSeconds"] > 0 for replica in two["perReplica"])
    assert report["comparison"]["paced.p50Ms"] == {"1": one["paced"]["p50Ms"], "2": two["paced"]["p50Ms"]}
    assert (tmp_path / "operator-2-replicas-r1.log").read_text().count("placed bench/") > 0
