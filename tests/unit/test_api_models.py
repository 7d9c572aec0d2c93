"""The typed API models read every example manifest and document every field."""

from __future__ import annotations

import pydantic
import pytest
import yaml
from superpod.api import common, partition, superpod

from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
MODELS: dict[str, type[pydantic.BaseModel]] = {
    superpod.KIND: superpod.SuperPod,
    partition.KIND: partition.SuperPodPartition,
}


def _documents(path):
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_reads_into_its_model(path):
    for doc in _documents(path):
        model = MODELS.get(doc["kind"])
        if model is None:
            continue
        assert doc["apiVersion"] == common.API_VERSION
        model.model_validate(doc)


def test_there_is_a_superpod_example_for_every_profile():
    profiles = {
        doc["spec"]["profile"]
        for path in EXAMPLES
        for doc in _documents(path)
        if doc["kind"] == superpod.KIND
    }
    assert profiles == {profile.value for profile in superpod.Profile}


def _all_models(model: type[pydantic.BaseModel], seen: set[type[pydantic.BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _type_args(field.annotation):
            if isinstance(arg, type) and issubclass(arg, pydantic.BaseModel):
                _all_models(arg, seen)


def _type_args(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _type_args(arg)


@pytest.mark.parametrize("root", [superpod.SuperPod, partition.SuperPodPartition], ids=lambda m: m.__name__)
def test_every_spec_and_status_field_has_a_docstring(root):
    models: set[type[pydantic.BaseModel]] = set()
    _all_models(root, models)
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        if model not in (superpod.SuperPod, partition.SuperPodPartition)
        for name, field in model.model_fields.items()
        if not field.description
    ]
    assert undocumented == []


def test_strict_spec_rejects_unknown_fields():
    with pytest.raises(pydantic.ValidationError, match="gpus"):
        partition.PartitionSpec.model_validate({"superPod": "a", "npus": 2, "gpus": 2})


def test_status_written_by_a_newer_version_still_reads():
    status = partition.PartitionStatus.model_validate({"phase": "Allocated", "futureField": 1})
    assert status.phase is partition.Phase.ALLOCATED
