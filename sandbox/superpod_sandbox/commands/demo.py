"""`superpod demo [--profile P] [--once]`: the whole product on a laptop, with nothing invented.

Starts the sandbox API server, a simulated fleet of the profile (Nodes, device plugin ConfigMaps, a kubelet and
device-plugin stand-in, the Job controller, an NPU-Exporter), and the real operator (`superpod run` as a subprocess, with its HTTPS
admission webhook and its metrics endpoint). Then it does what a platform engineer does: applies the CRDs, a
SuperPod and partitions, applies a training job (examples/job-train-64.yaml, an Indexed Job) with kubectl, and
prints what the cluster says happened: placements, pod bindings, the rank table's status, the Job's completion
and the occupancy map, with every figure read back from the
API. Runs until Ctrl-C (`--once`: exits 0 after printing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from superpod import cli
from superpod.api import common, crd
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client

from superpod_sandbox.sim import layout, nodes

JSON = dict[str, Any]
NAMESPACE = "team-a"
ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
JOB_EXAMPLE = EXAMPLES / "job-train-64.yaml"  # the training job, an Indexed Job applied with kubectl
TOOLS_KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
JOB_INDEX = "batch.kubernetes.io/job-completion-index"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cloudmatrix-384", help="hardware profile to simulate")
    parser.add_argument("--once", action="store_true", help="exit 0 after printing what happened")
    parser.add_argument("--dir", type=Path, default=Path("out/demo"), help="where the kubeconfig and logs go")
    parser.add_argument("--port", type=int, default=0, help="sandbox API port (default: a free one)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(text: str = "") -> None:
    print(text, flush=True)


def _partitions(superpod_name: str, profile: str) -> list[JSON]:
    """The example partitions for cloudmatrix-384; for other profiles, the same shapes scaled to a node."""
    if profile == "cloudmatrix-384":
        docs = [yaml.safe_load(p.read_text()) for p in sorted(EXAMPLES.glob("partition-*.yaml"))]
        return sorted(docs, key=lambda d: d["spec"]["npus"])
    from superpod.topology import profiles

    per_node = profiles.BUILTIN[profile].devices_per_node
    shapes = [
        (f"train-{per_node}", per_node, {}),
        (f"train-{4 * per_node}", 4 * per_node, {"blockSize": per_node}),
    ]
    return [
        {
            "apiVersion": common.API_VERSION,
            "kind": api_partition.KIND,
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"superPod": superpod_name, "npus": npus, "devicesPerPod": per_node, **extra},
        }
        for name, npus, extra in shapes
    ]


def _superpod(fleet: layout.Layout) -> JSON:
    """The SuperPod over the simulated fleet: the profile's example manifest where there is one, aimed at the
    fleet's nodes, by SuperPoD id on hardware whose driver reports one, else by the fleet's label (an example's
    own selector, or superPodID, may name other machines)."""
    profile = fleet.hardware.name
    doc: JSON = next(
        (
            example
            for example in (
                yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("superpod-*.yaml"))
            )
            if example["spec"]["profile"] == profile
        ),
        {
            "apiVersion": common.API_VERSION,
            "kind": api_superpod.KIND,
            "metadata": {"name": f"{profile}-demo"},
            "spec": {"profile": profile},
        },
    )
    spec = doc["spec"]
    spec.pop("nodeSelector", None)
    spec.pop("superPodID", None)
    if fleet.hardware.facts.has_superpod:
        spec["superPodID"] = fleet.superpod_id
    else:
        spec["nodeSelector"] = {"matchLabels": {nodes.FLEET_LABEL: fleet.fleet}}
    return doc


def training_pod(name: str, namespace: str, partition: str, devices: int, index: int, resource: str) -> JSON:
    """One worker of a training job, as an indexed Job makes it: labelled with its partition and its index."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                common.PARTITION_LABEL: partition,
                "batch.kubernetes.io/job-completion-index": str(index),
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "trainer",
                    "image": "ascendhub/mindspore:latest",
                    "command": ["python", "train.py"],
                    "resources": {"limits": {resource: str(devices)}},
                }
            ],
            "restartPolicy": "Never",
        },
    }


