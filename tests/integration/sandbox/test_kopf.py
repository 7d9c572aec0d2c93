"""kopf 1.45, unmodified, running a tiny operator in-process against the sandbox.

Create, update, delete (with kopf's finalizer), timer, status writes and a posted Event must all work, with
peering through KopfPeering, and kopf must log no error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import kopf
import pytest
import yaml

from tests.conftest import ROOT, TOOLS_BIN
from tests.integration.sandbox import widgets


async def kubectl(api, *args, stdin=None):
    process = await asyncio.create_subprocess_exec(
        str(TOOLS_BIN / "kubectl"), "--kubeconfig", api.kubeconfig, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(stdin.encode() if stdin else None)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached in {timeout}s")


def tiny_operator(fired):
    registry = kopf.OperatorRegistry()

    @kopf.on.create(widgets.GROUP, widgets.VERSION, widgets.PLURAL, id="created", registry=registry)
    async def created(body, patch, **_):
        fired.append(("create", body["metadata"]["name"]))
        patch.status["phase"] = "Ready"
        kopf.info(body, reason="Created", message="the widget is ready")
        return {"size": body["spec"]["size"]}

    @kopf.on.update(
        widgets.GROUP, widgets.VERSION, widgets.PLURAL, field="spec.size", id="resized", registry=registry
    )
    async def resized(old, new, patch, **_):
        fired.append(("update", old, new))
        patch.status["phase"] = f"Resized to {new}"

    @kopf.on.delete(widgets.GROUP, widgets.VERSION, widgets.PLURAL, id="deleted", registry=registry)
    async def deleted(body, **_):
        fired.append(("delete", body["metadata"]["name"]))

    @kopf.timer(widgets.GROUP, widgets.VERSION, widgets.PLURAL, interval=0.3, id="ticked", registry=registry)
    async def ticked(body, **_):
        fired.append(("timer", body["metadata"]["name"]))

    return registry


@pytest.mark.timeout(90)
async def test_every_kopf_handler_fires_and_kopf_logs_no_error(sandbox, caplog):
    caplog.set_level(logging.INFO)
    await kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump(widgets.crd()))
    await kubectl(sandbox, "apply", "-f", str(ROOT / "crds" / "kopf.dev_kopfpeerings.yaml"))
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": "default", "namespace": "default"},
    }
    await kubectl(sandbox, "apply", "-f", "-", stdin=json.dumps(peering))
    fired: list[tuple] = []
    registry = tiny_operator(fired)

    @kopf.on.login(registry=registry)
    def login(**_):
        return kopf.ConnectionInfo(server=sandbox.url, token="sandbox")

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_):
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 10

    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=registry, namespaces=["default"], stop_flag=stop, ready_flag=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 20)
        await kubectl(sandbox, "apply", "-f", "-", stdin=yaml.safe_dump(widgets.widget("w1", size=3)))

        async def ready_status():
            body = json.loads(await kubectl(sandbox, "get", "widget", "w1", "-o", "json"))
            return body if body.get("status", {}).get("phase") == "Ready" else None

        body = await eventually(ready_status)
        assert body["status"]["created"] == {"size": 3}
        assert "kopf.zalando.org/KopfFinalizerMarker" in body["metadata"]["finalizers"]
        await kubectl(sandbox, "patch", "widget", "w1", "--type", "merge", "-p", '{"spec":{"size":5}}')

        async def resized():
            body = json.loads(await kubectl(sandbox, "get", "widget", "w1", "-o", "json"))
            return body["status"].get("phase") == "Resized to 5"

        await eventually(resized)
        await eventually(lambda: asyncio.sleep(0, any(f[0] == "timer" for f in fired)))
        events = json.loads(
            await kubectl(
                sandbox, "get", "events", "--field-selector", "involvedObject.name=w1", "-o", "json"
            )
        )
        assert "the widget is ready" in [e["message"] for e in events["items"]]
        await kubectl(sandbox, "delete", "widget", "w1", "--wait", "--timeout=30s")
        assert ("delete", "w1") in fired
        peered = json.loads(await kubectl(sandbox, "get", "kopfpeering", "default", "-o", "json"))
        assert peered.get("status"), "kopf announced itself in the peering object"
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    assert ("create", "w1") in fired and ("update", 3, 5) in fired
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
