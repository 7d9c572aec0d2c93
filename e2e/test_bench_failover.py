"""`superpod bench e2e --failover`: a replica killed with SIGKILL mid-run; its SuperPods are taken over, their
waiting partitions placed, and at the end no device is held twice and none is lost."""

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


def test_a_replica_killed_mid_run_hands_its_superpods_over_with_every_device_accounted_for(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "bench", "e2e", "--profile", "cloudmatrix-384", "--superpods", "4",
         "--replicas", "2", "--no-baseline", "--failover", "--partitions", "60", "--rate", "10", "--burst", "20",
         "--json", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    failover = report["failover"]
    assert failover["killed"] == "r1" and len(failover["superPods"]) == 2  # 4 SuperPods over 2 replicas
    assert failover["holders"] == {"r0": 4}  # the survivor holds them all
    # taken over only once the killed replica's Leases expired (10 s), and its queue placed after that
    assert 0 < failover["ownedAgainSeconds"] <= failover["placedSeconds"]
    assert failover["waitingPartitions"] > 0  # the paced applies went on while nobody owned those SuperPods
    for phase in ("paced", "burst"):
        assert report[phase]["partitions"] in (60, 20)  # every one placed, or the phase times out
    books = report["invariants"]
    assert books["ok"], books  # no device held twice, none lost, every SuperPod's counts balance
    assert books["partitions"] == books["placed"] == 80 and books["devicesHeld"] > 0
