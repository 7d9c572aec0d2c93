"""A real Prometheus (Debian's /usr/bin/prometheus) on 127.0.0.1: start, query, stop by PID.

It stores into a temporary directory, scrapes and evaluates every second, and is ready once `/-/ready` answers;
its first sample shows about 5-6 s after the start, so callers poll (`wait_for`) rather than sleep. Rules are
evaluated every 2 s: the joins over NPU-Exporter series are the heaviest work on a shared 2-core machine.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """`scrape_configs` as in prometheus.yml; `rule_files` are loaded as they are."""

    def __init__(self, scrape_configs: list[dict[str, Any]], rule_files: Sequence[pathlib.Path] = ()) -> None:
        self.scrape_configs = scrape_configs
        self.rule_files = [str(path.resolve()) for path in rule_files]
        self.port = 0
        self.directory: pathlib.Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="superpod-prometheus-"))
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "2s"},
            "rule_files": self.rule_files,
            "scrape_configs": self.scrape_configs,
        }
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready within {timeout}s: {self.log()}")

    def log(self) -> str:
        path = self.directory / "prometheus.log" if self.directory else None
        return path.read_text()[-3000:] if path and path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # by PID: only the process this object started
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- the HTTP API --------------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until `expr` returns a non-empty result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])
