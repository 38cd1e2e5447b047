"""The Sync Monitor driven with clicks against an in-process HubSpot: sync now, sync all, progress, details, undo."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import SyncRunStatus, SyncTrigger
from crm_desktop.sync.engine import CANCELLED_MESSAGE
from crm_desktop.ui.sync_monitor_panel import RECORD_ROWS_ALWAYS_SHOWN, RUNS_ROWS_ALWAYS_SHOWN, SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import LogColumn, RunColumn
from crm_desktop.ui.tasks import BackgroundTasks
from tests.ui.conftest import HubSpotBench, shown, unfinished_tasks


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@pytest.fixture
def panel(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[SyncMonitorPanel]:
    yield shown(qtbot, SyncMonitorPanel(hubspot.workspace.monitor, BackgroundTasks()), 1100, 700)


def wait_idle(qtbot: QtBot, panel: SyncMonitorPanel) -> None:
    qtbot.waitUntil(lambda: not panel.running_integrations and panel.progress_label.text() == panel.IDLE_TEXT,
                    timeout=10_000)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=10_000)


def column(panel: SyncMonitorPanel, run_column: RunColumn) -> list[object]:
    model = panel.runs_model
    return [model.index(row, run_column).data() for row in range(model.rowCount())]


def test_sync_now_fills_the_runs_table_and_shows_progress(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    assert panel.runs_model.rowCount() == 0
    assert panel.runs_empty_note.label.isVisible() and panel.runs_empty_note.label.text().startswith(
        "No sync has run yet.")
    assert panel.integration_combo.currentText() == "hubspot-marketing"
    shown: list[tuple[str, int, int]] = []
    panel.progress_shown.connect(lambda text, done, total: shown.append((text, done, total)))
    with qtbot.waitSignal(panel.runs_finished, timeout=10_000):
        click(panel.sync_button)
    wait_idle(qtbot, panel)

    assert ("“hubspot-marketing”: starting…", 0, 0) in shown
    assert ("“hubspot-marketing”: pushing contacts, 3 of 3", 3, 3) in shown
    assert shown[-1] == (panel.IDLE_TEXT, 0, 0)
    assert column(panel, RunColumn.STATUS) == ["Succeeded"]
    assert not panel.runs_empty_note.label.isVisible()
    assert column(panel, RunColumn.CREATED) == ["3"]
    assert column(panel, RunColumn.TRIGGER) == ["Manual"]
    assert panel.notice.tone == "ok"
    assert panel.notice.text().startswith("Synced “hubspot-marketing”: 3 created (")
    assert hubspot.sandbox.summary()["contacts"] == 3
    # The new run is selected, with its per-record log below.
    assert panel.selected_row() == 0
    assert panel.log_model.rowCount() == 3
    assert {panel.log_model.index(r, LogColumn.OUTCOME).data() for r in range(3)} == {"Created"}
    assert "3 created" in panel.run_summary.text()
    assert panel.sync_button.isEnabled()


def test_a_second_click_follows_the_running_sync_and_never_doubles_it(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    first = panel.sync_now()
    click(panel.sync_button)  # while the first still runs
    assert panel.sync_now() is first
    assert "already syncing; following that run" in panel.notice.text()
    wait_idle(qtbot, panel)
    assert first is not None and first.result() is not None
    assert len(hubspot.workspace.sync.runs()) == 1
    assert panel.runs_model.rowCount() == 1


def test_sync_all_syncs_every_integration(panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench) -> None:
    hubspot.add_integration("hubspot-sales")
    panel.reload_integrations()
    assert panel.integration_combo.count() == 2
    click(panel.preview_first_check)  # off: "Sync all now" syncs at once
    assert not hubspot.workspace.monitor.preview.asks_first()
    click(panel.sync_all_button)
    assert sorted(panel.running_integrations) == ["hubspot-marketing", "hubspot-sales"]
    wait_idle(qtbot, panel)
    assert sorted(map(str, column(panel, RunColumn.INTEGRATION))) == ["hubspot-marketing", "hubspot-sales"]
    assert set(column(panel, RunColumn.STATUS)) == {"Succeeded"}
    lines = panel.notice.text().splitlines()
    assert len(lines) == 2 and all(line.startswith("Synced “hubspot-") for line in lines)
    assert hubspot.sandbox.summary()["contacts"] == 3, "the second integration found the contacts, made none"


def test_a_refused_token_shows_a_sentence_not_a_crash(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    hubspot.add_integration("hubspot-expired", token="pat-na1-00000000-0000-0000-0000-000000000000")
    panel.reload_integrations()
    panel.integration_combo.setCurrentText("hubspot-expired")
    click(panel.sync_button)
    wait_idle(qtbot, panel)
    assert panel.notice.tone == "error"
    text = panel.notice.text()
    assert text.startswith("Sync of “hubspot-expired” failed: ") and text.endswith(".")
    assert "pat-na1" not in text, "no token in what the user sees"
    assert panel.sync_button.isEnabled()


def test_undo_asks_first_then_puts_the_values_back(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel.sync_now()
    wait_idle(qtbot, panel)
    hubspot.edit_in_crm("person1@example.com", company="Difference Engines Ltd")
    panel.sync_now()
    wait_idle(qtbot, panel)
    contact = hubspot.workspace.contacts.find("person1@example.com")
    assert contact is not None and contact.company == "Difference Engines Ltd"
    pull_run = panel.selected_run()
    assert pull_run is not None and pull_run.updated == 1

    # Cancel first: nothing happens.
    click(panel.undo_button)
    box = panel.confirm_box
    assert box is not None and box.isVisible()
    click(box.button(QMessageBox.StandardButton.Cancel))
    qtbot.waitUntil(lambda: panel.confirm_box is None, timeout=1000)
    assert len(hubspot.workspace.sync.runs()) == 2

    click(panel.undo_button)
    box = panel.confirm_box
    assert box is not None
    assert f"Undo run {pull_run.id}" in box.text()
    with qtbot.waitSignal(panel.runs_finished, timeout=10_000):
        click(box.button(QMessageBox.StandardButton.Yes))
    wait_idle(qtbot, panel)

    contact = hubspot.workspace.contacts.find("person1@example.com")
    assert contact is not None and contact.company == "Analytical Engines"
    assert panel.notice.text().startswith(f"Undid run {pull_run.id}: 1 value put back here")
    assert column(panel, RunColumn.DIRECTION)[0] == "Undo"
    assert panel.selected_row() == 0, "the undo's own run is selected"
    assert not panel.undo_button.isEnabled(), "an undo is not undone from here"


def test_undo_asks_before_overwriting_a_value_changed_after_the_run(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    panel.sync_now()
    wait_idle(qtbot, panel)
    hubspot.edit_in_crm("person1@example.com", company="Difference Engines Ltd")
    panel.sync_now()
    wait_idle(qtbot, panel)
    pull_run = panel.selected_run()
    assert pull_run is not None
    hubspot.edit_locally("person1@example.com", company="Babbage & Co")  # changed after the run
    panel.sync_now()
    wait_idle(qtbot, panel)

    panel.undo(pull_run.id)
    qtbot.waitUntil(lambda: panel.confirm_box is not None, timeout=10_000)
    box = panel.confirm_box
    assert box is not None and "1 value changed after run" in box.text()
    assert "person1@example.com company (locally)" in box.informativeText()
    assert panel.notice.text() == f"Run {pull_run.id} was not undone: 1 value changed after it."
    click(box.button(QMessageBox.StandardButton.Cancel))
    wait_idle(qtbot, panel)
    contact = hubspot.workspace.contacts.find("person1@example.com")
    assert contact is not None and contact.company == "Babbage & Co", "a refused undo changed nothing"

    panel.undo(pull_run.id)
    qtbot.waitUntil(lambda: panel.confirm_box is not None, timeout=10_000)
    box = panel.confirm_box
    assert box is not None
    with qtbot.waitSignal(panel.runs_finished, timeout=10_000):
        click(box.button(QMessageBox.StandardButton.Yes))
    wait_idle(qtbot, panel)
    contact = hubspot.workspace.contacts.find("person1@example.com")
    assert contact is not None and contact.company == "Analytical Engines"


def test_closing_mid_sync_leaves_no_task_running(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    tasks = panel._tasks
    qtbot.waitUntil(lambda: not tasks.pending, timeout=5000)  # the first health read
    task = panel.sync_now()
    assert task is not None and task in tasks.pending
    assert [t.get_name() for t in tasks.pending if t is not task] in ([], ["read health"])
    assert tasks.cancel_all() == len(tasks.pending) >= 1
    qtbot.waitUntil(task.done, timeout=5000)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert task.cancelled()
    assert panel.running_integrations == []
    # The panel hears of the cancelled task in its done callback, which the loop runs soon after.
    qtbot.waitUntil(lambda: panel.progress_label.text() == panel.IDLE_TEXT, timeout=2000)


def test_a_short_window_scrolls_the_page_rather_than_squeezing_the_runs_list(
    panel: SyncMonitorPanel, qtbot: QtBot,
) -> None:
    click(panel.sync_button)
    wait_idle(qtbot, panel)
    panel.resize(1100, 480)
    qtbot.wait(50)
    row = panel.runs_table.verticalHeader().defaultSectionSize()
    assert panel.runs_table.viewport().height() >= RUNS_ROWS_ALWAYS_SHOWN * row
    assert panel.log_table.viewport().height() >= RECORD_ROWS_ALWAYS_SHOWN * row


def test_export_errors_names_the_crm_record_of_a_refused_update(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench, tmp_path: Path
) -> None:
    panel.sync_now()
    wait_idle(qtbot, panel)
    crm_id = hubspot.crm_id("person1@example.com")
    hubspot.edit_locally("person1@example.com", company="Local Co")
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    panel.sync_now()
    wait_idle(qtbot, panel)
    qtbot.waitUntil(panel.export_button.isEnabled, timeout=5000)
    exported = tmp_path / "errors.csv"
    panel.export_errors(panel.selected_run().id, exported)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: panel.notice.text().startswith("Exported 1 failed record"), timeout=5000)
    rows = list(csv.DictReader(exported.read_text(encoding="utf-8-sig").splitlines()))
    assert [(row["record"], row["crm_id"]) for row in rows] == [("person1@example.com", crm_id)], (
        "a refused update of a linked record names the CRM record it was refused for")


def test_before_any_integration_the_empty_runs_list_points_to_integrations_not_to_sync_now(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop
) -> None:
    """A first run: Sync now has nothing to sync, so the empty list does not tell the marketer to press it; once an
    integration is added, it does."""
    made = shown(qtbot, SyncMonitorPanel(workspace.monitor, BackgroundTasks()), 1000, 700)
    note = made.runs_empty_note.label
    assert note.isVisible() and not made.sync_button.isEnabled()
    assert note.text() == "No sync has run yet. Add an integration in Integrations first, then sync it from here."
    workspace.integrations.add(Integration(provider=Provider.HUBSPOT, name="hubspot"), None)
    made.reload_integrations()
    assert made.sync_button.isEnabled()
    assert note.text().startswith("No sync has run yet. Press Sync now")


def test_undoing_a_first_sync_counts_the_records_it_keeps_rather_than_listing_each(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """Seen in the demo: undoing the first sync of 500 people listed every one of them ("a@x: created in the CRM by
    the run; kept (sync never deletes); b@y: ...") in the notice, a wall of text that pushed the selected run's
    details under the runs list."""
    hubspot.save_people(40, start=4)
    panel.sync_now()
    wait_idle(qtbot, panel)
    first = panel.selected_run()
    assert first is not None and first.created == 43

    click(panel.undo_button)
    box = panel.confirm_box
    assert box is not None
    with qtbot.waitSignal(panel.runs_finished, timeout=10_000):
        click(box.button(QMessageBox.StandardButton.Yes))
    wait_idle(qtbot, panel)

    lines = panel.notice.text().splitlines()
    assert lines[0] == f"Undid run {first.id}: 0 values put back here, 0 in the CRM."
    assert len(lines) == 2, lines
    assert lines[1].startswith("Kept 43 records — person")
    assert lines[1].endswith(" and 40 more: created in the CRM by the run; kept (sync never deletes).")
    assert sum(f"person{n}@example.com" in lines[1] for n in range(1, 44)) == 3


def test_a_cancelled_run_with_nothing_counted_does_not_say_nothing_to_change(
    panel: SyncMonitorPanel, hubspot: HubSpotBench
) -> None:
    """Seen after a Quit mid-push: the run had sent records, none counted yet, and its details said "Nothing to
    change"; a run that succeeded with nothing to do still says so."""
    store = hubspot.workspace.sync.store
    integration_id = hubspot.workspace.integrations.get(hubspot.name).id or 0
    cancelled = store.start_run(integration_id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.finish_run(cancelled, SyncRunStatus.CANCELLED, message=CANCELLED_MESSAGE, api_calls=9)
    idle = store.start_run(integration_id, SyncTrigger.MANUAL, SyncDirection.PUSH)
    store.finish_run(idle, SyncRunStatus.SUCCEEDED, api_calls=1)

    text = panel.describe_run(store.get_run(cancelled), Counter())
    assert "Nothing to change" not in text
    assert "No record counted before it stopped; 9 API calls." in text
    assert panel.describe_run(store.get_run(idle), Counter()).splitlines()[2] == "Nothing to change; 1 API call."


def test_an_edit_by_hand_reads_as_one_in_the_runs_table_and_its_details(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench, tmp_path: Path
) -> None:
    """Seen in a hands-on run: People's Edit… was listed as "local import", direction "import", and its details
    said "Edit by hand import sync", as if a file had been imported."""
    people = tmp_path / "people.csv"
    people.write_text("email,firstName\nada@example.com,Ada\n", encoding="utf-8")
    sync = hubspot.workspace.sync
    sync.import_file(people)
    ada = sync.store.local_by_emails(RecordObject.CONTACT, ["ada@example.com"])["ada@example.com"]
    sync.imports.edit(RecordObject.CONTACT, ada.id, {"firstName": "Adah"})
    panel.refresh_runs()
    qtbot.waitUntil(lambda: panel.runs_model.rowCount() == 2, timeout=10_000)

    assert column(panel, RunColumn.INTEGRATION) == ["edit by hand", "local import"]
    assert column(panel, RunColumn.TRIGGER) == ["Edit by hand", "File import"]
    assert column(panel, RunColumn.DIRECTION) == ["Edit", "Import"]
    edit, file_import = (panel.runs_model.run_at(row) for row in (0, 1))
    lines = panel.describe_run(edit, Counter()).splitlines()
    assert lines[0] == f"Run {edit.id} of “edit by hand” — succeeded"
    assert lines[1].startswith("Edit by hand, started ")
    assert panel.describe_run(file_import, Counter()).splitlines()[1].startswith("File import, started ")
