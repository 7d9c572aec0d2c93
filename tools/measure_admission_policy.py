"""CPU of the sandbox's MutatingAdmissionPolicy evaluation for one partition create: the chart's in-use policy.

The policy and binding of `superpod.api.inusepolicy` against a partition as `bench e2e` creates it; prints the
median over 7 rounds of 2,000 evaluations of process CPU per create (the match condition, the JSONPatch
expression and the patch). Run it against two trees to compare them:

    PYTHONPATH=operator:sandbox .venv/bin/python tools/measure_admission_policy.py
"""

from __future__ import annotations

import statistics
import time

from superpod.api import inusepolicy
from superpod_sandbox.apiserver.admission import dispatcher, policies

ROUNDS, CREATES = 7, 2000


def main() -> None:
    stored = {
        policies.MUTATING_POLICIES: [inusepolicy.policy("in-use")],
        policies.MUTATING_BINDINGS: [inusepolicy.binding("in-use")],
    }
    evaluator = policies.Policies(lambda key, namespace: stored.get(key, []), lambda group, kind: None)
    partition = {
        "apiVersion": "superpod.dev/v1alpha1",
        "kind": "SuperPodPartition",
        "metadata": {"name": "p1", "namespace": "bench", "labels": {"team": "a"}},
        "spec": {"superPod": "sp-0", "npus": 16, "devicesPerPod": 8},
    }
    request = dispatcher.AdmissionRequestInfo(
        operation="CREATE",
        group="superpod.dev",
        version="v1alpha1",
        kind="SuperPodPartition",
        resource="superpodpartitions",
        name="p1",
        namespace="bench",
        object=partition,
        namespace_labels={},
    )
    namespace = {"metadata": {"name": "bench", "labels": {"kubernetes.io/metadata.name": "bench"}}}
    mutated = evaluator.mutate(request, namespace)
    assert mutated is not None and mutated["metadata"]["finalizers"] == [inusepolicy.FINALIZER], mutated
    rounds = []
    for _ in range(ROUNDS):
        began = time.process_time()
        for _ in range(CREATES):
            evaluator.mutate(request, namespace)
        rounds.append((time.process_time() - began) / CREATES * 1e6)
    print(f"{statistics.median(rounds):.0f} us of CPU per create (median of {ROUNDS} x {CREATES:,})")


if __name__ == "__main__":
    main()
