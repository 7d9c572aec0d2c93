"""One real Prometheus for the monitoring tests, scraping the scene's operator exporter and NPU-Exporters."""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator

import pytest

from tests.monitoring import prometheus, scene, stage


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


@pytest.fixture(scope="session")
def world() -> scene.World:
    return scene.populated(scene.HALF)


@pytest.fixture(scope="session")
def monitored(world: scene.World) -> Iterator[prometheus.Prometheus]:
    """Prometheus scraping the scene, once both jobs have delivered samples; stopped (by PID) at the end."""
    if not pathlib.Path(prometheus.BINARY).exists():
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    with stage.Stage(world) as running:
        assert running.prometheus is not None
        server = running.prometheus
        assert server.wait_for('up{job="superpod-operator"} == 1', timeout=60), server.log()
        assert server.wait_for(f'up{{job="{stage.NPU_JOB}"}} == 1', timeout=60), server.log()
        yield server
