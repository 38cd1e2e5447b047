"""The local API over real loopback sockets: in process on the caller's loop, and ``crm-desktop serve`` as a
subprocess that prints its URL, answers, honours ``api rotate`` at once and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.api_port import port_from_env
from crm_desktop.app.preferences import HistoryRetention
from crm_desktop.app.sync_service import SyncTrigger
from crm_desktop.app.workspace import Workspace
from crm_desktop.cli.serve import run_schedule
from crm_desktop.domain.models import Contact, Integration, SyncDirection
from crm_desktop.store.models import SyncRunStatus, utcnow
from tests.api.conftest import integration_body
from tests.support.cli_runs import credentials_of, make_sandbox

REPO = Path(__file__).resolve().parents[2]
# tests.support.file_keyring is named, not imported: once imported, keyring would offer it to every test here.
FILE_KEYRING = "tests.support.file_keyring.FileKeyring"
FILE_KEYRING_PATH_ENV = "CRM_TEST_KEYRING_FILE"
pytestmark = pytest.mark.loopback


def test_the_api_serves_on_127_0_0_1_on_the_running_loop_and_stops(tmp_path: Path) -> None:
    sandbox = make_sandbox("hubspot")
    workspace = Workspace.open(tmp_path / "data", transport=sandbox.transport())

    async def scenario() -> None:
        server = LocalApiServer(workspace, port=0)
        url = await server.start()
        assert url.startswith("http://127.0.0.1:")
        headers = {"Authorization": f"Bearer {server.tokens.current()}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            created = await client.post("/api/crm/integrations", json=integration_body("hubspot", sandbox))
            assert created.status_code == 201, created.text
            pushed = await client.post("/api/crm/integrations/crm/contacts/sync",
                                       json={"email": "ann@example.com", "firstName": "Ann"})
            assert pushed.status_code == 200 and pushed.json()["action"] == "created"
            assert (await client.get("/openapi.json")).json()["info"]["title"] == "CRM Desktop local API"
            assert (await client.get("/docs")).status_code == 200
        await server.stop()
        await server.stop()  # idempotent
        async with httpx.AsyncClient(base_url=url) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/openapi.json")

    try:
        asyncio.run(scenario())
    finally:
        workspace.close()


async def schedule_until(workspace: Workspace, done: Callable[[], bool], **schedule: Any) -> None:
    """Run ``serve``'s schedule (polling every 0.05 s) until ``done`` says so, for 10 s at most, then stop it."""
    running = asyncio.create_task(run_schedule(workspace.sync, poll_seconds=0.05, **schedule))
    for _ in range(200):
        if done():
            break
        await asyncio.sleep(0.05)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


def test_the_schedule_runs_what_is_due_like_sync_due(tmp_path: Path) -> None:
    sandbox = make_sandbox("hubspot")
    workspace = Workspace.open(tmp_path / "data", transport=sandbox.transport())
    workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                               credentials_of("hubspot", sandbox))
    workspace.contacts.save(Contact(email="new@example.com"))

    def ran() -> bool:
        return any(r.trigger is SyncTrigger.SCHEDULED and r.status.value != "running"
                   for r in workspace.sync.runs("crm"))

    try:
        asyncio.run(schedule_until(workspace, ran))
        runs = [r for r in workspace.sync.runs("crm") if r.trigger is SyncTrigger.SCHEDULED]
        assert runs and runs[0].status.value == "succeeded", [(r.status, r.message) for r in runs]
        assert sandbox.summary()["contacts"] == 1
    finally:
        workspace.close()


