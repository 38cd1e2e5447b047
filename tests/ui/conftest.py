"""Qt fixtures: a throwaway QSettings location, workspaces (plain, or wired to a HubSpot sandbox), the qasync loop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync
from PySide6.QtCore import QCoreApplication, QEvent, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SocialPlatform, SocialProfile, SyncConfig
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.ui.theme import Theme, apply_theme, current_theme, stylesheet
from crm_desktop.vault import Vault
from tests.support.memory_keyring import MemoryKeyring

T = TypeVar("T")
W = TypeVar("W", bound=QWidget)


@pytest.fixture(autouse=True)
def qt_settings_dir(tmp_path: Path) -> Path:
    """Every QSettings the UI opens lands in this test's own folder, never in the user's config."""
    folder = tmp_path / "qt-settings"
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture(autouse=True)
def qt_objects_die_on_the_gui_thread(qapp: QApplication) -> Iterator[None]:
    """After each test (and after pytest-qt closed its widgets), delete what was scheduled for deletion and collect
    the test's garbage here, on the GUI thread. Otherwise a Python collection that happens to run later on another
    thread (a sandbox server's, the People list's reading thread) destroys Qt widgets there, which corrupts Qt's
    widget list: a later ``setStyleSheet`` then crashes walking it."""
    yield
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture(autouse=True)
def light_theme_after_each_test(qapp: QApplication) -> Iterator[None]:
    """A test that switches to the dark theme puts the light one back. Tables colour their text by the theme last
    applied, so a dark theme left on failed whichever test a CI worker ran next that reads a light colour."""
    yield
    left_dark = current_theme(qapp) is Theme.DARK
    if left_dark:  # put back here, so that only the test that left it fails
        apply_theme(qapp, Theme.LIGHT)
        qapp.setStyleSheet("")
    assert not left_dark, "the test left the dark theme on: apply_theme(qapp, Theme.LIGHT) when it ends"


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
        # A cancelled task may wait for a sync worker's clean-up on its thread: seconds on a loaded host.
        qtbot.waitUntil(lambda: all(task.done() for task in pending), timeout=10_000)
        loop.stop()
        loop.close()
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        # stop() asked Qt to quit; one short exec() clears that request so later local event loops still run.
        QTimer.singleShot(0, qapp.quit)
        qapp.exec()


#: Messages only the headless "offscreen" platform prints (it cannot forward a window's size hints or raise a window,
#: and has no native tray window to follow when a test shows the tray icon).
OFFSCREEN_ONLY_MESSAGES = (
    r"This plugin does not support propagateSizeHints\(\)",
    r"No such signal QPlatformNativeInterface::systemTrayWindowChanged",
    r"This plugin does not support raise\(\)",
    r"This plugin does not support grabbing the keyboard",  # a popup menu grabs it on a real screen
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let UI tests ignore what the offscreen platform says about itself; every other Qt warning still fails."""
    ui_folder = Path(__file__).parent
    for item in items:
        if ui_folder in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.qt_log_ignore(*OFFSCREEN_ONLY_MESSAGES))


# -- a workspace wired in-process to a HubSpot sandbox -----------------------------------------------------------


@dataclass
class HubSpotBench:
    """A workspace whose adapters talk to an in-process HubSpot sandbox, with a few local contacts.

    Attributes:
        sandbox: the in-process HubSpot.
        workspace: the local side.
        name: the integration's name.
    """

    sandbox: HubSpotSandbox
    workspace: Workspace
    name: str = "hubspot-marketing"

    def add_integration(self, name: str, *, auto_sync: bool = False, token: str | None = None) -> Integration:
        """Connect one more integration to the sandbox (a wrong ``token`` gives a refused connection)."""
        credentials = self.sandbox.credentials() if token is None else {"token": token}
        return self.workspace.integrations.add(
            Integration(
                provider=Provider.HUBSPOT,
                name=name,
                base_url=self.sandbox.base_url,
                sync_config=SyncConfig(auto_sync=auto_sync),
            ),
            credentials,
        )

    def save_people(self, count: int, start: int = 1) -> None:
        self.workspace.contacts.save_many(person(number) for number in range(start, start + count))

    def crm_id(self, email: str) -> str:
        """The HubSpot id of a synced contact."""
        integration = self.workspace.integrations.get(self.name)
        store = self.workspace.sync.store
        local = store.local_by_emails(RecordObject.CONTACT, [email])[email]
        link = store.links_for_local(integration.id or 0, RecordObject.CONTACT, [local.id])[local.id]
        return link.crm_id

    def edit_in_crm(self, email: str, **properties: Any) -> None:
        """A salesperson changes the contact in HubSpot, a couple of seconds after the local side."""
        self.sandbox.clock.advance(2)
        self.sandbox.edit_record("contacts", self.crm_id(email), properties)

    def edit_locally(self, email: str, **changes: Any) -> None:
        """The marketer changes the local contact."""
        contact = self.workspace.contacts.find(email)
        assert contact is not None
        self.workspace.contacts.save(contact.model_copy(update=changes))


def person(number: int) -> Contact:
    """A local contact with a Twitter profile, numbered for distinct emails."""
    return Contact(
        email=f"person{number}@example.com",
        first_name=f"Ada{number}",
        last_name="Lovelace",
        company="Analytical Engines",
        phone=f"+1415555{number:04d}",
        social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username=f"ada{number}", followers=100)],
    )


@pytest.fixture
def hubspot(tmp_path: Path, keyring_backend: MemoryKeyring) -> Iterator[HubSpotBench]:
    """A workspace wired to an in-process HubSpot sandbox, one integration and three local contacts."""
    sandbox = HubSpotSandbox(SandboxConfig())
    opened = Workspace.open(tmp_path / "synced", vault=Vault(backend=keyring_backend), transport=sandbox.transport())
    bench = HubSpotBench(sandbox, opened)
    bench.add_integration(bench.name)
    bench.save_people(3)
    try:
        yield bench
    finally:
        opened.close()


@pytest.fixture
def hubspot_window(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[Any]:
    """The main window on the HubSpot bench's workspace, 1280 x 800, on the qasync loop; closed after the test."""
    from crm_desktop.ui.main_window import MainWindow

    window = shown(qtbot, MainWindow(hubspot.workspace), 1280, 800)
    yield window
    window.close()


def click(widget: QWidget) -> None:
    """A left click in the middle of ``widget``."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def drive(qtbot: QtBot, coroutine: Coroutine[Any, Any, T], timeout: int = 10_000) -> T:
    """Run ``coroutine`` on the (already running) qasync loop and wait for its result, processing Qt events."""
    task = asyncio.get_event_loop().create_task(coroutine)
    qtbot.waitUntil(task.done, timeout=timeout)
    return task.result()


def unfinished_tasks() -> list[asyncio.Task[Any]]:
    """Tasks still running on the current loop."""
    return [task for task in asyncio.all_tasks(asyncio.get_event_loop()) if not task.done()]



def shown(qtbot: QtBot, widget: W, width: int, height: int) -> W:
    """``widget`` shown ``width`` x ``height`` and exposed; pytest-qt closes it after the test."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget
