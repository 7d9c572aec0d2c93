"""pytest fixtures for tests that need an API server.

`sandbox`: an async fixture, a Sandbox started in the test's own event loop (for async clients such as kopf
run in-process). `sandbox_thread`: a Sandbox whose loop runs in a background thread, for synchronous clients
(the `kubernetes` package) and subprocesses (kubectl, helm). Enable with
`pytest_plugins = ["superpod_sandbox.apiserver.testing"]` or by importing the fixtures into a conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from superpod_sandbox.apiserver import server


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[server.Sandbox]:
    async with server.Sandbox() as api:
        yield api


@pytest.fixture
def sandbox_thread() -> Iterator[server.Sandbox]:
    with server.in_thread() as api:
        yield api
