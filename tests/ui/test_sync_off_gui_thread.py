"""A sync started from the window does its store work and merging in the sync worker, never on the GUI thread."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from crm_desktop.store.models import SyncRunStatus
from crm_desktop.store.sync_store import SyncStore
from crm_desktop.ui.main_window import MainWindow
from tests.ui.conftest import HubSpotBench

#: What a run does to the store: the lock, the run row, the merge's reads and writes, the outbox.
ENGINE_STORE_CALLS = {
    "claim_lock", "start_run", "heartbeat", "get_cursor", "links_for_crm", "apply_record_writes",
    "changed_local_ids", "local_records", "links_for_local", "add_outbox", "complete_outbox", "finish_run",
    "release_lock",
}


@pytest.fixture
def store_calls(hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every call to the workspace's sync store, with the thread that made it."""
    calls: list[tuple[str, int]] = []
    store = hubspot.workspace.sync.store

    def recorded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return call

    for name in dir(SyncStore):
        if not name.startswith("_") and callable(getattr(SyncStore, name)):
            monkeypatch.setattr(store, name, recorded(name, getattr(store, name)))
    yield calls


def test_a_sync_from_the_monitor_runs_its_store_work_off_the_gui_thread(
    qtbot: QtBot, hubspot: HubSpotBench, store_calls: list[tuple[str, int]], qasync_loop: qasync.QEventLoop
) -> None:
    window = MainWindow(hubspot.workspace)
    qtbot.addWidget(window)
    window.show()
    panel = window.sync_monitor_panel
    progress: list[tuple[str, int]] = []
    panel.progress_shown.connect(lambda text, done, total: progress.append((text, threading.get_ident())))

    def sync_now() -> None:
        QTest.mouseClick(panel.sync_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not panel.running_integrations, timeout=20_000)

    sync_now()
    hubspot.edit_in_crm("person1@example.com", firstname="Augusta")
    hubspot.edit_locally("person2@example.com", company="Difference Engines")
    store_calls.clear()
    sync_now()

    runs = hubspot.workspace.sync.runs(hubspot.name)
    assert [run.status for run in runs] == [SyncRunStatus.SUCCEEDED] * 2
    assert (runs[0].created, runs[0].updated) == (0, 2), "the pull merged one change, the push sent the other"
    assert hubspot.workspace.contacts.find("person1@example.com").first_name == "Augusta"  # type: ignore[union-attr]

    gui = threading.get_ident()
    worker = hubspot.workspace.sync.run_off_thread().thread_id
    engine_calls = [(name, thread) for name, thread in store_calls if name in ENGINE_STORE_CALLS]
    assert {name for name, _ in engine_calls} == ENGINE_STORE_CALLS
    assert {thread for _, thread in engine_calls} == {worker}
    assert worker != gui
    # The window still hears of the run's progress, on its own thread, where it draws it.
    assert progress and {thread for _, thread in progress} == {gui}
    window.close()
