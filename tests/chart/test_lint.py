"""`helm lint --strict` passes with the default values and with every optional feature enabled."""

from __future__ import annotations

import pytest

from tests.chart import cases

LINTED = {
    "the default values": {},
    "every optional feature is on": cases.EVERY_FEATURE,
    "the operator manages its webhook configuration": cases.VALUE_SETS[
        "the operator manages its webhook configuration"
    ],
    "a single standalone replica": cases.VALUE_SETS["a single standalone replica"],
}


@pytest.mark.parametrize("case", LINTED)
def test_helm_lint_strict_passes(helm, case):
    result = helm.lint(LINTED[case])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout


def test_helm_lint_strict_fails_on_a_value_the_schema_rejects(helm):
    result = helm.lint({"webhook": {"failurePolicy": "Sometimes"}})
    assert result.returncode != 0
    assert "failurePolicy" in result.stdout + result.stderr
