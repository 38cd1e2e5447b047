"""The Sync Monitor's table models, without a view: named columns, paging with fetchMore, live refresh, the log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import PeopleService
from crm_desktop.app.sync_service import SyncRecordLogRow, SyncRunRow, SyncTrigger
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact
from crm_desktop.domain.outcomes import ErrorCategory, RecordObject, RecordOutcome
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import LogColumn, RecordLogTableModel, RunColumn, SyncRunsTableModel
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.theme import Theme, apply_theme, palette
from crm_desktop.ui.wording import counts_text, duration_text, short_time
from tests.support.colours import contrast
from tests.ui.conftest import HubSpotBench, shown


def add_runs(bench: HubSpotBench, count: int, **finish: object) -> list[int]:
    """Finished runs written straight to the store (quicker than syncing ``count`` times)."""
    store = bench.workspace.sync.store
    integration_id = bench.workspace.integrations.get(bench.name).id
    assert integration_id is not None
    ids = []
    for _ in range(count):
        run_id = store.start_run(integration_id, SyncTrigger.MANUAL, "both")
        values = {"created": 2, "updated": 1, "unchanged": 5, "api_calls": 4} | finish
        store.finish_run(run_id, "succeeded", **values)  # type: ignore[arg-type]
        ids.append(run_id)
    return ids


def runs_model(workspace: Workspace, page_size: int = 50) -> SyncRunsTableModel:
    def names() -> dict[int, str]:
        return {i.id: i.name for i in workspace.integrations.list() if i.id is not None}

    model = SyncRunsTableModel(lambda limit: workspace.sync.runs(limit=limit), names, page_size)
    model.refresh()
    return model


def cell(model: SyncRunsTableModel, row: int, column: RunColumn) -> object:
    return model.index(row, column).data()


def test_the_columns_are_named_in_order(hubspot: HubSpotBench) -> None:
    model = runs_model(hubspot.workspace)
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert titles == [
        "Started", "Integration", "Trigger", "Direction", "Status", "Created", "Updated", "Unchanged",
        "Failed", "Conflicts", "API calls", "Duration",
    ]
    assert [column.title for column in RunColumn] == titles


def test_a_run_reads_as_the_marketer_says_it(hubspot: HubSpotBench) -> None:
    [run_id] = add_runs(hubspot, 1, failed=1, conflicts=2, message="HubSpot's daily API budget is spent")
    model = runs_model(hubspot.workspace)
    assert model.rowCount() == 1
    assert cell(model, 0, RunColumn.INTEGRATION) == "hubspot-marketing"
    assert cell(model, 0, RunColumn.TRIGGER) == "Manual"
    assert cell(model, 0, RunColumn.DIRECTION) == "Two-way"
    assert cell(model, 0, RunColumn.STATUS) == "Succeeded"
    counts = [cell(model, 0, c) for c in (RunColumn.CREATED, RunColumn.UPDATED, RunColumn.UNCHANGED,
                                          RunColumn.FAILED, RunColumn.CONFLICTS, RunColumn.API_CALLS)]
    assert counts == ["2", "1", "5", "1", "2", "4"]
    assert str(cell(model, 0, RunColumn.DURATION)).endswith(" s")
    status = model.index(0, RunColumn.STATUS)
    assert status.data(Qt.ItemDataRole.ToolTipRole) == "HubSpot's daily API budget is spent"
    assert model.index(0, RunColumn.CREATED).data(Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight
    assert model.index(0, 0).data(SyncRunsTableModel.RunRole).id == run_id
    assert model.row_of(run_id) == 0
    add_runs(hubspot, 1, created=10_517, api_calls=1_179)
    model.refresh()
    assert cell(model, 0, RunColumn.CREATED) == "10,517" and cell(model, 0, RunColumn.API_CALLS) == "1,179"


def test_a_running_run_says_so(hubspot: HubSpotBench) -> None:
    store = hubspot.workspace.sync.store
    integration_id = hubspot.workspace.integrations.get(hubspot.name).id or 0
    store.start_run(integration_id, SyncTrigger.SCHEDULED, "push_new")
    model = runs_model(hubspot.workspace)
    assert cell(model, 0, RunColumn.STATUS) == "Running"
    assert cell(model, 0, RunColumn.DURATION) == "running…"
    assert cell(model, 0, RunColumn.TRIGGER) == "Scheduled"
    assert cell(model, 0, RunColumn.DIRECTION) == "Push new"


def test_older_runs_arrive_a_page_at_a_time(hubspot: HubSpotBench) -> None:
    ids = add_runs(hubspot, 23)
    model = runs_model(hubspot.workspace, page_size=10)
    assert model.rowCount() == 10
    assert model.canFetchMore(QModelIndex())
    assert [model.run_at(row).id for row in range(10)] == ids[::-1][:10], "newest first"

    model.fetchMore(QModelIndex())
    assert model.rowCount() == 20
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 23
    assert not model.canFetchMore(QModelIndex())
    assert [model.run_at(row).id for row in range(23)] == ids[::-1]
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 23


def test_scrolling_a_long_history_reads_one_page_per_fetch_however_deep(
    hubspot: HubSpotBench, qtbot: QtBot, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A year of hourly runs is thousands of rows: each older page read every newer run again, so a page 3,000 runs
    # down took a third of a second on the GUI thread and the scroll froze more the further it went.
    ids = add_runs(hubspot, 95)
    store = hubspot.workspace.sync.store
    read: list[int] = []
    list_runs = store.list_runs

    def counted(*args: Any, **kwargs: Any) -> list[SyncRunRow]:
        runs = list_runs(*args, **kwargs)
        read.append(len(runs))
        return runs

    monkeypatch.setattr(store, "list_runs", counted)
    panel = shown(qtbot, SyncMonitorPanel(hubspot.workspace.monitor, BackgroundTasks(), page_size=10), 1000, 600)
    model = panel.runs_model
    qtbot.waitUntil(lambda: model.rowCount() == 10)
    read.clear()
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())

    assert [model.run_at(row).id for row in range(model.rowCount())] == ids[::-1], "every run once, newest first"
    assert len(read) == 9 and max(read) <= 11, read


def test_a_refresh_puts_new_runs_on_top_and_keeps_the_older_pages(hubspot: HubSpotBench, qtbot: QtBot) -> None:
    ids = add_runs(hubspot, 15)
    model = runs_model(hubspot.workspace, page_size=10)
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 15
    newer = add_runs(hubspot, 2)
    with qtbot.waitSignal(model.rowsInserted, timeout=1000) as inserted:
        model.refresh()
    assert inserted.args[1:] == [0, 1], "two rows inserted on top, not a reset"
    assert [model.run_at(row).id for row in range(model.rowCount())] == (ids + newer)[::-1]


def test_a_refresh_updates_a_run_that_finished(hubspot: HubSpotBench, qtbot: QtBot) -> None:
    store = hubspot.workspace.sync.store
    run_id = store.start_run(hubspot.workspace.integrations.get(hubspot.name).id or 0, SyncTrigger.MANUAL, "both")
    model = runs_model(hubspot.workspace)
    assert cell(model, 0, RunColumn.STATUS) == "Running"
    store.finish_run(run_id, "failed", message="HubSpot refused the token")  # type: ignore[arg-type]
    with qtbot.waitSignal(model.dataChanged, timeout=1000):
        model.refresh()
    assert cell(model, 0, RunColumn.STATUS) == "Failed"
    assert model.rowCount() == 1


def test_removing_the_integration_empties_the_table(hubspot: HubSpotBench) -> None:
    add_runs(hubspot, 3)
    model = runs_model(hubspot.workspace)
    hubspot.workspace.integrations.remove(hubspot.name)
    model.refresh()
    assert model.rowCount() == 0
    assert not model.canFetchMore(QModelIndex())


def test_the_page_size_must_be_positive(hubspot: HubSpotBench) -> None:
    with pytest.raises(ValueError, match="page_size"):
        SyncRunsTableModel(lambda limit: [], dict, page_size=0)


def test_the_record_log_lists_failures_first_with_their_category(hubspot: HubSpotBench) -> None:
    [run_id] = add_runs(hubspot, 1)
    store = hubspot.workspace.sync.store
    store.add_record_outcomes(run_id, [
        (RecordObject.CONTACT, "ok@example.com", "101", RecordOutcome.CREATED, None, None),
        (RecordObject.CONTACT, "bad@example.com", None, RecordOutcome.FAILED, ErrorCategory.VALIDATION,
         "Property values were not valid: phone"),
        (RecordObject.LEAD, "dup@example.com", None, RecordOutcome.FAILED, ErrorCategory.DUPLICATE,
         "A contact with this email already exists"),
    ])
    _, log = hubspot.workspace.sync.run(run_id)
    model = RecordLogTableModel()
    model.show_log(log)
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    assert titles == ["Object", "Record", "Outcome", "Error category", "Message"]
    rows = [[model.index(r, c).data() for c in LogColumn] for r in range(model.rowCount())]
    assert rows == [
        ["Contact", "bad@example.com", "Failed", "Invalid record", "Property values were not valid: phone"],
        ["Lead", "dup@example.com", "Failed", "Duplicate", "A contact with this email already exists"],
        ["Contact", "ok@example.com", "Created", "", ""],
    ]
    assert model.index(0, LogColumn.OUTCOME).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert model.index(2, LogColumn.OUTCOME).data(Qt.ItemDataRole.ForegroundRole) is None
    model.clear()
    assert model.rowCount() == 0


def test_a_large_record_log_is_read_a_page_at_a_time_failures_first(hubspot: HubSpotBench) -> None:
    [run_id] = add_runs(hubspot, 1)
    store = hubspot.workspace.sync.store
    created = [(RecordObject.CONTACT, f"p{n}@example.com", str(n), RecordOutcome.CREATED, None, None)
               for n in range(1200)]
    failed = [(RecordObject.CONTACT, "late@example.com", None, RecordOutcome.FAILED, ErrorCategory.VALIDATION,
               "phone: not a number")]
    store.add_record_outcomes(run_id, [*created, *failed])
    service = hubspot.workspace.sync
    reads: list[tuple[int, int]] = []

    def fetch(offset: int, limit: int) -> list[SyncRecordLogRow]:
        reads.append((offset, limit))
        return service.run_log(run_id, offset=offset, limit=limit, failures_first=True)

    model = RecordLogTableModel()
    model.show_pages(fetch, service.run_log_size(run_id))
    assert model.rowCount() == RecordLogTableModel.PAGE_SIZE and model.canFetchMore()
    assert model.index(0, LogColumn.RECORD).data() == "late@example.com", "the failure comes first"
    while model.canFetchMore():
        model.fetchMore()
    assert model.rowCount() == 1201
    assert reads == [(0, 500), (500, 500), (1000, 500)]
    assert service.run_errors(run_id) == {ErrorCategory.VALIDATION: 1}


def test_durations_read_naturally() -> None:
    assert duration_text(0.42) == "0.4 s"
    assert duration_text(12.4) == "12 s"
    assert duration_text(185) == "3 min 05 s"
    assert duration_text(timedelta(hours=1, minutes=2).total_seconds()) == "1 h 02 min"
    assert duration_text(None) == "—"


def test_times_in_tables_are_short_and_relative() -> None:
    now = datetime(2025, 3, 14, 12, 0).astimezone()  # local noon
    assert short_time(now - timedelta(hours=2), now) == f"Today {(now - timedelta(hours=2)):%H:%M}"
    yesterday = now - timedelta(days=1)
    assert short_time(yesterday, now) == f"{yesterday.day} {yesterday:%b %H:%M}"
    earlier = now - timedelta(days=20)
    assert short_time(earlier, now) == f"{earlier.day} {earlier:%b %H:%M}"
    assert short_time(now - timedelta(days=400), now) == f"{(now - timedelta(days=400)):%Y-%m-%d}"
    assert short_time(None) == "—"


def test_a_runs_counts_name_only_what_it_did() -> None:
    assert counts_text({"created": 504, "updated": 0, "unchanged": 0, "failed": 0, "conflicts": 0}) == "504 created"
    assert counts_text({"created": 0, "updated": 1, "unchanged": 1_204, "failed": 2, "conflicts": 1, "decided": 3}) == (
        "1 updated, 1,204 unchanged, 2 failed, 1 conflict waiting, 3 decided by rule")
    assert counts_text({"created": 0, "failed": 0}) == "nothing to change"


@pytest.mark.parametrize("theme", list(Theme))
def test_every_run_status_reads_clearly_in_both_themes(
    qapp: QApplication, hubspot: HubSpotBench, theme: Theme
) -> None:
    """Seen in the dark theme: "Failed" (and "Running") were drawn in the light theme's dark red and blue, under 3:1
    against the dark window, hard to read where they matter most."""
    store = hubspot.workspace.sync.store
    integration_id = hubspot.workspace.integrations.get(hubspot.name).id
    assert integration_id is not None
    statuses = ["succeeded", "partial", "failed", "cancelled", "offline"]
    for status in statuses:
        store.finish_run(store.start_run(integration_id, SyncTrigger.MANUAL, "both"), status)
    store.start_run(integration_id, SyncTrigger.MANUAL, "both")  # still running
    apply_theme(qapp, theme)
    try:
        model = runs_model(hubspot.workspace)
        background = palette(theme).color(QPalette.ColorRole.Base)
        shown = {}
        for row in range(model.rowCount()):
            brush = model.index(row, RunColumn.STATUS).data(Qt.ItemDataRole.ForegroundRole)
            assert isinstance(brush, QBrush)
            shown[model.index(row, RunColumn.STATUS).data()] = round(contrast(brush.color(), background), 1)
        assert len(shown) == len(statuses) + 1
        assert all(ratio >= 4.5 for ratio in shown.values()), shown
    finally:
        apply_theme(qapp, Theme.LIGHT)
        qapp.setStyleSheet("")



def test_an_edit_by_hand_is_not_listed_as_a_local_import(hubspot: HubSpotBench) -> None:
    workspace = hubspot.workspace
    workspace.contacts.save(Contact(email="ann@example.com", first_name="Ann"))
    people = PeopleService(workspace.database, workspace.social, workspace.sync)
    local_id = workspace.sync.store.local_by_emails(RecordObject.CONTACT, ["ann@example.com"])["ann@example.com"].id
    people.edit(RecordObject.CONTACT, local_id, {"company": "Hand Co"})
    model = runs_model(workspace)
    # It read "local import", as if a file had been imported.
    assert (cell(model, 0, RunColumn.INTEGRATION), cell(model, 0, RunColumn.TRIGGER)) == (
        "edit by hand", "Edit by hand")