def training_job(partition: JSON, resource: str) -> JSON:
    """The example Indexed Job fitted to a placed partition: one worker per slot, each asking for its devices."""
    job: JSON = yaml.safe_load(JOB_EXAMPLE.read_text())
    name = partition["metadata"]["name"]
    slots = partition["status"]["allocation"]
    job["metadata"].update(name=name, namespace=partition["metadata"]["namespace"])
    job["spec"]["completions"] = job["spec"]["parallelism"] = len(slots)
    template = job["spec"]["template"]
    template["metadata"]["labels"][common.PARTITION_LABEL] = name
    for container in template["spec"]["containers"]:
        container["resources"]["limits"] = {resource: str(len(slots[0]["devices"]))}
    return job


def _kubectl() -> str:
    found = shutil.which("kubectl") or str(TOOLS_KUBECTL)
    if not Path(found).exists():
        raise RuntimeError("kubectl not found on PATH nor in .tools/bin (make tools installs it)")
    return found


async def _kubectl_apply(manifest: Path, kubeconfig: Path, cache: Path) -> str:
    """`kubectl apply -f manifest`, as a user runs it; kubectl's output line."""
    process = await asyncio.create_subprocess_exec(
        _kubectl(), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), "apply", "-f", str(manifest),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"kubectl apply -f {manifest} failed: {(err or out).decode().strip()}")
    return out.decode().strip()


async def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


async def _operator(
    kubeconfig: str, log: Path, metrics_port: int, webhook_port: int
) -> asyncio.subprocess.Process:
    health_port = _free_port()
    handle = log.open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "superpod.cli", "run",
        "--kubeconfig", kubeconfig, "--standalone",
        "--bind-address", "127.0.0.1",
        "--health-port", str(health_port),
        "--metrics-port", str(metrics_port),
        "--webhook-port", str(webhook_port),
        "--webhook-host", "127.0.0.1",
        "--webhook-config", "managed",
        "--status-interval", "0.1",
        stdout=handle, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    handle.close()
    import aiohttp

    async def healthy() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"the operator exited with {process.returncode}; see {log}")
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{health_port}/healthz") as response,
            ):
                return response.status == 200
        return False

    await _wait(healthy, 60, "the operator to report healthy")
    return process


async def demo(args: argparse.Namespace) -> int:
    from superpod_sandbox.apiserver import server
    from superpod_sandbox.sim import simulator as sim_fleet

    started = time.monotonic()
    args.dir.mkdir(parents=True, exist_ok=True)
    kubeconfig = (args.dir / "kubeconfig").resolve()
    operator_log = (args.dir / "operator.log").resolve()
    operator_log.write_text("")
    metrics_port, webhook_port = _free_port(), _free_port()
    async with server.Sandbox(port=args.port, kubeconfig=kubeconfig) as sandbox:
        _say(f"sandbox API server: {sandbox.url}  (kubeconfig {kubeconfig})")
        async with client.KubeClient(client.credentials_from_kubeconfig(str(kubeconfig))) as api:
            for definition in crd.all_crds().values():
                await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", definition)
            options = sim_fleet.Options(metrics_port=0, plugin_sync_seconds=0.2, controllers=True)
            async with sim_fleet.Fleet(args.profile, api=api, options=options) as fleet:
                _say(
                    f"simulated {args.profile}: {len(fleet.node_names)} nodes registered with device-plugin "
                    f"ConfigMaps; NPU-Exporter at {fleet.metrics_url}"
                )
                process = await _operator(str(kubeconfig), operator_log, metrics_port, webhook_port)
                try:
                    code = await _journey(
                        api, args, fleet.layout, started, fleet.metrics_url, metrics_port, kubeconfig
                    )
                    if code or args.once:
                        return code
                    _say("\nRunning; press Ctrl-C to stop.")
                    stop = asyncio.Event()
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.add_signal_handler(sig, stop.set)
                    await stop.wait()
                    return 0
                finally:
                    if process.returncode is None:
                        process.send_signal(signal.SIGTERM)
                        try:
                            await asyncio.wait_for(process.wait(), 15)
                        except TimeoutError:
                            process.kill()


