"""Conflicts in the main window: the sidebar count after syncs and decisions, and resolving through the panel."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import select as select_rows

from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import AuditLogRow, ConflictRule
from crm_desktop.ui.conflicts_panel import BLANK, ConflictColumn, ConflictsPanel
from crm_desktop.ui.main_window import CONFLICTS_ROW, MainWindow
from tests.ui.conftest import HubSpotBench, click, drive, unfinished_tasks

EMAILS = [f"person{n}@example.com" for n in (1, 2, 3)]



@pytest.fixture
def window(hubspot_window: MainWindow) -> MainWindow:
    return hubspot_window


def sidebar_text(window: MainWindow) -> str:
    return window.sidebar.item(CONFLICTS_ROW).text()


def sync_from_the_monitor(window: MainWindow, qtbot: QtBot) -> None:
    monitor = window.sync_monitor_panel
    with qtbot.waitSignal(monitor.runs_finished, timeout=10_000):
        click(monitor.sync_button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)


def make_conflicts(window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench) -> None:
    """Three companies changed on both sides, under a rule that asks the marketer."""
    integration = hubspot.workspace.integrations.get(hubspot.name)
    hubspot.workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
    sync_from_the_monitor(window, qtbot)
    for number, email in enumerate(EMAILS, start=1):
        hubspot.edit_locally(email, company=f"Local Co {number}")
        hubspot.edit_in_crm(email, company=f"CRM Co {number}")
    sync_from_the_monitor(window, qtbot)


async def crm_company(hubspot: HubSpotBench, email: str) -> str | None:
    record = await hubspot.workspace.crm.get_record(hubspot.name, RecordObject.CONTACT, email)
    assert record is not None
    value = record.fields.get("company")
    return None if value is None else str(value)


def local_company(hubspot: HubSpotBench, email: str) -> str | None:
    contact = hubspot.workspace.contacts.find(email)
    assert contact is not None
    return contact.company


def loaded(panel: ConflictsPanel, qtbot: QtBot) -> ConflictsPanel:
    """``panel`` once its list is read (on a store thread: the panel says it is loading meanwhile)."""
    qtbot.waitUntil(lambda: not panel.loading, timeout=5000)
    return panel


def select(panel: ConflictsPanel, email: str) -> None:
    row = next(r for r in range(panel.model.rowCount()) if email in panel.model.index(r, ConflictColumn.RECORD).data())
    panel.table.selectRow(row)


def resolve_with(window: MainWindow, qtbot: QtBot, button: QWidget) -> None:
    with qtbot.waitSignal(window.conflicts_panel.conflicts_changed, timeout=10_000):
        click(button)
    qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)


def test_conflicts_are_counted_in_the_sidebar_and_resolved_from_the_panel(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    assert sidebar_text(window) == "Conflicts"
    window.show_panel(CONFLICTS_ROW)
    note = loaded(window.conflicts_panel, qtbot).empty_note.label
    assert note.isVisible() and note.text().startswith("Nothing waits for you."), "an empty list says why"
    assert window.conflicts_panel.table.viewport().rect().contains(note.geometry())
    make_conflicts(window, qtbot, hubspot)
    assert sidebar_text(window) == "Conflicts (3)"

    panel = window.conflicts_panel
    window.show_panel(CONFLICTS_ROW)
    loaded(panel, qtbot)
    assert panel.model.rowCount() == 3
    assert not note.isVisible()
    titles = [panel.model.headerData(c, Qt.Orientation.Horizontal) for c in ConflictColumn]
    assert titles == ["Integration", "Record", "Field", "Local value", "CRM value", "Value at last sync",
                      "Changed here", "Changed in CRM"]
    first = [panel.model.index(0, c).data() for c in ConflictColumn]
    assert first[:6] == ["hubspot-marketing", "person1@example.com", "Company", "Local Co 1", "CRM Co 1",
                         "Analytical Engines"]
    assert "—" not in (first[6], first[7]), "both sides' change times are known"
    details = panel.details.values
    assert details["Record"].text() == "person1@example.com in “hubspot-marketing”"
    assert details["Here"].text().startswith("“Local Co 1”, changed ")
    assert details["In the CRM"].text().endswith("(the newer change)"), "the CRM was edited last"
    assert details["At last sync"].text() == "“Analytical Engines”"

    # Keep the CRM's value: the local record takes it, the CRM is left alone.
    select(panel, EMAILS[0])
    resolve_with(window, qtbot, panel.keep_crm_button)
    assert local_company(hubspot, EMAILS[0]) == "CRM Co 1"
    assert drive(qtbot, crm_company(hubspot, EMAILS[0])) == "CRM Co 1"
    assert sidebar_text(window) == "Conflicts (2)"
    assert panel.notice.tone == "ok" and "Kept “CRM Co 1” for Company of person1@example.com" in panel.notice.text()

    # Keep the local value: the CRM takes it.
    select(panel, EMAILS[1])
    resolve_with(window, qtbot, panel.keep_local_button)
    assert drive(qtbot, crm_company(hubspot, EMAILS[1])) == "Local Co 2"
    assert local_company(hubspot, EMAILS[1]) == "Local Co 2"
    assert sidebar_text(window) == "Conflicts (1)"

    # Type the right value: both sides take it.
    select(panel, EMAILS[2])
    click(panel.use_value_button)
    dialog = panel.value_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.textValue() == "Local Co 3", "the prompt starts from the local value"
    edit = dialog.findChild(QLineEdit)
    assert edit is not None
    edit.selectAll()
    QTest.keyClicks(edit, "Merged Engines plc")
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
    resolve_with(window, qtbot, ok)
    assert local_company(hubspot, EMAILS[2]) == "Merged Engines plc"
    assert drive(qtbot, crm_company(hubspot, EMAILS[2])) == "Merged Engines plc"

    assert sidebar_text(window) == "Conflicts"
    assert panel.model.rowCount() == 0
    assert not panel.keep_crm_button.isEnabled()
    assert hubspot.workspace.sync.conflict_count() == 0
    assert not unfinished_tasks()


def test_a_refused_write_leaves_the_conflict_open_and_says_why(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    make_conflicts(window, qtbot, hubspot)
    panel = loaded(window.conflicts_panel, qtbot)
    select(panel, EMAILS[0])
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, probability=1.0, remaining=1))
    resolve_with(window, qtbot, panel.keep_local_button)
    assert panel.notice.tone == "error"
    assert panel.notice.text().startswith("Resolving Company of person1@example.com failed: ")
    assert sidebar_text(window) == "Conflicts (3)"
    assert local_company(hubspot, EMAILS[0]) == "Local Co 1"
    assert panel.keep_local_button.isEnabled(), "the buttons come back after the failure"


def test_a_typed_value_the_field_cannot_hold_is_refused_in_plain_words(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """Seen exploring: a company name pasted too long read "contact person1@example.com is invalid: company: String
    should have at most 255 characters", the field by its wire name and the reason in pydantic's words."""
    make_conflicts(window, qtbot, hubspot)
    panel = loaded(window.conflicts_panel, qtbot)
    select(panel, EMAILS[0])
    click(panel.use_value_button)
    dialog = panel.value_dialog
    assert dialog is not None
    edit = dialog.findChild(QLineEdit)
    assert edit is not None
    edit.setText("Engines " * 40)
    buttons = dialog.findChild(QDialogButtonBox)
    assert buttons is not None
    resolve_with(window, qtbot, buttons.button(QDialogButtonBox.StandardButton.Ok))
    assert panel.notice.tone == "error"
    assert panel.notice.text() == ("Not kept for person1@example.com: Company must be at most 255 characters. "
                                   "Nothing was written; pick or type another value.")
    assert sidebar_text(window) == "Conflicts (3)"
    assert local_company(hubspot, EMAILS[0]) == "Local Co 1"
    assert drive(qtbot, crm_company(hubspot, EMAILS[0])) == "CRM Co 1"


