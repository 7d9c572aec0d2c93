"""Fixtures the sandbox's kubectl tests share."""

import subprocess

import pytest

from tests.conftest import TOOLS_BIN

KUBECTL = str(TOOLS_BIN / "kubectl")


@pytest.fixture
def kubectl(sandbox_thread, tmp_path):
    def run(*args, check=True, stdin=None):
        command = [
            KUBECTL,
            "--kubeconfig",
            sandbox_thread.kubeconfig,
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
        ]
        done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr}")
        return done

    return run
