"""``run_gui``: the single entry point opens the window on one qasync loop and shuts everything down cleanly."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from crm_desktop.app.errors import StoreConfigError
from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.app import EXIT_CANNOT_START, run_gui
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_app(qapp: QApplication) -> Iterator[QApplication]:
    """run_gui names and styles the (shared) test QApplication: put it back afterwards."""
    names = (QCoreApplication.organizationName(), QCoreApplication.applicationName())
    try:
        yield qapp
    finally:
        QCoreApplication.setOrganizationName(names[0])
        QCoreApplication.setApplicationName(names[1])
        qapp.setStyleSheet("")


def main_window() -> MainWindow | None:
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()), None)


def test_run_gui_shows_the_window_and_shuts_down_cleanly(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    opened: list[Workspace] = []
    closed: list[bool] = []
    seen: dict[str, object] = {}

    def factory() -> Workspace:
        workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
        original_close = workspace.close

        def close() -> None:
            closed.append(True)
            original_close()

        workspace.close = close  # type: ignore[method-assign]
        opened.append(workspace)
        return workspace

    async def left_running() -> None:
        await asyncio.sleep(3600)

    def while_running() -> None:
        window = main_window()
        seen["window"] = window is not None
        seen["loop_running"] = asyncio.get_event_loop().is_running()
        seen["stylesheet"] = bool(restore_app.styleSheet())
        seen["names"] = (QCoreApplication.organizationName(), QCoreApplication.applicationName())
        # A task nobody tracks: run_gui must still cancel it on the way out.
        seen["task"] = asyncio.get_event_loop().create_task(left_running(), name="left running")
        assert window is not None
        window.close()

    QTimer.singleShot(0, while_running)
    assert run_gui(factory, ["crm-desktop"]) == 0

    assert seen["window"] is True
    assert seen["loop_running"] is True
    assert seen["stylesheet"] is True
    assert seen["names"] == ("CRM Desktop", "crm-desktop")
    task = seen["task"]
    assert isinstance(task, asyncio.Task) and task.cancelled()
    assert closed == [True], "the workspace was closed once"
    assert restore_app.quitOnLastWindowClosed(), "run_gui put Qt's quit rule back"
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert main_window() is None


def test_run_gui_explains_a_workspace_that_cannot_open(restore_app: QApplication, qtbot: QtBot) -> None:
    shown: list[str] = []

    def answer_the_message() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer_the_message)
            return
        shown.append(box.text())
        box.accept()

    def factory() -> Workspace:
        raise StoreConfigError("the database at /nowhere cannot be opened: permission denied")

    QTimer.singleShot(0, answer_the_message)
    assert run_gui(factory, ["crm-desktop"]) == EXIT_CANNOT_START
    assert shown == ["the database at /nowhere cannot be opened: permission denied"]


GUI_SCRIPT = """
import sys
from PySide6.QtCore import QTimer
from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.app import run_gui

def factory():
    workspace = Workspace.open(sys.argv[1])
    QTimer.singleShot(0, lambda: print("READY", flush=True))
    return workspace

code = run_gui(factory, ["crm-desktop"])
print("EXIT", code, flush=True)
sys.exit(code)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM handling is POSIX only")
def test_a_polite_kill_closes_the_window_and_saves_its_state(tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(config),
        "PYTHON_KEYRING_BACKEND": "tests.support.memory_keyring.MemoryKeyring",
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", GUI_SCRIPT, str(tmp_path / "data")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), "the GUI did not start within 60 s"
        assert process.stdout.readline().strip() == "READY"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip() == "EXIT 0"
    assert err.strip() == "", "no Qt warnings or tracebacks on the way out"
    settings = config / "CRM Desktop" / "crm-desktop.ini"
    assert "geometry" in settings.read_text(encoding="utf-8")