def test_the_schedule_prunes_the_run_history_after_a_batch(tmp_path: Path) -> None:
    sandbox = make_sandbox("hubspot")
    workspace = Workspace.open(tmp_path / "data", transport=sandbox.transport())
    integration = workspace.integrations.add(Integration(provider="hubspot", name="crm", base_url=sandbox.base_url),
                                             credentials_of("hubspot", sandbox))
    assert integration.id is not None
    store = workspace.sync.store
    old = store.start_run(integration.id, SyncTrigger.MANUAL, SyncDirection.BOTH)
    store.finish_run(old, SyncRunStatus.SUCCEEDED)
    year_ago = utcnow() - timedelta(days=400)
    store.update_run(old, started_at=year_ago, finished_at=year_ago)
    workspace.preferences.update(history_retention=HistoryRetention.MONTHS_12)

    try:
        asyncio.run(schedule_until(workspace, lambda: old not in {r.id for r in workspace.sync.runs("crm")},
                                   after_batch=workspace.history.prune_by_setting))
        runs = workspace.sync.runs("crm")
        assert [r.trigger for r in runs] == [SyncTrigger.SCHEDULED], [(r.id, r.trigger, r.started_at) for r in runs]
    finally:
        workspace.close()


def test_the_app_port_comes_from_the_environment() -> None:
    assert port_from_env({}) == 8765
    assert port_from_env({"CRM_DESKTOP_API_PORT": "9001"}) == 9001
    assert port_from_env({"CRM_DESKTOP_API_PORT": "off"}) is None


def _cli(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "crm_desktop", *argv], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip()


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("crm-desktop serve printed nothing")
    return process.stdout.readline()


def test_serve_prints_its_url_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": FILE_KEYRING, FILE_KEYRING_PATH_ENV: str(tmp_path / "keyring.json"),
           "CRM_DESKTOP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "crm_desktop", "serve", "--port", "0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = _first_line(process, timeout=60)
        ready = json.loads(line)
        assert list(ready) == ["url"] and ready["url"].startswith("http://127.0.0.1:")
        token = _cli(env, "api", "token")
        assert len(token) >= 43 and token not in line
        url = ready["url"]
        assert httpx.get(f"{url}/api/crm/runs/1", headers={"Authorization": f"Bearer {token}"}).status_code == 404
        assert httpx.get(f"{url}/api/crm/runs/1").status_code == 401

        rotated = json.loads(_cli(env, "api", "rotate", "--json"))["token"]
        assert rotated != token
        assert httpx.get(f"{url}/api/crm/runs/1", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert httpx.get(f"{url}/api/crm/runs/1", headers={"Authorization": f"Bearer {rotated}"}).status_code \
            == 404

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        stderr = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in stderr, stderr
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/openapi.json")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_serve_on_a_port_in_use_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": FILE_KEYRING, FILE_KEYRING_PATH_ENV: str(tmp_path / "keyring.json"),
           "CRM_DESKTOP_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "crm_desktop", "serve", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and done.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_request_naming_another_host_is_refused_before_its_token_is_read(tmp_path: Path) -> None:
    """DNS rebinding: a web page whose own name resolves to 127.0.0.1 sends that name in Host; it gets 400 and
    writes nothing, even with the right token, while ``127.0.0.1`` and ``localhost`` are served."""
    sandbox = make_sandbox("hubspot")
    workspace = Workspace.open(tmp_path / "data", transport=sandbox.transport())

    async def scenario() -> None:
        server = LocalApiServer(workspace, port=0)
        url = await server.start()
        port = url.rsplit(":", 1)[1].rstrip("/")
        headers = {"Authorization": f"Bearer {server.tokens.current()}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            refused = await client.post("/api/crm/integrations", json=integration_body("hubspot", sandbox),
                                        headers={"Host": f"attacker.example:{port}"})
            assert refused.status_code == 400
            assert "127.0.0.1 or localhost" in refused.json()["detail"]
            assert (await client.get("/openapi.json", headers={"Host": "attacker.example"})).status_code == 400
            assert workspace.integrations.list() == []
            for name in (f"localhost:{port}", f"127.0.0.1:{port}"):
                served = await client.get("/openapi.json", headers={"Host": name})
                assert served.status_code == 200, (name, served.text)
        await server.stop()

    try:
        asyncio.run(scenario())
    finally:
        workspace.close()
