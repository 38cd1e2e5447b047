"""Qt fixtures: a throwaway QSettings location, a workspace on a temporary data dir, and the qasync loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.theme import stylesheet
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring


@pytest.fixture(autouse=True)
def qt_settings_dir(tmp_path: Path) -> Path:
    """Every QSettings the UI opens lands in this test's own folder, never in the user's config."""
    folder = tmp_path / "qt-settings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture
def keyring_backend(memory_keyring: MemoryKeyring | None) -> MemoryKeyring:
    """The in-memory keyring the test's vault writes to (inspect ``.entries``)."""
    assert memory_keyring is not None, "UI tests run on the in-memory keyring"
    return memory_keyring


@pytest.fixture
def workspace(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[Workspace]:
    """A fresh workspace on a temporary data dir whose vault is the in-memory keyring."""
    opened = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def styled_app(qapp: QApplication) -> Iterator[QApplication]:
    """The test QApplication wearing the app's stylesheet (taken off again afterwards)."""
    qapp.setStyleSheet(stylesheet())
    try:
        yield qapp
    finally:
        qapp.setStyleSheet("")


@pytest.fixture
def qasync_loop(qapp: QApplication, qtbot: QtBot) -> Iterator[qasync.QEventLoop]:
    """A qasync loop marked running without ``app.exec()``, so async slots and tasks run under pytest-qt."""
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        qtbot.waitUntil(lambda: all(task.done() for task in pending), timeout=2000)
        loop.stop()
        loop.close()
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        # stop() asked Qt to quit; one short exec() clears that request so later local event loops still run.
        QTimer.singleShot(0, qapp.quit)
        qapp.exec()


#: Messages only the headless "offscreen" platform prints (it cannot forward a window's size hints).
OFFSCREEN_ONLY_MESSAGES = (r"This plugin does not support propagateSizeHints\(\)",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let UI tests ignore what the offscreen platform says about itself; every other Qt warning still fails."""
    ui_folder = Path(__file__).parent
    for item in items:
        if ui_folder in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.qt_log_ignore(*OFFSCREEN_ONLY_MESSAGES))