async def _journey(
    api: client.KubeClient,
    args: argparse.Namespace,
    fleet: layout.Layout,
    started: float,
    exporter_url: str | None,
    metrics_port: int,
    kubeconfig: Path,
) -> int:
    superpod = _superpod(fleet)
    name = superpod["metadata"]["name"]
    spp = client.resource_path(common.API_VERSION, api_partition.PLURAL, NAMESPACE)
    await api.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    await api.create(client.resource_path(common.API_VERSION, api_superpod.PLURAL), superpod)
    partitions = _partitions(name, args.profile)
    for partition in partitions:
        partition["spec"]["superPod"] = name
        await api.create(spp, partition)
    _say(
        f"\napplied SuperPod {name} ({args.profile}) and {len(partitions)} partitions in namespace {NAMESPACE}"
    )

    async def first_placed() -> bool:
        items = (await api.get(spp))["items"]
        return any((o.get("status") or {}).get("allocation") for o in items)

    await _wait(first_placed, 60, "the first placement")
    _say(f"first placement {time.monotonic() - started:.1f}s after start")

    async def settled() -> list[JSON] | None:
        items: list[JSON] = (await api.get(spp))["items"]
        phases = [(o.get("status") or {}).get("phase") for o in items]
        return items if all(p in ("Allocated", "Bound", "Pending", "Failed") for p in phases) else None

    items = await _wait(settled, 60, "every partition to be placed or pending")
    _say("\nPartitions (kubectl get spp -n team-a):")
    for obj in sorted(items, key=lambda o: o["spec"]["npus"]):
        status = obj["status"]
        if status.get("allocation"):
            nodes = sorted({slot["node"] for slot in status["allocation"]})
            _say(
                f"  {obj['metadata']['name']:<10} {obj['spec']['npus']:>4} NPUs  {status['phase']:<9} "
                f"tier {status['tierSpan']:<8} {status['nodeCount']} node(s) "
                f"{status['estimatedBandwidthGBps']:g} GB/s/device  nodes {', '.join(nodes[:4])}"
                + (" ..." if len(nodes) > 4 else "")
            )
        else:
            _say(
                f"  {obj['metadata']['name']:<10} {obj['spec']['npus']:>4} NPUs  {status.get('phase')}: {status.get('message')}"
            )

    placed = [o for o in items if (o.get("status") or {}).get("allocation")]
    job = next((o for o in placed if 1 < len(o["status"]["allocation"]) <= 8), placed[0] if placed else None)
    if job is not None:
        await _run_job(api, job, kubeconfig, args.dir.resolve())
    from superpod.commands import map as map_command

    for report in await map_command.live_reports(api, name):
        _say()
        report.print(sys.stdout, colour=sys.stdout.isatty())
    _say("\nExplore:")
    _say(f"  export KUBECONFIG={kubeconfig}")
    _say(
        "  kubectl get spod,spp -A        kubectl describe spp -n team-a        kubectl get pods -n team-a -o wide"
    )
    _say(f"  operator metrics:  http://127.0.0.1:{metrics_port}/metrics")
    if exporter_url:
        _say(f"  NPU-Exporter:      {exporter_url}")
    return 0


