"""The AdmissionReview the webhook answers: the patch of a bound pod, denials with their message, failures."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from superpod.controller import admission, podmutation

from tests.unit.admission import builders

BINDING = podmutation.Binding(
    name=None,
    node="node-3",
    devices=("Ascend910-2", "Ascend910-3"),
    rank=6,
    world_size=16,
    resource="huawei.com/Ascend910",
    rank_table="rings-config-train",
)


class Decided(admission.Webhook):
    """The webhook with its decision made up front: a binding, or an exception to raise."""

    def __init__(self, outcome: podmutation.Binding | Exception) -> None:
        super().__init__(fleet=None, binder=None)  # type: ignore[arg-type]  # admit() never reaches them
        self.outcome = outcome
        self.admitted: list[tuple[str, bool]] = []

    async def admit(self, pod: dict[str, Any], *, dry_run: bool) -> podmutation.Binding:
        self.admitted.append((pod["metadata"]["name"], dry_run))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def review(pod: dict[str, Any] | None, operation: str = "CREATE", dry_run: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "operation": operation, "object": pod, "dryRun": dry_run},
    }


async def test_a_bound_pod_is_answered_with_its_json_patch():
    webhook = Decided(BINDING)
    answer = await webhook.review(review(builders.pod()))
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == ("u-1", True, "JSONPatch")
    assert json.loads(base64.b64decode(response["patch"])) == podmutation.json_patch(builders.pod(), BINDING)
    assert webhook.admitted == [("worker-0", False)]
    assert len(webhook.latencies) == 1


async def test_a_dry_run_is_decided_as_a_dry_run():
    webhook = Decided(BINDING)
    answer = await webhook.review(review(builders.pod(), dry_run=True))
    assert answer["response"]["allowed"]
    assert webhook.admitted == [("worker-0", True)]


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        pytest.param(
            admission.Refusal("partition train is full"), 403, "partition train is full", id="a denial"
        ),
        pytest.param(
            RuntimeError("the API server went away"), 500, "the API server went away", id="a failure"
        ),
    ],
)
async def test_a_pod_that_cannot_bind_is_refused_with_the_reason(raised, code, message):
    answer = await Decided(raised).review(review(builders.pod()))
    assert answer["response"] == {
        "uid": "u-1",
        "allowed": False,
        "status": {"message": message, "code": code},
    }


@pytest.mark.parametrize(
    ("request_review"),
    [
        pytest.param(review(builders.pod(), operation="UPDATE"), id="an update"),
        pytest.param(review({"metadata": {"name": "plain", "labels": {}}}), id="an unlabelled pod"),
        pytest.param(review(None, operation="DELETE"), id="a request without an object"),
    ],
)
async def test_what_is_not_a_labelled_pod_being_created_is_allowed_unchanged(request_review):
    webhook = Decided(BINDING)
    answer = await webhook.review(request_review)
    assert answer["response"] == {"uid": "u-1", "allowed": True}
    assert webhook.admitted == []
