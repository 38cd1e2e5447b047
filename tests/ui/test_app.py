"""``run_gui``: the single entry point opens the window on one qasync loop and shuts everything down cleanly."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
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


def closing_spy(tmp_path: Path, backend: MemoryKeyring) -> tuple[Callable[[], Workspace], list[bool]]:
    """A workspace factory, and a list that gets an entry each time that workspace is closed."""
    closed: list[bool] = []

    def factory() -> Workspace:
        workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=backend))
        original_close = workspace.close

        def close() -> None:
            closed.append(True)
            original_close()

        workspace.close = close  # type: ignore[method-assign]
        return workspace

    return factory, closed


def test_run_gui_shows_the_window_and_shuts_down_cleanly(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    factory, closed = closing_spy(tmp_path, keyring_backend)
    seen: dict[str, object] = {}

    async def left_running() -> None:
        await asyncio.sleep(3600)

    def while_running(attempts: int = 200) -> None:
        window = main_window()
        if window is None and attempts > 0:
            # The window is shown by the loop's first task; look again shortly.
            QTimer.singleShot(10, lambda: while_running(attempts - 1))
            return
        seen["window"] = window is not None
        if window is None:
            QCoreApplication.quit()  # fail the asserts below rather than hang
            return
        seen["loop_running"] = asyncio.get_event_loop().is_running()
        seen["stylesheet"] = bool(restore_app.styleSheet())
        seen["names"] = (QCoreApplication.organizationName(), QCoreApplication.applicationName())
        # A task nobody tracks: run_gui must still cancel it on the way out.
        seen["task"] = asyncio.get_event_loop().create_task(left_running(), name="left running")
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


def test_a_quit_from_elsewhere_still_closes_the_window_and_the_workspace(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, qt_settings_dir: Path
) -> None:
    factory, closed = closing_spy(tmp_path, keyring_backend)

    def quit_when_shown(attempts: int = 200) -> None:
        if main_window() is None and attempts > 0:
            QTimer.singleShot(10, lambda: quit_when_shown(attempts - 1))
            return
        QCoreApplication.quit()  # e.g. the desktop session ending

    QTimer.singleShot(0, quit_when_shown)
    assert run_gui(factory, ["crm-desktop"]) == 0
    assert main_window() is None
    assert any(qt_settings_dir.rglob("crm-desktop.ini")), "the window saved its state on the way out"
    assert closed == [True]


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
    # The headless platform's note about itself is the one line allowed (see OFFSCREEN_ONLY_MESSAGES).
    problems = [line for line in err.splitlines() if line and "does not support propagateSizeHints" not in line]
    assert problems == [], "no Qt warnings or tracebacks on the way out"
    settings = config / "CRM Desktop" / "crm-desktop.ini"
    assert "geometry" in settings.read_text(encoding="utf-8")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM handling is POSIX only")
def test_a_polite_kill_quits_even_when_the_loops_self_pipe_is_not_listening(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop hears signals through its self-pipe; with that pipe's reader gone, the handler beside the loop
    still quits with the next Python code of the main thread (here a timer's tick)."""
    factory, closed = closing_spy(tmp_path, keyring_backend)
    gave_up: list[bool] = []
    ticks = QTimer()
    ticks.timeout.connect(lambda: None)  # Python code on the main thread, as the app's timers and API run

    def kill_when_shown(attempts: int = 200) -> None:
        if main_window() is None and attempts > 0:
            QTimer.singleShot(10, lambda: kill_when_shown(attempts - 1))
            return
        loop = asyncio.get_event_loop()
        loop._remove_reader(loop._ssock.fileno())  # type: ignore[attr-defined]  # the wake-up never heard
        ticks.start(20)
        os.kill(os.getpid(), signal.SIGTERM)

    def give_up() -> None:
        gave_up.append(True)
        QCoreApplication.quit()

    QTimer.singleShot(0, kill_when_shown)
    QTimer.singleShot(15_000, give_up)
    with caplog.at_level("INFO", logger="crm_desktop.ui.app"):
        assert run_gui(factory, ["crm-desktop"]) == 0
    ticks.stop()
    assert gave_up == [], "the SIGTERM was lost"
    assert "asked to quit by SIGTERM" in caplog.messages
    assert closed == [True] and main_window() is None


def test_a_window_that_fails_to_build_still_releases_the_loop_and_workspace(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory, closed = closing_spy(tmp_path, keyring_backend)

    def broken_window(workspace: Workspace) -> MainWindow:
        raise FileNotFoundError("CRM Desktop resource icons/integrations.svg is missing")

    monkeypatch.setattr("crm_desktop.ui.app.MainWindow", broken_window)
    with pytest.raises(FileNotFoundError, match=r"integrations\.svg"):
        run_gui(factory, ["crm-desktop"])
    assert closed == [True]
    assert restore_app.quitOnLastWindowClosed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_tasks_still_running_at_close_wind_down_on_a_running_loop(
    restore_app: QApplication, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    factory, closed = closing_spy(tmp_path, keyring_backend)
    cleanups: list[str] = []

    async def sync_like() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            # Closing HTTP connections and releasing the sync lock take several steps, each needing a running
            # loop (anyio asks for one).
            for _ in range(5):
                await asyncio.sleep(0)
                try:
                    asyncio.get_running_loop()
                except RuntimeError:
                    cleanups.append("no loop")
                    break
            else:
                cleanups.append("loop running")

    def while_running(attempts: int = 200) -> None:
        window = main_window()
        if window is None and attempts > 0:
            QTimer.singleShot(10, lambda: while_running(attempts - 1))
            return
        assert window is not None
        window.tasks.start(sync_like(), name="sync at close")
        QTimer.singleShot(20, window.close)

    QTimer.singleShot(0, while_running)
    assert run_gui(factory, ["crm-desktop"]) == 0
    assert cleanups == ["loop running"]
    assert closed == [True]
