"""`superpod bench e2e` on a small fleet: it places every partition it applies and reports each figure."""

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


def test_the_e2e_benchmark_times_paced_and_burst_applies_and_reads_the_operators_memory(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "bench", "e2e", "--profile", "cloudmatrix-384",
         "--partitions", "30", "--rate", "50", "--burst", "30", "--json", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["setup"]["devices"] == 768 and report["setup"]["nodes"] == 48
    for phase in ("paced", "burst"):
        figures = report[phase]
        assert figures["partitions"] == 30
        assert 0 < figures["p50Ms"] <= figures["p99Ms"] <= figures["maxMs"]
        assert figures["allPlacedSeconds"] * 1000 >= figures["maxMs"] - 1
        assert figures["operatorCpuMsPerPartition"] > 0
        seconds = figures["bySecond"]  # every partition in the second it was applied, none twice
        assert sum(second["applied"] for second in seconds) == 30
        assert max(second["maxMs"] for second in seconds) == figures["maxMs"]
    assert report["paced"]["allPlacedSeconds"] >= 29 / 50  # paced: the last apply comes 0.58 s in
    assert report["memory"]["partitions"] == 60
    assert 20 < report["memory"]["rssMb"] <= report["memory"]["peakRssMb"]
    assert set(report["targets"]) == {"paced_p99_ms", "burst_seconds", "rss_mb"}
