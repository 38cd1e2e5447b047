"""While the app's window is open, the local API is served on its qasync loop; closing the window stops it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication

from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.app import run_gui
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def answers(port: int) -> bool:
    """Whether the local API answers its schema on ``port``."""
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            return (await client.get("/openapi.json")).status_code == 200
    except httpx.ConnectError:
        return False


async def until(port: int, serving: bool) -> bool:
    """Whether the API comes to serve (or stops serving) on ``port`` within 10 s."""
    for _ in range(200):
        if await answers(port) == serving:
            return True
        await asyncio.sleep(0.05)
    return False


def run_the_app(qapp: QApplication, workspace: Callable[[], Workspace],
                scenario: Callable[[MainWindow], Coroutine[Any, Any, None]]) -> None:
    """Start the app as ``crm-desktop`` does and run ``scenario`` on its window once shown (the scenario quits
    it); the application's names and style are put back afterwards."""
    names = (QCoreApplication.organizationName(), QCoreApplication.applicationName())
    tasks: list[asyncio.Task[None]] = []

    def when_shown(attempts: int = 200) -> None:
        window = next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()),
                      None)
        if window is None:
            if attempts:
                QTimer.singleShot(10, lambda: when_shown(attempts - 1))
            else:
                QCoreApplication.quit()
            return
        tasks.append(asyncio.get_event_loop().create_task(scenario(window)))

    QTimer.singleShot(0, when_shown)
    try:
        assert run_gui(workspace, ["crm-desktop"]) == 0
    finally:
        QCoreApplication.setOrganizationName(names[0])
        QCoreApplication.setApplicationName(names[1])
        qapp.setStyleSheet("")


def test_the_window_serves_the_api_until_it_closes(
    qapp: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", str(port))
    with closing(Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))) as opened:
        token = ApiTokens(opened.vault).current()  # the workspace's own token
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, object] = {}

    async def ask_then_close(window: MainWindow) -> None:
        try:
            async with httpx.AsyncClient(base_url=url) as client:
                for _ in range(100):  # the server starts in the background once the window shows
                    try:
                        answer = await client.get("/api/crm/runs/1", headers={"Authorization": f"Bearer {token}"})
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                        continue
                    seen["status"] = answer.status_code
                    seen["unauthorised"] = (await client.get("/api/crm/runs/1")).status_code
                    break
        finally:
            window.close()


    run_the_app(qapp, lambda: Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend)),
                ask_then_close)
    assert seen.get("status") == 404, seen  # no run 1: the token was accepted and the API answered
    assert seen.get("unauthorised") == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/openapi.json")


def test_settings_choose_the_api_port_and_move_or_stop_it_at_once(
    qapp: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRM_DESKTOP_API_PORT", raising=False)
    first, second = free_port(), free_port()
    seen: dict[str, object] = {}

    async def move_then_stop(window: MainWindow) -> None:
        try:
            seen["first"] = await until(first, serving=True)
            window.desk.apply_preferences(window.workspace.preferences.update(local_api_port=second))
            seen["moved"] = await until(second, serving=True) and await until(first, serving=False)
            window.desk.apply_preferences(window.workspace.preferences.update(local_api_enabled=False))
            seen["stopped"] = await until(second, serving=False)
        finally:
            window.desk.quit()


    def workspace() -> Workspace:
        opened = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
        opened.preferences.update(local_api_port=first)
        return opened

    run_the_app(qapp, workspace, move_then_stop)
    assert (seen.get("first"), seen.get("moved"), seen.get("stopped")) == (True, True, True), seen


def test_a_port_taken_after_settings_checked_it_keeps_the_api_where_it_was_and_says_so(
    qapp: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old API was stopped before the new one failed to bind: no API ran, and only the log said so. The new
    one starts first; on a taken port the old one keeps serving, Settings shows its port, the window says why."""
    monkeypatch.delenv("CRM_DESKTOP_API_PORT", raising=False)
    first = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    second = int(taken.getsockname()[1])
    seen: dict[str, object] = {}

    async def move_to_the_taken_port(window: MainWindow) -> None:
        try:
            for _ in range(200):
                if await answers(first):
                    break
                await asyncio.sleep(0.05)
            window.desk.apply_preferences(window.workspace.preferences.update(local_api_port=second))
            for _ in range(200):
                if "could not start" in window.statusBar().currentMessage():
                    break
                await asyncio.sleep(0.05)
            seen["message"] = window.statusBar().currentMessage()
            seen["first"] = await answers(first)
            seen["saved"] = window.workspace.preferences.get().local_api_port
        finally:
            window.desk.quit()


    def workspace() -> Workspace:
        opened = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
        opened.preferences.update(local_api_port=first)
        return opened

    try:
        run_the_app(qapp, workspace, move_to_the_taken_port)
    finally:
        taken.close()
    assert seen.get("message") == (f"The local API could not start on port {second} (Address already in use): "
                                   f"it still serves on port {first}."), seen
    assert (seen.get("first"), seen.get("saved")) == (True, first), seen
