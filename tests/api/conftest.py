"""The local API against in-process sandbox CRMs: a workspace wired to one sandbox, its token, and a client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_desktop.api.app import create_app
from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.workspace import Workspace
from crm_desktop.sandbox.core import Sandbox
from tests.support.cli_runs import credentials_of, make_sandbox


def integration_body(provider: str, sandbox: Sandbox, name: str = "crm") -> dict[str, Any]:
    """The seed's ``POST /api/crm/integrations`` body for a sandbox."""
    body: dict[str, Any] = {"provider": provider, "name": name, "baseUrl": sandbox.base_url,
                            "credentials": credentials_of(provider, sandbox)}
    if provider == "pipedrive":
        body["domain"] = "acme"
    return body


@dataclass
class LocalApi:
    """A client of the local API (in process, through ASGI) on a workspace whose adapters reach ``sandbox``.

    Its calls are coroutines: each test runs one scenario with ``asyncio.run``, so runs started in the background
    live on that loop.
    """

    client: httpx.AsyncClient
    workspace: Workspace
    sandbox: Sandbox
    provider: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth, **kwargs)

    async def add_integration(self, name: str = "crm") -> dict[str, Any]:
        answer = await self.post("/api/crm/integrations", integration_body(self.provider, self.sandbox, name))
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


def open_api(tmp_path: Path, provider: str, **config: Any) -> Iterator[LocalApi]:
    sandbox = make_sandbox(provider, **config)
    workspace = Workspace.open(tmp_path / "data", transport=sandbox.transport())
    tokens = ApiTokens(workspace.vault)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(create_app(workspace, tokens)),
                               base_url="http://127.0.0.1")
    try:
        yield LocalApi(client, workspace, sandbox, provider, tokens.current())
    finally:
        asyncio.run(client.aclose())
        workspace.close()


@pytest.fixture(params=["hubspot", "salesforce", "pipedrive"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalApi]:
    """The local API with one integration ``crm`` on each sandbox CRM in turn."""
    for local in open_api(tmp_path, str(request.param)):
        asyncio.run(local.add_integration())
        yield local


@pytest.fixture
def hubspot_api(tmp_path: Path) -> Iterator[LocalApi]:
    """The local API with no integration yet, its adapters reaching an in-process HubSpot sandbox."""
    yield from open_api(tmp_path, "hubspot")
