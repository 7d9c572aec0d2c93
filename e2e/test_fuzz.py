"""Fuzzing: hypothesis-generated SuperPod and SuperPodPartition manifests, mostly wrong in some way, sent to the
sandbox with the operator running. Each one is either refused (422 Invalid, or 400 for an unknown field under
`fieldValidation=Strict`, as kubectl sends it) or accepted, and then the operator reports on it in its status
(a phase for a partition, conditions for a SuperPod). The API server never answers 5xx, and the operator never
crashes: its process stays up and its log has no Traceback.

Sandbox only (it reads the operator's log). Deterministic (`derandomize`), so `make test` is repeatable.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client

from e2e import environment
from tests.builders import objects
from tests.conftest import ROOT
from tests.integration.operator.conftest import free_port

pytestmark = pytest.mark.skipif(
    environment.cluster_kubeconfig() is not None, reason="reads the operator's log: sandbox only"
)

NAMESPACE = "fuzz"
EXAMPLES = 60
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SERIAL = itertools.count()

# values of every JSON type, some sensible and some not
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
counts = st.one_of(st.integers(min_value=-4, max_value=1100), st.sampled_from([2**20, 2**20 + 1, 2**31]))
REMOVE = object()  # a mutation that deletes the field

custom_tiers = st.sampled_from(
    [
        [
            {"name": "node", "domainSize": 8, "bandwidthGBps": 392},
            {"name": "rack", "domainSize": 64, "bandwidthGBps": 100},
        ],
        [{"name": "node", "domainSize": 4, "bandwidthGBps": 900}],
        [
            {"name": "rack", "domainSize": 64, "bandwidthGBps": 50},
            {"name": "node", "domainSize": 8, "bandwidthGBps": 392},
        ],
        [
            {"name": "node", "domainSize": 8, "bandwidthGBps": 392},
            {"name": "node", "domainSize": 16, "bandwidthGBps": 1},
        ],
        [
            {"name": "node", "domainSize": 6, "bandwidthGBps": 392},
            {"name": "rack", "domainSize": 64, "bandwidthGBps": 9},
        ],
    ]
)
members = st.one_of(
    st.fixed_dictionaries({"superPodID": st.integers(min_value=0, max_value=3)}),
    st.fixed_dictionaries({"nodeSelector": st.fixed_dictionaries({"matchLabels": st.just({"pool": "a"})})}),
)
valid_superpods = st.one_of(
    st.builds(
        lambda profile, member, reserve: {"profile": profile, **member, **reserve},
        st.sampled_from([p.value for p in api_superpod.Profile if p is not api_superpod.Profile.CUSTOM]),
        members,
        st.one_of(st.just({}), st.fixed_dictionaries({"reserveNodes": st.integers(0, 4)})),
    ),
    st.builds(lambda tiers, member: {"profile": "custom", "tiers": tiers, **member}, custom_tiers, members),
)
valid_partitions = st.builds(
    lambda superpod, npus, extra: {"superPod": superpod, "npus": npus, **extra},
    st.sampled_from(["fuzz-target", "missing"]),
    st.sampled_from([1, 2, 4, 8, 16, 32, 64, 100000]),
    st.fixed_dictionaries(
        {},
        optional={
            "blockSize": st.sampled_from([1, 2, 8, 16]),
            "maxTier": st.sampled_from(["module", "node", "rack", "superpod", "galaxy"]),
            "devicesPerPod": st.sampled_from([1, 2, 8, 16]),
            "wholeNodes": st.booleans(),
            "repairPolicy": st.sampled_from(["Auto", "Manual"]),
        },
    ),
)


def mutated(valid: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid spec with up to two fields replaced by anything (counts, junk) or removed, or an unknown one."""
    mutation = st.tuples(st.sampled_from([*fields, "unknownField"]), st.one_of(counts, junk, st.just(REMOVE)))

    def apply(spec: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
        spec = dict(spec)
        for field, value in changes:
            if value is REMOVE:
                spec.pop(field, None)
            else:
                spec[field] = value
        return spec

    return st.builds(apply, valid, st.lists(mutation, max_size=2))


superpod_specs = mutated(
    valid_superpods, ["profile", "tiers", "nodeSelector", "superPodID", "resourceName", "reserveNodes"]
)
partition_specs = mutated(
    valid_partitions,
    ["superPod", "npus", "blockSize", "maxTier", "devicesPerPod", "wholeNodes", "repairPolicy"],
)


class Api:
    """Synchronous JSON calls to the sandbox (hypothesis drives plain functions)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


class Fuzzed:
    """The sandbox, the operator subprocess, and what was accepted."""

    def __init__(self, api: Api, operator: subprocess.Popen[bytes], log: Path) -> None:
        self.api = api
        self.operator = operator
        self.log = log
        self.accepted: list[str] = []  # paths of accepted objects
        self.answers: list[int] = []

    def send(self, collection: str, body: dict[str, Any]) -> None:
        code, answer = self.api.call("POST", collection + "?fieldValidation=Strict", body)
        self.answers.append(code)
        assert code in (201, 400, 422), f"{code}: {answer}"
        if code == 201:
            self.accepted.append(f"{collection}/{answer['metadata']['name']}")
        else:
            assert answer["kind"] == "Status" and answer["reason"] in ("Invalid", "BadRequest"), answer
        assert self.operator.poll() is None, "the operator exited"


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    """The sandbox and the operator, each a subprocess (the fuzzers' random draws stay theirs alone)."""
    workdir = Path(tempfile.mkdtemp(prefix="e2e-fuzz-"))
    kubeconfig, port, health = workdir / "kubeconfig", free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            _spawn(workdir / "sandbox.log", "sandbox", "--port", str(port), "--kubeconfig", str(kubeconfig))
        )
        api = Api(f"http://127.0.0.1:{port}")
        _wait(lambda: kubeconfig.exists() and _answers(f"{api.url}/healthz"), 60, "the sandbox")
        kubectl = [
            str(environment.KUBECTL),
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(workdir / "cache"),
        ]
        subprocess.run([*kubectl, "apply", "-f", str(ROOT / "crds")], check=True, capture_output=True)
        subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True)
        for index in range(4):  # four A3 nodes of SuperPoD 0, so partitions of the target get placed
            name = f"a3-{index}"
            node = objects.node(name).superpod(0, rack=0, server=index).devices(16).ready().obj()
            configmap = objects.deviceinfo_configmap(name, superpod_id=0, server_index=index, rack_id=0)
            assert api.call("POST", "/api/v1/nodes", node)[0] == 201
            assert api.call("POST", "/api/v1/namespaces/kube-system/configmaps", configmap)[0] == 201
        target = {
            "apiVersion": common.API_VERSION,
            "kind": api_superpod.KIND,
            "metadata": {"name": "fuzz-target"},
            "spec": {"profile": "cloudmatrix-384", "superPodID": 0, "reserveNodes": 0},
        }
        assert (
            api.call("POST", client.resource_path(common.API_VERSION, api_superpod.PLURAL), target)[0] == 201
        )
        log = workdir / "operator.log"
        operator = _spawn(
            log, "run", "--kubeconfig", str(kubeconfig), "--standalone", "--bind-address", "127.0.0.1",
            "--health-port", str(health), "--metrics-port", "0", "--webhook-port", "0", "--status-interval", "0.05",
        )  # fmt: skip
        processes.append(operator)
        _wait(lambda: _answers(f"http://127.0.0.1:{health}/healthz"), 60, "the operator to be healthy")
        yield Fuzzed(api, operator, log)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)


