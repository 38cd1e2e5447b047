"""Sandboxes served from a child process: real loopback sockets, nothing of the serving in the parent's process."""

from __future__ import annotations

import gc
import threading

import httpx
import pytest

from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.process import SandboxProcess, SandboxSpec

pytestmark = pytest.mark.loopback


def test_a_child_process_serves_the_sandboxes_with_their_settings_and_stops() -> None:
    threshold = gc.get_threshold()
    serving_before = sum(thread.name == "sandbox-server" for thread in threading.enumerate())
    specs = [
        SandboxSpec("hubspot", SandboxConfig(contacts=4, seed=3), {"ten_second_limit": 190}),
        SandboxSpec("pipedrive", SandboxConfig(seed=4), {"burst_limit": 77}),
    ]
    with SandboxProcess(specs) as served:
        hubspot, pipedrive = served.sandboxes
        assert (hubspot.provider, pipedrive.provider) == ("hubspot", "pipedrive")
        token = hubspot.credentials()["token"]
        with httpx.Client(base_url=hubspot.base_url, headers={"Authorization": f"Bearer {token}"}) as client:
            answer = client.get("/crm/v3/objects/contacts", params={"limit": 10})
        assert answer.status_code == 200
        assert len(answer.json()["results"]) == 4
        assert hubspot.summary()["contacts"] == 4
        persons = httpx.get(f"{pipedrive.base_url}/api/v2/persons",
                            headers={"x-api-token": pipedrive.credentials()["apiToken"]})
        assert persons.status_code == 200 and persons.headers["x-ratelimit-limit"] == "77"
        # The serving and its tuning happen in the child only.
        assert sum(thread.name == "sandbox-server" for thread in threading.enumerate()) == serving_before
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold
        process = served._process
        assert process is not None and process.is_alive()
    assert not process.is_alive() and process.exitcode == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{hubspot.base_url}/__sandbox__/state", timeout=2)


def test_a_sandbox_that_cannot_start_is_reported_by_the_parent() -> None:
    with pytest.raises(RuntimeError, match="unknown sandbox provider 'zoho'"):
        SandboxProcess([SandboxSpec("zoho", SandboxConfig())]).start()
