"""`superpod sim` as separate processes against a sandbox: up --once, fault and heal from another process, down."""

from __future__ import annotations

import json
import subprocess
import sys

from superpod.cluster import deviceinfo

from tests.conftest import TOOLS_BIN

CONFIGMAP = deviceinfo.configmap_name("cloudmatrix-384-0-1")


def _kubectl(kubeconfig: str, *args: str) -> str:
    done = subprocess.run(
        [str(TOOLS_BIN / "kubectl"), "--kubeconfig", kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _superpod(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "superpod.cli", "sim", *args, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_fault_heal_and_down_from_separate_processes(sandbox_thread):
    kubeconfig = sandbox_thread.kubeconfig
    up = _superpod(kubeconfig, "up", "--profile", "cloudmatrix-384", "--nodes", "3", "--once")
    assert up.returncode == 0, up.stderr
    assert "fleet cloudmatrix-384-0: 3 nodes" in up.stdout
    fault = _superpod(
        kubeconfig,
        "fault",
        "--node",
        "cloudmatrix-384-0-1",
        "--device",
        "Ascend910-4",
        "--kind",
        "recovering",
    )
    assert fault.returncode == 0, fault.stderr
    assert "recovering fault on Ascend910-4,Ascend910-5" in fault.stdout
    document = json.loads(
        _kubectl(
            kubeconfig,
            "get",
            "configmap",
            "-n",
            "kube-system",
            CONFIGMAP,
            "-o",
            "jsonpath={.data.DeviceInfoCfg}",
        )
    )
    assert (
        document["DeviceInfo"]["DeviceList"]["huawei.com/Ascend910-Recovering"] == "Ascend910-4,Ascend910-5"
    )
    wrong = _superpod(
        kubeconfig,
        "fault",
        "--node",
        "cloudmatrix-384-0-1",
        "--device",
        "Ascend910-99",
        "--kind",
        "unhealthy",
    )
    assert wrong.returncode == 1 and "no device Ascend910-99" in wrong.stderr
    heal = _superpod(kubeconfig, "heal", "--node", "cloudmatrix-384-0-1")
    assert heal.returncode == 0, heal.stderr
    down = _superpod(kubeconfig, "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "deleted 3 nodes, 3 ConfigMaps, 0 pods"
    assert _kubectl(kubeconfig, "get", "nodes", "-o", "name") == ""