def test_a_blank_value_is_shown_as_blank(window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench) -> None:
    integration = hubspot.workspace.integrations.get(hubspot.name)
    hubspot.workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
    sync_from_the_monitor(window, qtbot)
    hubspot.edit_locally(EMAILS[0], company=None)
    hubspot.edit_in_crm(EMAILS[0], company="CRM Co")
    sync_from_the_monitor(window, qtbot)
    panel = loaded(window.conflicts_panel, qtbot)
    assert panel.model.rowCount() == 1
    assert panel.model.index(0, ConflictColumn.LOCAL_VALUE).data() == BLANK
    assert panel.model.index(0, ConflictColumn.LOCAL_VALUE).data(Qt.ItemDataRole.ForegroundRole) is not None


def test_at_a_laptops_width_the_values_give_way_to_the_integrations_name(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    integration = hubspot.workspace.integrations.get(hubspot.name)
    hubspot.workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
    sync_from_the_monitor(window, qtbot)
    hubspot.edit_locally(EMAILS[0], company="A rather long local company name Ltd")
    hubspot.edit_in_crm(EMAILS[0], company="A rather long CRM company name Incorporated")
    sync_from_the_monitor(window, qtbot)
    window.resize(760, 600)
    window.show_panel(CONFLICTS_ROW)
    panel = window.conflicts_panel
    loaded(panel, qtbot)
    table = panel.table
    qtbot.waitUntil(lambda: table.viewport().width() < 600, timeout=5000)
    panel._fit_columns()
    name_width = max(table.sizeHintForColumn(ConflictColumn.INTEGRATION),
                     table.horizontalHeader().sectionSizeHint(ConflictColumn.INTEGRATION))
    assert table.columnWidth(ConflictColumn.INTEGRATION) >= 60
    for column in (ConflictColumn.LOCAL_VALUE, ConflictColumn.CRM_VALUE, ConflictColumn.BASE_VALUE):
        assert table.columnWidth(column) >= 110, "a value gives way, down to a floor"
    window.resize(1111, 700)
    qtbot.waitUntil(lambda: table.viewport().width() > 800, timeout=5000)
    panel._fit_columns()
    assert table.columnWidth(ConflictColumn.INTEGRATION) >= name_width, "“hubspot-marketing” whole at 1,111 px"


def test_the_local_value_is_the_records_now_and_the_one_when_raised_is_said(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    make_conflicts(window, qtbot, hubspot)
    # The person is edited after the conflict was raised: the list shows what the record holds now (which "Keep local
    # value" keeps), and the details say what was recorded too; "Use this value…" starts from the value now.
    hubspot.edit_locally(EMAILS[0], company="Edited Co")
    panel = window.conflicts_panel
    window.show_panel(CONFLICTS_ROW)
    loaded(panel, qtbot)
    panel.model.refresh()
    select(panel, EMAILS[0])
    row = panel.selected_row()
    local = panel.model.index(row, ConflictColumn.LOCAL_VALUE)
    assert local.data() == "Edited Co"
    assert local.data(Qt.ItemDataRole.ToolTipRole) == "Edited Co now; Local Co 1 when the conflict was raised"
    here = panel.details.values["Here"].text()
    assert here.startswith("“Edited Co” now (what “Keep local value” keeps); “Local Co 1” when the conflict was "
                           "raised, changed ")
    other = next(r for r in range(panel.model.rowCount()) if panel.model.conflict_at(r).record_key == EMAILS[1])
    assert panel.model.index(other, ConflictColumn.LOCAL_VALUE).data() == "Local Co 2", "the others are as recorded"
    click(panel.use_value_button)
    dialog = panel.value_dialog
    assert dialog is not None and dialog.textValue() == "Edited Co"
    dialog.reject()


def test_keep_local_value_keeps_the_value_shown_now_and_gives_it_to_the_crm(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    make_conflicts(window, qtbot, hubspot)
    # Edited after the conflicts were raised: one to another company, one to a blank (shown as one).
    hubspot.edit_locally(EMAILS[0], company="Edited Co")
    hubspot.edit_locally(EMAILS[1], company=None)
    panel = window.conflicts_panel
    window.show_panel(CONFLICTS_ROW)
    loaded(panel, qtbot)
    panel.model.refresh()

    select(panel, EMAILS[0])
    assert panel.model.index(panel.selected_row(), ConflictColumn.LOCAL_VALUE).data() == "Edited Co"
    resolve_with(window, qtbot, panel.keep_local_button)
    assert panel.notice.tone == "ok", panel.notice.text()
    assert panel.notice.text() == "Kept “Edited Co” for Company of person1@example.com, here and in the CRM."
    assert local_company(hubspot, EMAILS[0]) == "Edited Co"
    assert drive(qtbot, crm_company(hubspot, EMAILS[0])) == "Edited Co"

    select(panel, EMAILS[1])
    assert panel.model.index(panel.selected_row(), ConflictColumn.LOCAL_VALUE).data() == BLANK
    here = panel.details.values["Here"].text()
    assert here.startswith(f"{BLANK} now (what “Keep local value” keeps, clearing the field in the CRM); “Local Co 2” "
                           "when the conflict was raised")
    resolve_with(window, qtbot, panel.keep_local_button)
    assert panel.notice.tone == "ok", panel.notice.text()
    assert panel.notice.text() == ("Kept a blank for Company of person2@example.com, here and in the CRM (its field "
                                   "there cleared).")
    assert local_company(hubspot, EMAILS[1]) is None
    assert not drive(qtbot, crm_company(hubspot, EMAILS[1]))
    assert sidebar_text(window) == "Conflicts (1)"
    assert not unfinished_tasks()


def test_a_conflict_whose_local_record_was_deleted_says_so_and_keeps_no_local_value(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    make_conflicts(window, qtbot, hubspot)
    # The person is deleted here after the conflict was raised: the list and the details say so rather than show the
    # value recorded then as the local one, and "Keep local value" is off, saying why.
    hubspot.workspace.contacts.remove(EMAILS[0])
    panel = window.conflicts_panel
    window.show_panel(CONFLICTS_ROW)
    loaded(panel, qtbot)
    panel.model.refresh()
    select(panel, EMAILS[0])
    local = panel.model.index(panel.selected_row(), ConflictColumn.LOCAL_VALUE)
    assert local.data() == "(deleted here since)"
    assert local.data(Qt.ItemDataRole.ToolTipRole) == ("Deleted here since the conflict was raised; Local Co 1 when "
                                                       "it was raised")
    here = panel.details.values["Here"].text()
    assert here.startswith("Deleted here since the conflict was raised (it held “Local Co 1” then, changed ")
    assert here.endswith("there is no local value to keep; “Keep CRM value” closes the conflict")
    assert not panel.keep_local_button.isEnabled()
    assert "deleted here after the conflict was raised" in panel.keep_local_button.toolTip()
    assert panel.keep_crm_button.isEnabled() and not panel.use_value_button.isEnabled()
    assert "“Keep CRM value” closes the conflict" in panel.use_value_button.toolTip()
    assert panel.keep_local_value() is None and panel.notice.tone == "error"

    # Keeping the CRM's value closes it, writing nothing: the CRM keeps its value.
    resolve_with(window, qtbot, panel.keep_crm_button)
    assert panel.notice.tone != "error", panel.notice.text()
    assert drive(qtbot, crm_company(hubspot, EMAILS[0])) == "CRM Co 1"
    assert all(panel.model.conflict_at(row).record_key != EMAILS[0] for row in range(panel.model.rowCount()))

    # The others are as they were.
    select(panel, EMAILS[1])
    assert panel.model.index(panel.selected_row(), ConflictColumn.LOCAL_VALUE).data() == "Local Co 2"
    assert panel.keep_local_button.isEnabled()
    assert panel.details.values["Here"].text().startswith("“Local Co 2”, changed ")
    assert not unfinished_tasks()


def phone_history(hubspot: HubSpotBench, email: str) -> list[tuple[str | None, str | None]]:
    """The History (audit) lines of a contact's phone, oldest first, as (old, new)."""
    local_id = hubspot.workspace.sync.store.local_by_emails(RecordObject.CONTACT, [email])[email].id
    with hubspot.workspace.database.session() as session:
        rows = session.scalars(select_rows(AuditLogRow).where(
            AuditLogRow.field == "phone", AuditLogRow.entity_id == str(local_id)).order_by(AuditLogRow.id))
        return [(row.old_value, row.new_value) for row in rows]


def open_a_phone_conflict(window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench) -> ConflictsPanel:
    """The first person's phone edited here (+14155550177) and, as a salesperson types it, in HubSpot
    (+1 212 555 0100), under the manual rule: its conflict selected in the Conflicts panel."""
    integration = hubspot.workspace.integrations.get(hubspot.name)
    hubspot.workspace.sync.set_rule(integration, RecordObject.CONTACT, "phone", ConflictRule.MANUAL)
    sync_from_the_monitor(window, qtbot)
    hubspot.edit_locally(EMAILS[0], phone="+14155550177")
    hubspot.edit_in_crm(EMAILS[0], phone="+1 212 555 0100")
    sync_from_the_monitor(window, qtbot)
    panel = window.conflicts_panel
    window.show_panel(CONFLICTS_ROW)
    loaded(panel, qtbot)
    panel.model.refresh()
    select(panel, EMAILS[0])
    return panel


def test_keeping_a_phone_the_crm_writes_its_own_way_sends_nothing_later(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """Seen exploring: "Use CRM value" on a phone a salesperson typed as +1 212 555 0100 kept +12125550100 here, and
    the next sync of the person (another field edited) sent the same number again: a write, a History line and the
    salesperson's formatting gone from the CRM, for a number that never changed."""
    panel = open_a_phone_conflict(window, qtbot, hubspot)
    resolve_with(window, qtbot, panel.keep_crm_button)
    assert panel.notice.text() == "Kept “+12125550100” for Phone of person1@example.com, here and in the CRM."
    stored = hubspot.workspace.contacts.find(EMAILS[0])
    assert stored is not None and stored.phone == "+12125550100"
    lines = phone_history(hubspot, EMAILS[0])
    assert lines[-1] == ("+14155550177", "+12125550100"), "the decision is in the History"

    hubspot.edit_locally(EMAILS[0], first_name="Adaline")
    sync_from_the_monitor(window, qtbot)
    [run] = hubspot.workspace.sync.runs(hubspot.name, limit=1)
    assert run.updated == 1
    assert phone_history(hubspot, EMAILS[0]) == lines, "a History line for a phone that did not change"
    record = drive(qtbot, hubspot.workspace.crm.get_record(hubspot.name, RecordObject.CONTACT, EMAILS[0]))
    assert record is not None
    assert (record.fields.get("firstname"), record.fields.get("phone")) == ("Adaline", "+1 212 555 0100")


def test_the_crm_side_of_a_phone_conflict_reads_as_the_crm_holds_it(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """The CRM held "+1 212 555 0100" and the panel said it held "+12125550100", the local store's form: the
    marketer looking the record up in the CRM saw another text than the one the panel quoted."""
    panel = open_a_phone_conflict(window, qtbot, hubspot)
    row = panel.table.currentIndex().row()
    assert panel.model.index(row, ConflictColumn.CRM_VALUE).data() == "+1 212 555 0100"
    assert panel.model.index(row, ConflictColumn.LOCAL_VALUE).data() == "+14155550177"
    assert panel.details.values["In the CRM"].text().startswith("“+1 212 555 0100”, changed ")

    # Kept, it is the same number: stored here in E.164, and the CRM keeps the salesperson's spacing.
    resolve_with(window, qtbot, panel.keep_crm_button)
    stored = hubspot.workspace.contacts.find(EMAILS[0])
    assert stored is not None and stored.phone == "+12125550100"
    record = drive(qtbot, hubspot.workspace.crm.get_record(hubspot.name, RecordObject.CONTACT, EMAILS[0]))
    assert record is not None and record.fields.get("phone") == "+1 212 555 0100"
