"""Shared test configuration: the repository paths and the real tool binaries."""

from __future__ import annotations

from pathlib import Path

import hypothesis

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"
# Samples of what the Ascend software stack publishes and reads (their source: the README beside them).
REFERENCE = ROOT / "tests" / "fixtures" / "reference"

# Hypothesis's too_slow health check times data generation by the wall clock: on a shared 2-core machine a starved
# process fails it though the test is sound (tests/unit/controller/test_rendezvous.py: "only generated 3 valid
# inputs after 1.31 seconds", one draw of 1.28 s, at load 14). The examples and the assertions are unchanged.
hypothesis.settings.register_profile("superpod", suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("superpod")
