"""Shared test configuration: the repository paths and the real tool binaries."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
# Samples of what the Ascend software stack publishes and reads (their source: the README beside them).
REFERENCE = ROOT / "tests" / "fixtures" / "reference"
