"""NOTES.txt (shown after `helm install`) tells users what to check and what helm leaves behind."""

from __future__ import annotations

import pytest

from tests.chart import cases
from tests.chart import helm as chart_helm


def _notes(helm: chart_helm.Helm, case: str) -> str:
    result = helm.run(
        "install",
        "superpod-operator",
        str(chart_helm.CHART),
        "--namespace",
        "superpod-system",
        "--dry-run=client",
        values=cases.VALUE_SETS[case],
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize(
    ("case", "present", "absent"),
    [
        (
            "the default values",
            [
                "rollout status deployment/superpod-operator",
                "CRDs stay installed",
                "sharing the SuperPods through Leases in superpod-system",
                "get leases -l superpod.dev/shard-role",
            ],
            ["mutatingwebhookconfiguration superpod-operator", "kopf peering"],
        ),
        ("replicas with kopf peering", ['one active through kopf peering "superpod-operator"'], ["Leases"]),
        (
            "the operator manages its webhook configuration",
            ["kubectl delete mutatingwebhookconfiguration superpod-operator"],
            [],
        ),
        ("a single standalone replica", ["1 replica(s)"], ["kopf peering", "Leases"]),
    ],
)
def test_the_notes_fit_the_values(helm, case, present, absent):
    notes = _notes(helm, case)
    for text in present:
        assert text in notes
    for text in absent:
        assert text not in notes
    assert "WARNING" not in notes  # the chart ships the peering CRD, so the peering object is created