def _spawn(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "superpod.cli", *args], stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT
        )


@FUZZ
@given(spec=superpod_specs)
def test_superpod_manifests_are_refused_or_reported_on(fuzzed: Fuzzed, spec: dict[str, Any]):
    body = {
        "apiVersion": common.API_VERSION,
        "kind": api_superpod.KIND,
        "metadata": {"name": f"fuzz-{next(SERIAL)}"},
        "spec": spec,
    }
    fuzzed.send(client.resource_path(common.API_VERSION, api_superpod.PLURAL), body)


@FUZZ
@given(spec=partition_specs)
def test_partition_manifests_are_refused_or_reported_on(fuzzed: Fuzzed, spec: dict[str, Any]):
    body = {
        "apiVersion": common.API_VERSION,
        "kind": api_partition.KIND,
        "metadata": {"name": f"fuzz-{next(SERIAL)}", "namespace": NAMESPACE},
        "spec": spec,
    }
    fuzzed.send(client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE), body)


def test_the_operator_reports_on_every_accepted_object_and_never_crashed(fuzzed: Fuzzed):
    """Runs after the two fuzzers (file order): everything they got accepted has a status from the operator."""
    assert fuzzed.answers, "the fuzzers did not run first"
    assert 201 in fuzzed.answers and 422 in fuzzed.answers, "the fuzzers should make both kinds of manifest"

    def unreported() -> list[str]:
        missing = []
        for path in fuzzed.accepted:
            code, obj = fuzzed.api.call("GET", path)
            status = obj.get("status") or {}
            if code == 200 and not (status.get("phase") or status.get("conditions")):
                missing.append(path)
        return missing

    _wait(lambda: not unreported(), 60, f"a status on every accepted object ({len(fuzzed.accepted)})")
    assert fuzzed.operator.poll() is None
    log = fuzzed.log.read_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
