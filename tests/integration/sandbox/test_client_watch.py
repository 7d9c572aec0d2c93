"""Watches through the `kubernetes` client: initial events, resume from a resourceVersion, 410, bookmarks."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config, watch
from superpod_sandbox.apiserver import server


@pytest.fixture
def small_history():
    with server.in_thread(history_size=5, history_seconds=0, bookmark_interval=0.2) as api:
        yield api


@pytest.fixture
def core(small_history):
    api_client = config.new_client_from_config(config_file=small_history.kubeconfig)
    yield client.CoreV1Api(api_client)
    api_client.close()


def configmap(name, value="v"):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"k": value})


def events(core, **kwargs):
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "default", _preload_content=False, **kwargs
    )
    return list(stream)


def test_a_watch_without_a_version_starts_with_the_current_objects(core):
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    seen = events(core, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [("ADDED", "a"), ("ADDED", "b")]


def test_a_watch_resumes_after_the_given_resource_version(core):
    start = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    core.create_namespaced_config_map("default", configmap("b"))
    core.delete_namespaced_config_map("a", "default")
    seen = events(core, resource_version=start, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    versions = [int(e["object"].metadata.resource_version) for e in seen]
    assert versions == sorted(versions) and versions[0] > int(start)


def test_a_watch_from_before_the_kept_history_gets_410_expired(core):
    start = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    for index in range(6):
        core.patch_namespaced_config_map("a", "default", {"data": {"k": str(index)}})
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
    )
    with pytest.raises(client.ApiException) as caught:
        list(stream)
    assert caught.value.status == 410
    assert "too old resource version" in caught.value.reason


def test_bookmarks_carry_the_current_resource_version(core, small_history):
    start = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    seen = []
    for line in core.list_namespaced_config_map(
        "default",
        watch=True,
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    ).stream():
        seen.append(line)
    import json

    bookmarks = [json.loads(line) for line in b"".join(seen).splitlines() if line.strip()]
    assert bookmarks and all(b["type"] == "BOOKMARK" for b in bookmarks)
    assert bookmarks[-1]["object"]["metadata"]["resourceVersion"] == start


def test_a_field_selected_watch_sees_only_that_object(core):
    start = core.create_namespaced_config_map("default", configmap("a")).metadata.resource_version
    core.create_namespaced_config_map("default", configmap("b"))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "w"}})
    seen = events(core, resource_version=start, field_selector="metadata.name=b", timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [("ADDED", "b")]


def test_an_object_leaving_a_label_selection_is_seen_as_deleted(core):
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a", labels={"x": "1"}))
    )
    start = core.read_namespaced_config_map("a", "default").metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"x": "2"}}})
    seen = events(core, resource_version=start, label_selector="x=1", timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in seen] == [("DELETED", "a")]


async def test_a_client_that_goes_away_is_unsubscribed(sandbox):
    import asyncio

    import aiohttp

    async with aiohttp.ClientSession() as session:
        stream = await session.get(f"{sandbox.url}/api/v1/namespaces/default/configmaps?watch=true")
        await asyncio.sleep(0.2)
        assert sandbox.state.store.hub.watcher_count() == 1
        stream.close()
    for _ in range(50):
        if sandbox.state.store.hub.watcher_count() == 0:
            break
        await asyncio.sleep(0.02)
    assert sandbox.state.store.hub.watcher_count() == 0


@pytest.fixture
def roomy():
    with server.in_thread() as api:
        api_client = config.new_client_from_config(config_file=api.kubeconfig)
        yield client.CoreV1Api(api_client)
        api_client.close()


def test_a_watch_far_behind_gets_every_event_in_order_and_whole(roomy):
    """More events than one write carries, queued at once: the initial list of a watch without a version, and
    the replay of a watch from an old version; every event arrives, in order, each a whole JSON line."""
    start = roomy.create_namespaced_config_map("default", configmap("first")).metadata.resource_version
    names = [f"cm-{index:04d}" for index in range(600)]
    for name in names:
        roomy.create_namespaced_config_map("default", configmap(name, "x" * 100))
    initial = events(roomy, timeout_seconds=1)
    assert [e["object"].metadata.name for e in initial] == sorted(["first", *names])
    replayed = events(roomy, resource_version=start, timeout_seconds=1)
    assert [(e["type"], e["object"].metadata.name) for e in replayed] == [("ADDED", name) for name in names]
    assert all(e["object"].data == {"k": "x" * 100} for e in replayed)


def _watch_chunks(url: str, path: str) -> list[bytes]:
    """The HTTP chunks of a watch's body, as they came on the wire (until the stream ends)."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer sandbox\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        raw = b""
        while data := connection.recv(1 << 16):
            raw += data
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    chunks = []
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks.append(body[:size])
        body = body[size + 2 :]
    return chunks


def test_events_waiting_for_a_watcher_reach_it_in_order_and_together():
    """A watch from a past resourceVersion finds the events since waiting: every one arrives, in order, and
    they go out in a few writes, not one HTTP chunk each (kube's watch server flushes once none waits)."""
    with server.in_thread() as api:
        api_client = config.new_client_from_config(config_file=api.kubeconfig)
        core = client.CoreV1Api(api_client)
        try:
            start = core.create_namespaced_config_map("default", configmap("c0")).metadata.resource_version
            for index in range(1, 41):
                core.create_namespaced_config_map("default", configmap(f"c{index}"))
        finally:
            api_client.close()
        chunks = _watch_chunks(
            api.url,
            f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={start}&timeoutSeconds=1",
        )
    lines = [line for chunk in chunks for line in chunk.split(b"\n") if line.strip()]
    events = [json.loads(line) for line in lines]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", f"c{index}") for index in range(1, 41)
    ]
    assert all(chunk.endswith(b"\n") for chunk in chunks)  # no event is split across writes
    assert len(chunks) <= 3
