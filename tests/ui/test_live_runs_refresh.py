"""The Sync Monitor's live refresh re-reads only new runs and the runs still going, not every run shown; runs started
elsewhere show up too."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
import qasync
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncDirection
from crm_desktop.store.models import SyncRunRow, SyncRunStatus, SyncTrigger
from crm_desktop.ui.sync_monitor_panel import RUNS_WATCH_MS, SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import RunColumn, SyncRunsTableModel
from crm_desktop.ui.tasks import BackgroundTasks
from tests.ui.conftest import HubSpotBench


def test_the_live_refresh_reads_new_and_unfinished_runs_only(workspace: Workspace) -> None:
    integration = workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing"), {"token": "pat-na1-1"}
    )
    assert integration.id is not None
    store = workspace.sync.store

    def run(status: SyncRunStatus | None) -> int:
        run_id = store.start_run(integration.id or 0, SyncTrigger.MANUAL, SyncDirection.BOTH)
        if status is not None:
            store.finish_run(run_id, status, created=1)
        return run_id

    finished = [run(SyncRunStatus.SUCCEEDED) for _ in range(60)]
    going = run(None)
    reads: list[tuple[str, object]] = []

    def load_runs(limit: int) -> list[SyncRunRow]:
        reads.append(("runs", limit))
        return workspace.sync.runs(limit=limit)

    def load_changed(newer_than: int, unfinished: list[int]) -> Sequence[SyncRunRow]:
        found = workspace.sync.runs_changed(newer_than, unfinished)
        reads.append(("changed", (newer_than, list(unfinished), len(found))))
        return found

    model = SyncRunsTableModel(load_runs, lambda: {integration.id or 0: integration.name}, 50,
                               load_changed=load_changed)
    model.refresh()
    assert model.rowCount() == 50 and model.run_at(0).id == going
    reads.clear()

    store.finish_run(going, SyncRunStatus.PARTIAL, created=7)
    started = run(None)
    assert model.refresh_live() is True, "a run started and one ended: the health lines follow"
    assert reads == [("changed", (going, [going], 2))], "one small read: the new run and the one that was going"
    assert [model.run_at(0).id, model.run_at(1).id] == [started, going]
    assert model.run_at(1).status is SyncRunStatus.PARTIAL and model.run_at(1).created == 7
    assert model.run_at(2).id == finished[-1] and model.rowCount() == 51

    reads.clear()
    assert model.refresh_live() is False, "nothing started or ended"
    assert reads == [("changed", (started, [started], 1))]


def test_the_panel_shows_runs_it_did_not_start_read_off_the_gui_thread(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run the local API, an automatic push, a cron sync or another desktop started shows up within a watch tick,
    with its trigger, and again when it ends; the health line follows."""
    workspace = hubspot.workspace
    integration = workspace.integrations.get(hubspot.name)
    store = workspace.sync.store
    reading_threads: set[str] = set()
    read_changed, read_runs = workspace.sync.runs_changed, workspace.sync.runs

    def runs_changed(newer_than: int, unfinished: list[int]) -> list[SyncRunRow]:
        reading_threads.add(threading.current_thread().name)
        return read_changed(newer_than, unfinished)

    def runs(name: str | None = None, limit: int = 50) -> list[SyncRunRow]:
        reading_threads.add(threading.current_thread().name)
        return read_runs(name, limit)

    monkeypatch.setattr(workspace.sync, "runs_changed", runs_changed)
    monkeypatch.setattr(workspace.sync, "runs", runs)
    panel = SyncMonitorPanel(workspace.monitor, BackgroundTasks())
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: hubspot.name in panel.health_board.rows, timeout=5000)
    assert panel.runs_watch.isActive() and panel.runs_watch.interval() == RUNS_WATCH_MS
    assert panel.runs_model.rowCount() == 0
    assert panel.health_board.rows[hubspot.name].last_sync_label.text() == "never"
    reading_threads.clear()

    first = store.start_run(integration.id or 0, SyncTrigger.API, SyncDirection.BOTH)
    panel.look_for_other_runs()
    qtbot.waitUntil(lambda: panel.runs_model.rowCount() == 1, timeout=5000)
    row = [panel.runs_model.index(0, column).data() for column in (RunColumn.TRIGGER, RunColumn.STATUS)]
    assert row == ["Local API", "Running"]

    store.finish_run(first, SyncRunStatus.SUCCEEDED, created=3)
    second = store.start_run(integration.id or 0, SyncTrigger.CLI, SyncDirection.PUSH)
    store.finish_run(second, SyncRunStatus.FAILED)
    panel.look_for_other_runs()
    qtbot.waitUntil(lambda: panel.runs_model.rowCount() == 2, timeout=5000)
    assert [panel.runs_model.run_at(row).id for row in (0, 1)] == [second, first]
    assert panel.runs_model.index(1, RunColumn.STATUS).data() == "Succeeded"
    assert panel.runs_model.index(1, RunColumn.CREATED).data() == "3"
    qtbot.waitUntil(lambda: panel.health_board.rows[hubspot.name].last_sync_label.text() != "never", timeout=5000)
    assert reading_threads and threading.main_thread().name not in reading_threads
