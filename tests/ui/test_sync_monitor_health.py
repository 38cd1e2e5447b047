"""The Sync Monitor's health lines, preview, error groups, retry, export and metrics, driven by clicks and keys
against an in-process HubSpot sandbox on a real SQLite file."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCharts import QChartView, QValueAxis
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.sync_monitor import HealthState, IntegrationHealth, MetricsRange
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.sync.plan import ChangeAction, ConflictDecision, FieldChange, PlannedChange, Side, SyncPlan
from crm_desktop.ui.sync_health import HealthBoard, ProgressRate, progress_figures
from crm_desktop.ui.sync_monitor_panel import STARTING_TEXT, SyncMonitorPanel
from crm_desktop.ui.sync_preview_dialog import (
    PreviewColumn,
    PreviewTableModel,
    SyncPreviewDialog,
    plan_sentence,
    preview_rows,
)
from crm_desktop.ui.sync_runs_model import ErrorColumn, RunColumn
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.wording import local_time
from tests.ui.conftest import HubSpotBench, unfinished_tasks

NAME = "hubspot-marketing"


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@pytest.fixture
def panel(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[SyncMonitorPanel]:
    widget = SyncMonitorPanel(hubspot.workspace.monitor, BackgroundTasks())
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: NAME in widget.health_board.rows, timeout=5000)
    yield widget


def wait_idle(qtbot: QtBot, panel: SyncMonitorPanel) -> None:
    qtbot.waitUntil(lambda: not panel.running_integrations and panel.progress_label.text() == panel.IDLE_TEXT,
                    timeout=15_000)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def state_text(panel: SyncMonitorPanel, name: str = NAME) -> str:
    return panel.health_board.rows[name].state_label.text()


def open_preview(panel: SyncMonitorPanel, qtbot: QtBot) -> SyncPreviewDialog:
    QTest.mouseClick(panel.sync_all_button, Qt.MouseButton.LeftButton)
    dialog = panel.preview_dialog
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.proceed_button.isEnabled(), timeout=15_000)
    return dialog


def preview_lines(model: PreviewTableModel) -> list[tuple[str, ...]]:
    return [tuple(str(model.index(r, c).data()) for c in PreviewColumn) for r in range(model.rowCount())]


def test_health_line_goes_from_not_synced_to_in_sync_with_quota_and_last_sync(
    panel: SyncMonitorPanel, qtbot: QtBot
) -> None:
    row = panel.health_board.rows[NAME]
    assert "Not synced yet" in state_text(panel)
    assert [h.text() for h in panel.health_board.headings] == ["State", "Last sync", "Outbox",
                                                                "API quota left"]
    assert row.last_sync_label.text() == "never"
    assert row.outbox_label.text() == "empty"
    assert row.quota_bar.isHidden() and row.quota_label.text() == "unknown"
    assert not row.progress_bar.isVisible()
    scroll = panel.health_scroll
    assert scroll.viewport().height() >= panel.health_board.sizeHint().height() > row.name_label.height(), (
        "the headings and the line in full, nothing to scroll")

    with qtbot.waitSignal(panel.health_shown, timeout=15_000):
        click(panel.sync_button)
        wait_idle(qtbot, panel)

    qtbot.waitUntil(lambda: "In sync" in state_text(panel), timeout=5000)
    [run] = panel._sync.runs()
    assert row.last_sync_label.text() == f"today {local_time(run.finished_at)[-5:]}"
    assert row.last_sync_label.toolTip() == local_time(run.finished_at)
    assert not row.quota_bar.isHidden() and 0 < row.quota_bar.value() <= 1000
    assert row.quota_label.text().endswith("%")
    assert "API calls left today" in row.quota_bar.toolTip()
    assert not row.progress_bar.isVisible(), "the progress bar goes when the sync ends"


def test_a_crm_that_reports_only_what_is_left_shows_that_not_unknown(panel: SyncMonitorPanel) -> None:
    """Pipedrive's headers say how many tokens of the daily budget are left, never the budget: the health line
    says what is left instead of "unknown", and the gauge, which needs the whole, is not shown: seen in the demo,
    an empty gauge beside "987,590 today" read as none left."""
    row = panel.health_board.rows[NAME]
    assert row.health is not None
    row.show_health(replace(row.health, quota_limit=None, quota_remaining=998_821))
    assert row.quota_label.text() == "998,821 today"
    assert row.quota_bar.isHidden()
    assert "998,821 of the daily API quota left today" in row.quota_bar.toolTip()


def test_each_integration_shows_its_progress_with_rate_and_time_left(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    hubspot.save_people(600, start=10)
    row = panel.health_board.rows[NAME]
    seen: list[tuple[bool, str]] = []
    panel.progress_shown.connect(lambda *_: seen.append((row.progress_bar.isVisible(), row.progress_label.text())))

    click(panel.sync_button)
    wait_idle(qtbot, panel)

    shown = [text for visible, text in seen if visible]
    assert shown[0] == "pushing contacts, 200 of 603", shown
    assert shown[1].startswith("pushing contacts, 400 of 603 · ") and shown[1].endswith(" left"), shown
    assert "records/s" in shown[1], shown
    assert shown[-1].startswith("pushing contacts: 603 so far · "), "done: a rate, no time left"
    assert not row.progress_bar.isVisible()


def test_a_manual_run_s_line_says_starting_until_its_first_figures(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """With runs in the sync process, "Sync now" took a second to report its first figures, and its health line said
    "scheduled sync running…" meanwhile, of a run the marketer had just started by hand."""
    row = panel.health_board.rows[NAME]
    hubspot.sandbox.config.latency_ms = 1500.0  # the first figures come with the first answer
    click(panel.sync_button)
    qtbot.waitUntil(row.progress_label.isVisible, timeout=5000)
    assert row.progress_label.text() == STARTING_TEXT
    hubspot.sandbox.config.latency_ms = 0.0
    wait_idle(qtbot, panel)
    assert not row.progress_bar.isVisible()


def test_sync_all_previews_first_then_proceeds_or_cancels(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    dialog = open_preview(panel, qtbot)
    assert "“hubspot-marketing”: 3 to create in the CRM\n" in dialog.summary_label.text() + "\n", "no list of zeros"
    lines = preview_lines(dialog.model)
    assert [(line[PreviewColumn.RECORD], line[PreviewColumn.WHERE], line[PreviewColumn.ACTION]) for line in lines] \
        == [(f"person{n}@example.com", "In the CRM", "Create") for n in (1, 2, 3)]
    assert lines[0][PreviewColumn.CHANGE].startswith("Email: person1@example.com, First name: Ada1"), (
        "fields by the names the marketer knows")
    assert hubspot.sandbox.summary()["contacts"] == 0, "a preview writes nothing"

    click(dialog.cancel_button)
    qtbot.waitUntil(lambda: panel.preview_dialog is None, timeout=2000)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert hubspot.workspace.sync.runs() == [] and panel.running_integrations == []

    dialog = open_preview(panel, qtbot)
    with qtbot.waitSignal(panel.runs_finished, timeout=15_000):
        click(dialog.proceed_button)
    wait_idle(qtbot, panel)
    assert hubspot.sandbox.summary()["contacts"] == 3
    assert [run.created for run in hubspot.workspace.sync.runs()] == [3]
    assert panel.preview_first_check.isChecked(), "asked again next time"

    # An update is shown field by field, old -> new; then "Don't ask again" turns the preview off for good.
    hubspot.edit_locally("person2@example.com", company="Difference Engines Ltd")
    dialog = open_preview(panel, qtbot)
    [update] = [line for line in preview_lines(dialog.model) if line[PreviewColumn.ACTION] == "Update"]
    assert (update[PreviewColumn.RECORD], update[PreviewColumn.FIELD], update[PreviewColumn.CHANGE]) == (
        "person2@example.com", "Company", "Analytical Engines → Difference Engines Ltd")
    assert dialog.summary_label.text().endswith("“hubspot-marketing”: 1 to update in the CRM")
    click(dialog.dont_ask_check)
    with qtbot.waitSignal(panel.runs_finished, timeout=15_000):
        click(dialog.proceed_button)
    wait_idle(qtbot, panel)
    assert not panel.preview_first_check.isChecked()
    assert not hubspot.workspace.monitor.preview.asks_first(), "saved in the workspace"
    click(panel.sync_all_button)
    assert panel.preview_dialog is None and panel.running_integrations == [NAME], "synced at once"
    wait_idle(qtbot, panel)


def test_a_large_preview_is_read_a_page_at_a_time(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    hubspot.save_people(500, start=10)
    dialog = open_preview(panel, qtbot)
    model = dialog.model
    assert model.rowCount() == PreviewTableModel.PAGE_SIZE and model.canFetchMore()
    assert "503 to create in the CRM" in dialog.summary_label.text()
    for _ in range(10):
        dialog.table.scrollToBottom()
        QApplication.processEvents()
        if not model.canFetchMore():
            break
    assert model.rowCount() == 503 and not model.canFetchMore()
    assert {model.row(r).action for r in range(model.rowCount())} == {ChangeAction.CREATE}
    click(dialog.cancel_button)
    qtbot.waitUntil(lambda: panel.preview_dialog is None, timeout=2000)


def test_errors_by_category_retry_just_the_failed_and_export(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench, tmp_path: Path
) -> None:
    hubspot.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[2])])
    click(panel.sync_button)
    wait_idle(qtbot, panel)
    qtbot.waitUntil(lambda: panel.errors_model.rowCount() == 1, timeout=5000)
    first_run = panel.selected_run()
    assert first_run is not None and first_run.failed == 1
    errors = panel.errors_model
    assert errors.index(0, ErrorColumn.CATEGORY).data() == "Invalid record"
    assert errors.index(0, ErrorColumn.RECORDS).data() == 1
    assert "is invalid" in errors.index(0, ErrorColumn.SAMPLE).data()
    # A run that synced all but one record is a sync: its time shows, and the state says records failed.
    qtbot.waitUntil(lambda: "Some records failed" in state_text(panel), timeout=5000)
    row = panel.health_board.rows[NAME]
    assert row.last_sync_label.text() != "never" and row.last_sync_label.toolTip()
    assert panel.retry_button.isEnabled() and panel.export_button.isEnabled()
    assert panel.errors_table.isVisible()

    # Export: the file dialog, a chosen name, the CSV written.
    click(panel.export_button)
    file_dialog = panel.export_dialog
    assert isinstance(file_dialog, QFileDialog) and file_dialog.isVisible()
    target = tmp_path / "errors.csv"
    file_dialog.selectFile(str(target))
    file_dialog.accept()
    qtbot.waitUntil(lambda: panel.notice.text().startswith("Exported"), timeout=5000)
    assert panel.notice.text() == f"Exported 1 failed record of run {first_run.id} to {target}."
    with target.open(encoding="utf-8-sig", newline="") as handle:
        [_, row] = list(csv.reader(handle))
    assert row[4] == "validation"

    with qtbot.waitSignal(panel.runs_finished, timeout=15_000):
        click(panel.retry_button)
    wait_idle(qtbot, panel)
    assert panel.notice.text().startswith(
        f"Retried 1 failed record of run {first_run.id} as run {first_run.id + 1}: 1 created.")
    assert hubspot.sandbox.summary()["contacts"] == 3
    retry_run = panel.selected_run()
    assert retry_run is not None and retry_run.id == first_run.id + 1 and retry_run.total == 1
    assert panel.runs_model.index(0, RunColumn.DIRECTION).data() == "Push"
    qtbot.waitUntil(lambda: "In sync" in state_text(panel), timeout=5000)
    qtbot.waitUntil(lambda: panel.errors_model.rowCount() == 0, timeout=5000)
    assert not panel.errors_table.isVisible(), "no failures: no error table"
    assert not panel.retry_button.isEnabled() and not panel.export_button.isEnabled()


def value_axis(view: QChartView) -> QValueAxis:
    [axis] = view.chart().axes(Qt.Orientation.Vertical)
    assert isinstance(axis, QValueAxis)
    return axis


def test_metrics_tab_charts_the_stored_figures_per_range(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    click(panel.sync_button)
    wait_idle(qtbot, panel)
    hubspot.workspace.monitor.record_event_latency(NAME, 2.5)

    tab_bar = panel.tabs.tabBar()
    assert tab_bar.tabText(1) == "Metrics"
    with qtbot.waitSignal(panel.metrics_shown, timeout=5000):
        QTest.mouseClick(tab_bar, Qt.MouseButton.LeftButton, pos=tab_bar.tabRect(1).center())
    charts = panel.charts
    assert charts.series is not None and charts.series.range is MetricsRange.DAY
    assert charts.line_values(charts.contacts_chart)["Contacts"][-1] == 3.0
    assert charts.line_values(charts.success_chart)["Success"] == [100.0]
    assert charts.line_values(charts.errors_chart)["Errors"] == [0.0]
    assert charts.line_values(charts.latency_chart)["Latency"] == [2.5]
    [quota] = charts.line_values(charts.quota_chart)[NAME]
    assert 0 < quota < 100
    assert "1 sync run, 3 contacts synced" in charts.summary_label.text()
    # Axes end on round numbers; a count's ticks fall on whole numbers and read without decimals ("3", not "3.0").
    contacts = value_axis(charts.contacts_chart)
    assert contacts.labelFormat() == "%d" and contacts.max() >= 3
    step = (contacts.max() - contacts.min()) / (contacts.tickCount() - 1)
    assert step == int(step)
    latency = value_axis(charts.latency_chart)
    assert latency.labelFormat() == "%g" and 2.5 <= latency.max() <= 5
    for percent in (charts.success_chart, charts.quota_chart):
        assert (value_axis(percent).min(), value_axis(percent).max()) == (0, 100)

    charts.range_combo.setFocus()
    with qtbot.waitSignal(panel.metrics_shown, timeout=5000):
        QTest.keyClick(charts.range_combo, Qt.Key.Key_Down)
    assert charts.chosen_range is MetricsRange.WEEK
    assert charts.series is not None and len(charts.series.points) == 28
    assert len(charts.line_values(charts.contacts_chart)["Contacts"]) == 28


def test_progress_rate_measures_each_phase_and_tells_time_left_only_with_a_total() -> None:
    now = [100.0]
    rate = ProgressRate(lambda: now[0])
    rate.report("pushing contacts", 0, 1000)
    assert rate.text() == ""
    now[0] += 2
    rate.report("pushing contacts", 200, 1000)
    assert (rate.rate, rate.seconds_left) == (100.0, 8.0)
    assert rate.text() == "100 records/s · about 8.0 s left"
    now[0] += 1
    rate.report("pulling leads", 50, 50)  # a new phase starts over
    assert rate.text() == ""
    now[0] += 5
    rate.report("pulling leads", 100, 100)
    assert rate.text() == "10 records/s", "no total known: no time left"
    assert progress_figures("pulling leads", 100, 100) == "pulling leads: 100 so far"
    assert progress_figures("pushing contacts", 200, 603) == "pushing contacts, 200 of 603"


def test_ctrl_r_in_the_window_offers_the_preview_first(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop
) -> None:
    from crm_desktop.ui.main_window import MainWindow

    window = MainWindow(hubspot.workspace, tray_available=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    with qtbot.waitActive(window):  # shortcuts go to the active window
        window.activateWindow()
    QTest.keyClick(window.sidebar, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    panel = window.sync_monitor_panel
    qtbot.waitUntil(lambda: panel.preview_dialog is not None, timeout=2000)
    dialog = panel.preview_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.proceed_button.isEnabled(), timeout=15_000)
    assert panel.running_integrations == [] and hubspot.workspace.sync.runs() == []
    click(dialog.cancel_button)
    qtbot.waitUntil(lambda: panel.preview_dialog is None and not unfinished_tasks(), timeout=5000)


def planned(side: Side, action: ChangeAction, count: int, **more: Any) -> list[PlannedChange]:
    return [PlannedChange(RecordObject.CONTACT, f"p{number}@example.com", side, action, **more)
            for number in range(count)]


def test_a_plan_line_names_only_what_the_sync_would_do_and_where() -> None:
    """Seen in the demo: "442 to create" did not say whether into the CRM or into CRM Desktop, or how many each."""
    plan = SyncPlan(planned(Side.CRM, ChangeAction.CREATE, 1_204) + planned(Side.LOCAL, ChangeAction.UNCHANGED, 3))
    assert plan_sentence("HubSpot", plan) == "“HubSpot”: 1,204 to create in the CRM, 3 unchanged"
    both_ways = SyncPlan(planned(Side.LOCAL, ChangeAction.CREATE, 142) + planned(Side.CRM, ChangeAction.CREATE, 300))
    assert plan_sentence("Pipedrive", both_ways) == (
        "“Pipedrive”: 300 to create in the CRM, 142 to create in CRM Desktop")
    one_field = {"company": FieldChange("A", "B")}
    mixed = SyncPlan(
        planned(Side.LOCAL, ChangeAction.UPDATE, 2, fields=one_field)
        + planned(Side.LOCAL, ChangeAction.CONFLICT, 1, fields=one_field, decision=ConflictDecision.WAITING)
        + planned(Side.CRM, ChangeAction.CONFLICT, 4, fields=one_field, decision=ConflictDecision.LOCAL_KEPT)
        + planned(Side.CRM, ChangeAction.SKIP, 1, reason="no email")
    )
    assert plan_sentence("HubSpot", mixed) == (
        "“HubSpot”: 2 to update in CRM Desktop, 1 conflict for you, 4 decided by rule, 1 skipped")
    unchanged = SyncPlan(planned(Side.CRM, ChangeAction.UNCHANGED, 40))
    assert plan_sentence("HubSpot", unchanged) == "“HubSpot”: nothing to change (40 unchanged)"


def test_a_write_with_no_field_to_list_shows_its_reason() -> None:
    """A Pipedrive person whose social note alone changed was counted "1 to update" with no line in the preview."""
    note_only = PlannedChange(RecordObject.CONTACT, "ann@example.com", Side.CRM, ChangeAction.UPDATE,
                              reason="its social note changed")
    fields = PlannedChange(RecordObject.CONTACT, "bob@example.com", Side.CRM, ChangeAction.UPDATE,
                           {"company": FieldChange("A", "B")})
    rows = list(preview_rows("Pipedrive", [note_only, fields]))
    assert [(r.record, r.field, r.change) for r in rows] == [
        ("ann@example.com", "", "its social note changed"), ("bob@example.com", "Company", "A → B")]


def test_three_health_lines_fit_a_window_1100_px_wide(qtbot: QtBot) -> None:
    """The panel beside the sidebar of a window 1,100 px wide: every line in full, no sideways scrolling."""
    board = HealthBoard()
    qtbot.addWidget(board)
    synced = datetime.now(UTC) - timedelta(minutes=3)
    board.show_health([
        IntegrationHealth("Salesforce (demo)", HealthState.IN_SYNC, "", synced, 0, 15_000, 14_990),
        IntegrationHealth("Pipedrive (demo)", HealthState.RATE_LIMITED, "", synced, 1_204, None, 987_590),
        IntegrationHealth("HubSpot (demo)", HealthState.NEEDS_RECONNECT, "", synced, 12, 250_000, 250_000),
    ])
    assert board.sizeHint().width() <= 1100 - 220 - 60, "the sidebar and the panel's margins take the rest"

    # While all three sync (in the demo the line grew a bar and "pulling co…" behind a sideways scroll bar), each
    # progress goes on a line of its own under its integration's, and the board is no wider.
    board.show()
    qtbot.waitExposed(board)
    for name in board.rows:
        assert board.show_progress(name, ("pulling contacts", 1_204, 10_000)), "the progress line appears"
        assert not board.show_progress(name, ("pulling contacts", 1_300, 10_000)), "and stays"
    assert board.sizeHint().width() <= 1100 - 220 - 60
    board.adjustSize()
    for row in board.rows.values():
        assert row.progress_label.isVisible() and "1,300 of 10,000" in row.progress_label.text()
        assert row.progress_bar.geometry().top() >= row.name_label.geometry().bottom()
    assert board.show_progress("Salesforce (demo)", None), "the line goes when the sync ends"


def test_the_previews_word_columns_show_their_words_whole(styled_app: QApplication, qtbot: QtBot) -> None:
    """In the demo the preview's Where column read "In CRM De…": the columns of a few fixed words (Object, Where,
    Change) are as wide as their widest word in the table's font, with the app's stylesheet."""
    dialog = SyncPreviewDialog(["HubSpot (demo)"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    table = dialog.table
    metrics = table.fontMetrics()
    for column, words in ((PreviewColumn.OBJECT, ("Contact", "Lead")),
                          (PreviewColumn.WHERE, ("In the CRM", "In CRM Desktop")),
                          (PreviewColumn.ACTION, ("Create", "Update", "Conflict"))):
        widest = max(metrics.horizontalAdvance(word) for word in words)
        assert table.columnWidth(column) >= widest + 8, column.name


def test_a_preview_of_several_integrations_says_each_is_planned_on_its_own(qtbot: QtBot) -> None:
    """A review counted 436-442 creates in the preview of three demo CRMs and 504-517 in the runs: people pulled
    from one CRM are pushed to the others, which no plan made against today's store can show."""
    several = SyncPreviewDialog(["HubSpot (demo)", "Pipedrive (demo)"])
    one = SyncPreviewDialog(["HubSpot (demo)"])
    for dialog in (several, one):
        qtbot.addWidget(dialog)
    assert several.apart_label is not None and "planned on its own" in several.apart_label.text()
    assert one.apart_label is None
