"""Requests generated from the local API's own OpenAPI document (schemathesis): whatever a client sends, valid or
not, the answer is never a 500, and the document itself is valid OpenAPI."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration
from tests.support.cli_runs import credentials_of, make_sandbox

pytestmark = pytest.mark.loopback

#: Generated requests per operation (about 16 operations: a few hundred requests in all).
EXAMPLES_PER_OPERATION = 25


class ServedInThread:
    """The local API served over a real socket from a background loop, so a synchronous client can call it."""

    def __init__(self, workspace: Workspace) -> None:
        self.server = LocalApiServer(workspace, port=0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="local API under test", daemon=True)

    def __enter__(self) -> ServedInThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def served_on_hubspot(data_dir: Path) -> Iterator[ServedInThread]:
    """The local API served on loopback over a workspace with one integration ``crm`` on a HubSpot sandbox."""
    sandbox = make_sandbox("hubspot")
    workspace = Workspace.open(data_dir, transport=sandbox.transport())
    workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                               credentials_of("hubspot", sandbox))
    try:
        with ServedInThread(workspace) as running:
            yield running
    finally:
        workspace.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedInThread]:
    with served_on_hubspot(tmp_path / "data") as running:
        yield running


def send(case: schemathesis.Case, known: bool, url: str, auth: dict[str, str]) -> httpx.Response:
    """Send one generated request. Its path names the integration that exists half of the time, so requests reach
    the services, not only 404."""
    if known and case.path_parameters and "integration" in case.path_parameters:
        case.path_parameters["integration"] = "crm"
    return case.call(base_url=url, headers=auth, timeout=30)


def is_server_fault(status: int) -> bool:
    """An answer the API must never give: a 5xx of its own (502 and 503 pass on what the CRM answered)."""
    return status >= 500 and status not in {502, 503}


def _fuzz(operation: Any, url: str, auth: dict[str, str], seen: dict[str, set[int]]) -> None:
    """Send one operation's generated requests; record each answer's status under the operation's label."""
    label = operation.label

    @given(case=operation.as_strategy(), known=st.booleans())
    # The same requests on every run (see tests/fuzz/test_fuzz_inputs.py); ``bench.fuzz_drill`` explores.
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case, known: bool) -> None:
        response = send(case, known, url, auth)
        seen.setdefault(label, set()).add(response.status_code)
        assert not is_server_fault(response.status_code), (label, case.body, response.text)

    check()


def test_generated_requests_never_get_a_500(served: ServedInThread) -> None:
    url = served.server.url
    document = httpx.get(f"{url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    auth = {"Authorization": f"Bearer {served.server.tokens.current()}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11
    seen: dict[str, set[int]] = {}

    for operation in operations:
        _fuzz(operation, url, auth, seen)
    assert len(seen) == len(operations)
    assert any(200 <= status < 300 for statuses in seen.values() for status in statuses), seen
