"""Every example manifest is valid against its generated CRD; every invalid one fails with its stated error.

Validation runs as kube-apiserver would on create with `fieldValidation=Strict`: unknown fields are errors,
defaults are applied, the OpenAPI schema and the CEL rules are checked (superpod_sandbox.apiserver.schema.structural). The error text
an invalid example must contain is on its first line: `# error: <text>`; it is looked for in the message kube
would return (`unknown field "spec.x"` for strict decoding, `<Kind>.<group> "<name>" is invalid: <field>:
<message>` otherwise). Built-in kinds among the examples (the tenant Namespace) are checked by
kubernetes-validate instead.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import kubernetes_validate
import pytest
import yaml
from superpod.api import superpod
from superpod_sandbox.apiserver.schema import structural

from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
VALID_FILES = sorted(EXAMPLES.glob("*.yaml"))
INVALID_FILES = sorted((EXAMPLES / "invalid").glob("*.yaml"))

INLINE_VALID = """
apiVersion: superpod.dev/v1alpha1
kind: SuperPodPartition
metadata: {name: inline, namespace: team-a}
spec: {superPod: cm384-a, npus: 64, blockSize: 16, devicesPerPod: 16}
"""
INLINE_INVALID = """# error: devicesPerPod must divide npus
apiVersion: superpod.dev/v1alpha1
kind: SuperPodPartition
metadata: {name: inline, namespace: team-a}
spec: {superPod: cm384-a, npus: 16, devicesPerPod: 6}
"""


@functools.cache
def schemas() -> dict[tuple[str, str], tuple[str, structural.StructuralSchema]]:
    """(apiVersion, kind) -> (group, compiled schema) for every CRD version in crds/."""
    found = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            found[(f"{group}/{version['name']}", kind)] = (
                group,
                structural.StructuralSchema(version["schema"]["openAPIV3Schema"]),
            )
    return found


def kube_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> str:
    """What kube-apiserver would answer to a create (or, with `old`, an update) of `obj`; "" when accepted."""
    group, compiled = schemas()[(obj["apiVersion"], obj["kind"])]
    candidate = copy.deepcopy(obj)
    unknown = compiled.prune(candidate)
    if unknown:
        fields = ", ".join(f'unknown field "{path}"' for path in unknown)
        return f"{obj['kind']} in version cannot be handled: strict decoding error: {fields}"
    compiled.default(candidate)
    causes = compiled.validate(candidate, old)
    if not causes:
        return ""
    listed = [f"{cause.field}: {cause.message}" for cause in causes]
    body = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
    return f'{obj["kind"]}.{group} "{obj["metadata"]["name"]}" is invalid: {body}'


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def stated_error(text: str) -> str:
    first = text.splitlines()[0]
    assert first.startswith("# error: "), "an invalid example states its error on its first line"
    return first.removeprefix("# error: ").strip()


VALID_CASES = [pytest.param(path.read_text(), id=path.name) for path in VALID_FILES]
VALID_CASES.append(pytest.param(INLINE_VALID, id="an inline partition in blocks"))
INVALID_CASES = [pytest.param(path.read_text(), id=path.name) for path in INVALID_FILES]
INVALID_CASES.append(pytest.param(INLINE_INVALID, id="an inline partition with an uneven pod size"))


@pytest.mark.parametrize("text", VALID_CASES)
def test_valid_examples_are_accepted(text: str) -> None:
    for doc in documents(text):
        if (doc["apiVersion"], doc["kind"]) in schemas():
            assert kube_errors(doc) == ""
        else:
            newest = kubernetes_validate.latest_version()
            kubernetes_validate.validate(doc, newest, strict=True)  # raises when invalid


@pytest.mark.parametrize("text", INVALID_CASES)
def test_invalid_examples_fail_with_their_stated_error(text: str) -> None:
    (doc,) = documents(text)
    errors = kube_errors(doc)
    assert errors, "the example was accepted"
    assert stated_error(text) in errors


def test_every_example_folder_is_covered() -> None:
    assert len(VALID_CASES) == len(VALID_FILES) + 1
    assert len(INVALID_CASES) == len(INVALID_FILES) + 1


def test_every_hardware_profile_has_an_example_superpod() -> None:
    profiles = {
        doc["spec"]["profile"]
        for path in VALID_FILES
        for doc in documents(path.read_text())
        if doc.get("kind") == "SuperPod"
    }
    assert profiles == {profile.value for profile in superpod.Profile}


def stored_partition() -> dict[str, Any]:
    (doc,) = documents(INLINE_VALID)
    _, compiled = schemas()[(doc["apiVersion"], doc["kind"])]
    compiled.default(doc)
    return doc


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        pytest.param(
            "npus", 128, "npus is immutable; delete and recreate the partition", id="npus is immutable"
        ),
        pytest.param("blockSize", 32, "blockSize is immutable", id="blockSize is immutable"),
        pytest.param("superPod", "cm384-b", "superPod is immutable", id="superPod is immutable"),
        pytest.param("wholeNodes", True, "wholeNodes is immutable", id="wholeNodes is immutable"),
        pytest.param("repairPolicy", "Manual", "", id="repairPolicy may change"),
    ],
)
def test_updates_keep_placement_fields_fixed(field: str, value: Any, error: str) -> None:
    old = stored_partition()
    new = copy.deepcopy(old)
    new["spec"][field] = value
    errors = kube_errors(new, old)
    if error:
        assert error in errors
        assert 'SuperPodPartition.superpod.dev "inline" is invalid: spec: Invalid value: ' in errors
    else:
        assert errors == ""


def test_removing_an_optional_placement_field_is_refused() -> None:
    old = stored_partition()
    new = copy.deepcopy(old)
    del new["spec"]["devicesPerPod"]
    assert "devicesPerPod is immutable" in kube_errors(new, old)


def test_the_example_job_runs_one_indexed_worker_per_slot_of_its_partition() -> None:
    (job,) = documents((EXAMPLES / "job-train-64.yaml").read_text())
    (partition,) = documents((EXAMPLES / "partition-64-blocks-of-16.yaml").read_text())
    spec, pod = job["spec"], job["spec"]["template"]
    slots = partition["spec"]["npus"] // partition["spec"]["devicesPerPod"]
    assert spec["completionMode"] == "Indexed"  # the completion index is each worker's rank hint
    assert spec["completions"] == spec["parallelism"] == slots
    assert pod["metadata"]["labels"]["superpod.dev/partition"] == partition["metadata"]["name"]
    assert job["metadata"]["namespace"] == partition["metadata"]["namespace"]
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {
        "huawei.com/Ascend910": str(partition["spec"]["devicesPerPod"])
    }
