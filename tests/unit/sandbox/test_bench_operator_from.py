"""`superpod bench e2e --operator-from CHECKOUT`: the operators run another checkout's code, for a baseline
measured in the same runs; anything but a checkout is refused with one line before anything starts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from superpod_sandbox.commands import bench_cluster


def _checkout(root: Path, says: str) -> Path:
    """A checkout whose `superpod` command prints `says` and where it was loaded from."""
    package = root / "operator" / "superpod"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(f"import sys\nprint({says!r}, __file__, sys.argv[1:])\n")
    (root / "sandbox").mkdir()
    return root


def test_the_operator_processes_run_the_other_checkouts_code(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "baseline", "baseline operator")
    log = tmp_path / "operator.log"

    async def spawned() -> int:
        process = await bench_cluster._spawn(log, "run", "--standalone", checkout=checkout)
        return await process.wait()

    assert asyncio.run(spawned()) == 0
    said = log.read_text()
    assert said.startswith("baseline operator")
    assert str(checkout / "operator" / "superpod" / "cli.py") in said
    assert "['run', '--standalone']" in said


def test_the_other_checkout_comes_first_on_the_path_and_the_inherited_path_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = _checkout(tmp_path / "baseline", "")
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert bench_cluster.operator_path(checkout).split(os.pathsep) == [
        str(checkout / "operator"),
        str(checkout / "sandbox"),
        "/somewhere/else",
    ]


@pytest.mark.parametrize("made", [False, True], ids=["a missing directory", "a directory without the code"])
def test_anything_but_a_checkout_is_refused_in_one_line_before_anything_starts(
    tmp_path: Path, made: bool
) -> None:
    elsewhere = tmp_path / "not-a-checkout"
    if made:
        (elsewhere / "operator").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a checkout of superpod-operator"):
        bench_cluster.operator_path(elsewhere)
    finished = subprocess.run(
        [sys.executable, "-m", "superpod.cli", "bench", "e2e", "--operator-from", str(elsewhere), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.strip().splitlines() == [
        f"superpod bench e2e: --operator-from: {elsewhere} is not a checkout of superpod-operator "
        "(no operator/superpod/cli.py)"
    ]
