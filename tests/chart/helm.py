"""The real helm binary on the superpod-operator chart: lint and template, values passed as dicts.

Helm's cache, config and data directories point at a temporary directory, so the tests neither read nor
write the user's helm setup.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests import conftest

CHART = conftest.ROOT / "helm" / "superpod-operator"
BINARY = conftest.TOOLS_BIN / "helm"
RELEASE = "superpod"
NAMESPACE = "superpod-system"

Manifest = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Helm:
    """A helm binary with its own home directories."""

    binary: Path
    home: Path

    def run(self, *args: str, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), *args]
        if values is not None:
            digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
            values_file = self.home / f"values-{digest}.yaml"
            values_file.write_text(yaml.safe_dump(dict(values)))
            command += ["--values", str(values_file)]
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)

    def lint(self, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("lint", "--strict", str(CHART), values=values)

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        kube_version: str | None = None,
        extra: Sequence[str] = (),
    ) -> list[Manifest]:
        """The rendered manifests, CRDs included; raises with helm's message when rendering fails."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds", *extra]
        if kube_version:
            args += ["--kube-version", kube_version]
        result = self.run(*args, values=values)
        if result.returncode != 0:
            raise RenderError(result.stderr.strip())
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class RenderError(Exception):
    """helm template failed; the message is helm's."""


def find(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: Sequence[Manifest], kind: str) -> Manifest:
    found = find(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
