"""values.schema.json rejects bad values with a message that names the value, and documents every value."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.chart import helm as chart_helm

REJECTED = {
    "a replica count given as a word is rejected": (
        {"replicaCount": "two"},
        ["/replicaCount", "got string, want integer"],
    ),
    "an unknown top-level value is rejected": (
        {"replicas": 2},
        ["additional properties 'replicas' not allowed"],
    ),
    "a misspelled nested value is rejected": (
        {"webhook": {"failurPolicy": "Fail"}},
        ["/webhook", "'failurPolicy' not allowed"],
    ),
    "an unknown failure policy is rejected": (
        {"webhook": {"failurePolicy": "Sometimes"}},
        ["/webhook/failurePolicy", "Fail", "Ignore"],
    ),
    "a webhook timeout above the API server's limit is rejected": (
        {"webhook": {"timeoutSeconds": 31}},
        ["/webhook/timeoutSeconds", "maximum"],
    ),
    "an unknown owner of the webhook configuration is rejected": (
        {"webhook": {"configManagedBy": "helm"}},
        ["/webhook/configManagedBy", "chart", "operator"],
    ),
    "several standalone replicas are rejected": (
        {"operator": {"coordination": "standalone"}},
        ["/replicaCount", "maximum: got 2, want 1"],
    ),
    "an unknown coordination is rejected": (
        {"operator": {"coordination": "raft"}},
        ["/operator/coordination", "leases", "peering", "standalone"],
    ),
    "a lease duration of zero is rejected": (
        {"operator": {"leases": {"duration": 0}}},
        ["/operator/leases/duration"],
    ),
    "an issuer of an unknown kind is rejected": (
        {"webhook": {"certManager": {"enabled": True, "issuerRef": {"name": "ca", "kind": "Vault"}}}},
        ["/webhook/certManager/issuerRef/kind"],
    ),
    "a malformed image digest is rejected": (
        {"image": {"digest": "latest"}},
        ["/image/digest"],
    ),
}


@pytest.mark.parametrize("case", REJECTED)
def test_a_bad_value_is_rejected_with_a_readable_error(helm, case):
    values, expected = REJECTED[case]
    with pytest.raises(chart_helm.RenderError) as failure:
        helm.template(values)
    message = str(failure.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message


def _leaf_paths(value, prefix=()):
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from _leaf_paths(child, (*prefix, key))
    else:
        yield prefix


def test_the_schema_describes_every_value_in_values_yaml():
    schema = json.loads((chart_helm.CHART / "values.schema.json").read_text())
    values = yaml.safe_load((chart_helm.CHART / "values.yaml").read_text())
    for path in _leaf_paths(values):
        node = schema
        for key in path:
            if "properties" not in node:
                break  # a free-form map (resources, labels): the schema describes it as a whole
            assert key in node["properties"], f"values.schema.json does not describe {'.'.join(path)}"
            node = node["properties"][key]
            assert node.get("description"), f"{'.'.join(path)} has no description in values.schema.json"


def _undocumented_keys(text: str) -> list[str]:
    """Keys of values.yaml with no comment line right above them, except section headings whose own keys
    are all documented; the lines under a documented key are its default value, not further values."""
    lines = text.splitlines()
    undocumented = []
    skip_deeper_than = None
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None and indent > skip_deeper_than:
            continue
        skip_deeper_than = None
        above = lines[number - 1].strip() if number else ""
        if above.startswith("#"):
            skip_deeper_than = indent
        elif not stripped.endswith(":"):
            undocumented.append(stripped)
    return undocumented


def test_every_value_in_values_yaml_has_a_comment():
    assert _undocumented_keys((chart_helm.CHART / "values.yaml").read_text()) == []


def test_the_comment_check_notices_an_undocumented_value():
    assert _undocumented_keys("image:\n  # -- documented\n  tag: x\n  pullPolicy: Always\n") == [
        "pullPolicy: Always"
    ]