async def _run_job(api: client.KubeClient, partition: JSON, kubeconfig: Path, workdir: Path) -> None:
    """Apply the example Indexed Job for the partition with kubectl; print its pods, rank table and completion."""
    name = partition["metadata"]["name"]
    superpods = client.resource_path(common.API_VERSION, api_superpod.PLURAL)
    status = (await api.get(f"{superpods}/{partition['spec']['superPod']}")).get("status") or {}
    resource = status.get("resourceName") or "huawei.com/Ascend910"
    job = training_job(partition, resource)
    manifest = JOB_EXAMPLE
    if job != yaml.safe_load(JOB_EXAMPLE.read_text()):  # another profile: the example fitted to its partition
        manifest = workdir / f"job-{name}.yaml"
        manifest.write_text(f"# {JOB_EXAMPLE.name} fitted to partition {name}\n" + yaml.safe_dump(job))
    completions = job["spec"]["completions"]
    shown = manifest.relative_to(ROOT) if manifest.is_relative_to(ROOT) else manifest
    _say(f"\nstarting training job {name}: kubectl apply -f {shown}")
    _say(f"  {await _kubectl_apply(manifest, kubeconfig, workdir / 'kubectl-cache')}")
    _say(f"  Indexed Job, {completions} pods labelled {common.PARTITION_LABEL}={name}")
    pods_path = client.resource_path("v1", "pods", NAMESPACE)

    async def started() -> list[JSON] | None:
        listed: list[JSON] = await api.list(pods_path, labelSelector=f"batch.kubernetes.io/job-name={name}")
        phases = [(p.get("status") or {}).get("phase") for p in listed]
        done = len(listed) >= completions and all(phase in ("Running", "Succeeded") for phase in phases)
        return listed if done else None

    try:
        mine = await _wait(started, 60, "the job's pods to run")
    except TimeoutError as error:
        _say(f"  {error}")
        return
    for pod in sorted(mine, key=lambda p: int(p["metadata"]["annotations"].get(JOB_INDEX, "0"))):
        annotations = pod["metadata"].get("annotations") or {}
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
        _say(
            f"  {pod['metadata']['name']}: index {annotations.get(JOB_INDEX, '-')}, node "
            f"{pod['spec'].get('nodeName')}, RANK {env.get('RANK', '-')}, "
            f"devices {annotations.get(resource, annotations.get('huawei.com/Ascend910', '-'))}"
        )
    table_name = f"rings-config-{name}"

    async def rank_table() -> JSON | None:
        configmap = await api.get_or_none(client.resource_path("v1", "configmaps", NAMESPACE, table_name))
        if configmap is None:
            return None
        table: JSON = json.loads((configmap.get("data") or {}).get("hccl.json", "{}"))
        return table if table.get("status") == "completed" else None

    try:
        table = await _wait(rank_table, 20, f"ConfigMap {table_name} to be completed")
        ranks = table.get("rank_count") or sum(len(s.get("device", [])) for s in table.get("server_list", []))
        _say(
            f"  rank table ConfigMap {table_name}: hccl.json version {table.get('version')}, status completed, {ranks} ranks"
        )
    except TimeoutError as error:
        _say(f"  {error}")
    jobs = client.resource_path("batch/v1", "jobs", NAMESPACE)

    async def finished() -> JSON | None:
        status: JSON = (await api.get(f"{jobs}/{name}")).get("status") or {}
        ended = {c["type"] for c in status.get("conditions") or [] if c.get("status") == "True"}
        return status if ended & {"Complete", "Failed"} else None

    try:
        final = await _wait(finished, 120, f"Job {name} to finish")
    except TimeoutError as error:
        _say(f"  {error}")
        return
    outcome = "Complete" if final.get("completionTime") else "Failed"
    _say(
        f"  Job {name} {outcome}: {final.get('succeeded', 0)}/{completions} succeeded, "
        f"completed indexes {final.get('completedIndexes') or '-'}"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return asyncio.run(demo(args))
    except (TimeoutError, RuntimeError, client.ApiError) as error:
        print(f"superpod demo: {cli.error_line(error)}", file=sys.stderr)
        return 1
