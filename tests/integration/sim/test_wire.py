"""The simulator's writes (`wire.Connections`) answer and fail as the operator's client does, over HTTP or TLS."""

from __future__ import annotations

import asyncio

import pytest
from superpod.cluster import client
from superpod_sandbox.apiserver import server
from superpod_sandbox.sim import wire

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "ü"}}


async def test_writes_and_reads_answer_and_fail_as_the_client_s(sandbox):
    credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
    async with wire.Connections(credentials, size=2) as writes, client.KubeClient(credentials) as api:
        created = await writes.create(CONFIGMAPS, _configmap("a"))
        assert created["metadata"]["uid"] and created["data"] == {"k": "ü"}
        assert await api.get(f"{CONFIGMAPS}/a") == await writes.get(f"{CONFIGMAPS}/a")
        with pytest.raises(client.ApiError) as ours:
            await writes.create(CONFIGMAPS, _configmap("a"))
        with pytest.raises(client.ApiError) as theirs:
            await api.create(CONFIGMAPS, _configmap("a"))
        assert (ours.value.status, ours.value.body) == (theirs.value.status, theirs.value.body)
        assert ours.value.reason == "AlreadyExists"
        assert await writes.get_or_none(f"{CONFIGMAPS}/missing") is None
        patched = await writes.patch(f"{CONFIGMAPS}/a", {"data": {"k": "v"}})
        assert patched["data"] == {"k": "v"}
        stale = {**created, "data": {"k": "w"}}
        with pytest.raises(client.ApiError) as conflict:
            await writes.replace(f"{CONFIGMAPS}/a", stale)
        assert conflict.value.status == 409
        listed = await writes.get(CONFIGMAPS, fieldSelector="metadata.name=a")
        assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]
        # many at once on two connections: each request waits for one, none is lost
        await asyncio.gather(*(writes.create(CONFIGMAPS, _configmap(f"many-{i}")) for i in range(40)))
        assert len(await api.list(CONFIGMAPS)) == 41


async def test_they_go_over_tls_with_the_kubeconfig_s_authority():
    async with server.Sandbox(use_tls=True) as sandbox:
        credentials = client.credentials_from_kubeconfig(sandbox.kubeconfig)
        assert credentials.server.startswith("https://")
        async with wire.Connections(credentials) as writes:
            created = await writes.create(CONFIGMAPS, _configmap("over-tls"))
            assert created["metadata"]["name"] == "over-tls"


async def test_a_kept_connection_the_server_closed_is_replaced_and_chunked_answers_are_read():
    """A scripted server: it answers each connection's first request (chunked) and then closes it, as a
    server does with a connection idle for too long."""
    answered = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        answered.append(head.split(b" ")[1])
        body = b'{"kind":"ConfigMap","metadata":{"name":"x"}}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % 10 + body[:10] + b"\r\n"
            + b"%x\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\n\r\n"
        )  # fmt: skip
        await writer.drain()
        writer.close()

    scripted = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = scripted.sockets[0].getsockname()[1]
    async with (
        scripted,
        wire.Connections(client.Credentials(server=f"http://127.0.0.1:{port}"), size=1) as writes,
    ):
        for _ in range(3):
            answer = await writes.create(CONFIGMAPS, _configmap("x"))
            assert answer == {"kind": "ConfigMap", "metadata": {"name": "x"}}
            await asyncio.sleep(0.05)  # the server has closed it by now
    assert answered == [CONFIGMAPS.encode()] * 3  # each POST sent once: none was repeated
