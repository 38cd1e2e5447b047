"""Shared fixtures of the sandbox tests: serving sandboxes over real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from crm_desktop.sandbox.core import Sandbox
from crm_desktop.sandbox.server import SandboxServer


@pytest.fixture
def serve_on_loopback() -> Iterator[Callable[..., SandboxServer]]:
    """Start a :class:`SandboxServer` for the given sandboxes; every server is stopped after the test."""
    servers: list[SandboxServer] = []

    def serve(*sandboxes: Sandbox) -> SandboxServer:
        server = SandboxServer(list(sandboxes))
        server.start()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop()
