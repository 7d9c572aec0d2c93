"""`superpod demo --once`, the README's first command, runs the whole journey and exits 0: partitions placed, the
example Indexed Job applied with kubectl, its pods pinned, its rank table completed and the Job Complete.

What the demo applies on the other profiles (Atlas 800T A2 servers without SuperPoD ids among them) is planned
over their simulated fleets by the operator's own code in tests/unit/sim/test_demo_manifests.py."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def run_demo(directory, *options: str) -> str:
    """`superpod demo --once` with `options`; what it printed, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "demo", "--once", *options, "--dir", str(directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_demo_places_binds_and_completes_the_rank_table(tmp_path):
    out = run_demo(tmp_path)
    assert "first placement" in out
    for name in ("train-2", "train-16", "train-64", "train-256"):
        assert f"team-a/{name}: Allocated" in out
    assert (
        "rank table ConfigMap rings-config-train-64: hccl.json version 1.2, status completed, 64 ranks" in out
    )
    assert "RANK 48" in out
    assert "kubectl apply -f examples/job-train-64.yaml" in out  # the example Indexed Job, as users apply it
    assert "job.batch/train-64 created" in out
    assert "Job train-64 Complete: 4/4 succeeded, completed indexes 0-3" in out
    assert (tmp_path / "kubeconfig").exists()
