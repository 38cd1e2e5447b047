"""While the app's window is open, the local API is served on its qasync loop; closing the window stops it."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

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


def test_the_window_serves_the_api_until_it_closes(
    qapp: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", str(port))
    token = ApiTokens(Vault(backend=keyring_backend)).current()
    url = f"http://127.0.0.1:{port}"
    seen: dict[str, object] = {}
    names = (QCoreApplication.organizationName(), QCoreApplication.applicationName())

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

    def when_shown(attempts: int = 200) -> None:
        window = next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()),
                      None)
        if window is None:
            if attempts:
                QTimer.singleShot(10, lambda: when_shown(attempts - 1))
            else:
                QCoreApplication.quit()
            return
        seen["task"] = asyncio.get_event_loop().create_task(ask_then_close(window))

    QTimer.singleShot(0, when_shown)
    try:
        assert run_gui(lambda: Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend)),
                       ["crm-desktop"]) == 0
    finally:
        QCoreApplication.setOrganizationName(names[0])
        QCoreApplication.setApplicationName(names[1])
        qapp.setStyleSheet("")
    assert seen.get("status") == 404, seen  # no run 1: the token was accepted and the API answered
    assert seen.get("unauthorised") == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/openapi.json")
