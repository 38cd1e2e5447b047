"""The People panel's one-person actions, by clicks and keys, against sandbox CRMs over loopback: sync this one
now, open the record in the CRM, undo one change (and the confirmation when it moved), edit the person by hand,
and the Duplicates view's per-field merge. Also renders the detail pane and the Duplicates view to PNG.

Set ``CRM_DESKTOP_SHOTS=docs/screenshots`` to keep the images (the README shows them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QComboBox, QMessageBox, QTableView, QTableWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import PeopleService, PersonDetail
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Integration, Provider, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule, SandboxConfig
from crm_desktop.sandbox.hubspot import HubSpotSandbox
from crm_desktop.sandbox.pipedrive import PipedriveSandbox
from crm_desktop.sandbox.salesforce import SalesforceSandbox
from crm_desktop.sandbox.server import SandboxServer
from crm_desktop.store.models import SyncTrigger
from crm_desktop.ui.accessibility import name_controls, unnamed_controls
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.people_panel import PeoplePanel
from crm_desktop.ui.person_edit_dialog import PersonEditDialog
from tests.ui.test_screenshots import distinct_colours, save_shot, shots_dir

__all__ = ["shots_dir"]

pytestmark = pytest.mark.loopback

CRM_TAB, HISTORY_TAB = 3, 4


class UrlRecorder(QObject):
    """Takes the place of the browser: records each address the app asks the desktop to open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


@dataclass
class Desk:
    workspace: Workspace
    panel: PeoplePanel
    hubspot: HubSpotSandbox
    pipedrive: PipedriveSandbox
    salesforce: SalesforceSandbox

    def row_of(self, email: str) -> int:
        model = self.panel.model
        return next(row for row in range(model.rowCount()) if model.line(row).email == email)  # type: ignore[union-attr]

    def local_id(self, email: str) -> int:
        return self.workspace.sync.store.local_by_emails(RecordObject.CONTACT, [email])[email].id

    def crm_id(self, name: str, email: str) -> str:
        integration = self.workspace.integrations.get(name)
        local = self.local_id(email)
        return self.workspace.sync.store.links_for_local(integration.id or 0, RecordObject.CONTACT, [local])[
            local].crm_id


@pytest.fixture
def desk(qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop) -> Iterator[Desk]:
    hubspot = HubSpotSandbox(SandboxConfig(contacts=0, seed=4))
    pipedrive = PipedriveSandbox(SandboxConfig(contacts=0, seed=5))
    pipedrive.apply_config({"burst_limit": 120, "search_burst_limit": 100})
    salesforce = SalesforceSandbox(SandboxConfig(contacts=0, seed=3))
    server = SandboxServer([hubspot, pipedrive, salesforce])
    server.start()
    try:
        for provider, sandbox in ((Provider.HUBSPOT, hubspot), (Provider.PIPEDRIVE, pipedrive),
                                  (Provider.SALESFORCE, salesforce)):
            credentials = sandbox.credentials()
            if provider is Provider.PIPEDRIVE:
                credentials = {"apiToken": credentials["apiToken"]}
            workspace.integrations.add(Integration(
                provider=provider, name=provider.value, base_url=sandbox.base_url,
                domain="acme" if provider is Provider.PIPEDRIVE else None), credentials)
        workspace.contacts.save_many([
            Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace", phone="+14155550101",
                    social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ada",
                                                   followers=1200)]),
            Contact(email="ada+news@example.com", first_name="Augusta", last_name="King",
                    company="Analytical Engines", phone="+14155550101"),
            Contact(email="grace@example.com", first_name="Grace", last_name="Hopper", company="Navy"),
        ])
        panel = PeoplePanel(PeopleService(workspace.database, workspace.social, workspace.sync))
        qtbot.addWidget(panel)
        panel.resize(1240, 760)
        panel.show()
        qtbot.waitExposed(panel)
        qtbot.waitUntil(lambda: not panel.model.busy, timeout=5000)  # read on the list's reading thread
        yield Desk(workspace, panel, hubspot, pipedrive, salesforce)
        qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=10_000)
    finally:
        server.stop()


def click_row(view: QTableView, row: int, column: int = PersonColumn.EMAIL) -> None:
    view.scrollTo(view.model().index(row, column))
    rect = view.visualRect(view.model().index(row, column))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())


def click_table_row(table: QTableWidget, row: int) -> None:
    rect = table.visualItemRect(table.item(row, 0))
    QTest.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())


def cells(table: QTableWidget, column: int) -> list[str]:
    return [table.item(row, column).text() for row in range(table.rowCount())]


def show_person(qtbot: QtBot, desk: Desk, email: str, tab: int) -> None:
    click_row(desk.panel.table, desk.row_of(email))
    pane = desk.panel.detail_pane
    # Read on a store thread once picked.
    qtbot.waitUntil(lambda: pane.detail is not None and pane.detail.email == email, timeout=5000)
    tabs = pane.tabs
    QTest.mouseClick(tabs.tabBar(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     tabs.tabBar().tabRect(tab).center())
    assert tabs.currentIndex() == tab


def test_sync_this_one_now_then_open_it_in_the_crm(qtbot: QtBot, desk: Desk) -> None:
    recorder = UrlRecorder()
    QDesktopServices.setUrlHandler("https", recorder, "open")
    try:
        show_person(qtbot, desk, "ada@example.com", CRM_TAB)
        pane = desk.panel.detail_pane
        links = pane.links_table
        row = cells(links, 0).index("pipedrive")
        click_table_row(links, row)
        assert not pane.open_button.isEnabled(), "nothing to open before the record is in the CRM"
        assert pane.link_summary.isVisible()
        assert pane.link_summary.text() == "pipedrive: not in Pipedrive yet. “Sync this one now” sends it."
        QTest.mouseClick(pane.sync_one_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "created" in pane.links_result.text(), timeout=15_000)
        assert [p.name for p in desk.pipedrive.persons.values()] == ["Ada Lovelace"], "only this one was sent"
        assert desk.hubspot.request_count == 0, "nothing went to the other integrations"
        assert cells(links, 4)[row] == "Linked"
        person_id = desk.crm_id("pipedrive", "ada@example.com")
        assert cells(links, 2)[row] == person_id
        assert links.currentRow() == row, "the row stays selected after the refresh"
        assert cells(links, 3)[row].startswith("Today "), "the narrow table says when in few letters"
        assert pane.link_summary.text().startswith(f"pipedrive: Pipedrive record {person_id}, last synced 20")
        assert pane.link_summary.property("tone") == "ok"

        QTest.mouseClick(pane.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(recorder.opened), timeout=5000)
        assert recorder.opened == [f"https://acme.pipedrive.com/person/{person_id}"]
        assert pane.links_result.text() == f"Opened https://acme.pipedrive.com/person/{person_id}"

        hubspot_row = cells(links, 0).index("hubspot")
        click_table_row(links, hubspot_row)
        QTest.keyClick(pane.sync_one_button, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: "hubspot: created" in pane.links_result.text(), timeout=15_000)
        QTest.mouseClick(pane.open_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: len(recorder.opened) == 2, timeout=5000)
        contact_id = desk.crm_id("hubspot", "ada@example.com")
        assert recorder.opened[1] == (
            f"https://app.hubspot.com/contacts/{desk.hubspot.portal_id}/record/0-1/{contact_id}")
    finally:
        QDesktopServices.unsetUrlHandler("https")


def test_a_refused_push_shows_the_crms_reason(qtbot: QtBot, desk: Desk) -> None:
    desk.hubspot.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[1]))
    show_person(qtbot, desk, "grace@example.com", CRM_TAB)
    pane = desk.panel.detail_pane
    row = cells(pane.links_table, 0).index("hubspot")
    click_table_row(pane.links_table, row)
    QTest.mouseClick(pane.sync_one_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "failed" in pane.links_result.text(), timeout=15_000)
    assert cells(pane.links_table, 4)[row] == "Failed"
    reason = cells(pane.links_table, 5)[row]
    assert reason, "the CRM's reason is listed"
    # In full under the table too: in the pane's narrow table, Last error is off to the right.
    assert pane.link_summary.text().endswith(f"The last sync of it failed: {reason}")
    assert pane.link_summary.property("tone") == "error"


def import_company(desk: Desk, company: str) -> None:
    csv = desk.workspace.paths.data_dir / "company.csv"
    csv.write_text(f"email,company\nada@example.com,{company}\n", encoding="utf-8")
    assert desk.workspace.sync.import_file(csv, RecordObject.CONTACT).updated == 1


def test_undo_one_change_from_the_history_and_the_next_sync_sends_it(qtbot: QtBot, desk: Desk) -> None:
    import_company(desk, "First Co")
    import_company(desk, "Second Co")
    desk.panel.reload()
    qtbot.waitUntil(lambda: not desk.panel.model.busy, timeout=5000)  # read on the list's reading thread
    show_person(qtbot, desk, "ada@example.com", HISTORY_TAB)
    pane = desk.panel.detail_pane
    history = pane.history_table
    assert cells(history, 2)[:2] == ["First Co → Second Co", "— → First Co"]
    assert cells(history, 1)[:2] == ["Company", "Company"], "fields by the names the marketer knows"
    assert history.horizontalScrollBar().maximum() == 0, "the whole change in sight in the pane"
    click_table_row(history, 0)
    QTest.mouseClick(pane.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "company is First Co again" in pane.history_result.text(), timeout=5000)
    assert cells(history, 1)[0] == "Company" and cells(history, 2)[0] == "Second Co → First Co"
    assert history.item(0, 0).toolTip().endswith(" by undo"), "who made it, in the row's tooltip"
    click_table_row(history, 0)
    summary = pane.change_summary.text()
    assert summary.startswith("Company: Second Co → First Co\n20") and summary.endswith(" by undo"), summary
    # The list reads its rows again on its reading thread, in its own time (seen behind the pane on a busy machine).
    qtbot.waitUntil(lambda: desk.panel.model.data(desk.panel.model.index(
        desk.row_of("ada@example.com"), PersonColumn.COMPANY)) == "First Co", timeout=5000)  # the value put back

    task = desk.panel.tasks.start(desk.workspace.sync.push_now(
        "hubspot", {RecordObject.CONTACT: [desk.local_id("ada@example.com")]}, SyncTrigger.MANUAL), name="push")
    qtbot.waitUntil(task.done, timeout=15_000)
    assert not task.result().failures
    assert desk.hubspot._records["contacts"][desk.crm_id("hubspot", "ada@example.com")].properties["company"] == (
        "First Co")


def test_the_row_of_a_created_email_offers_no_undo(qtbot: QtBot, desk: Desk) -> None:
    """An import that makes a person records its email (blank -> the email); the email is the record's key, which
    no undo puts back, so Undo this change stays off on that row."""
    csv = desk.workspace.paths.data_dir / "new.csv"
    csv.write_text("email,company\nnew@example.com,New Co\n", encoding="utf-8")
    assert desk.workspace.sync.import_file(csv, RecordObject.CONTACT).created == 1
    desk.panel.reload()
    qtbot.waitUntil(lambda: not desk.panel.model.busy, timeout=5000)
    show_person(qtbot, desk, "new@example.com", HISTORY_TAB)
    pane = desk.panel.detail_pane
    assert cells(pane.history_table, 1) == ["Email"]
    click_table_row(pane.history_table, 0)
    assert pane.selected_change() is not None and not pane.undo_button.isEnabled()


def test_an_undo_over_a_newer_value_asks_first(qtbot: QtBot, desk: Desk) -> None:
    import_company(desk, "First Co")
    import_company(desk, "Second Co")
    desk.panel.reload()
    qtbot.waitUntil(lambda: not desk.panel.model.busy, timeout=5000)  # read on the list's reading thread
    show_person(qtbot, desk, "ada@example.com", HISTORY_TAB)
    pane = desk.panel.detail_pane
    row = cells(pane.history_table, 2).index("— → First Co")
    click_table_row(pane.history_table, row)
    QTest.mouseClick(pane.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.panel.confirm_box is not None, timeout=5000)  # asked once the store answered
    box = desk.panel.confirm_box
    assert box is not None and "changed since" in box.text()
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.panel.confirm_box is None)
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company == "Second Co", "cancelled: nothing changed"

    click_table_row(pane.history_table, cells(pane.history_table, 2).index("— → First Co"))
    QTest.mouseClick(pane.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.panel.confirm_box is not None, timeout=5000)
    box = desk.panel.confirm_box
    assert box is not None
    anyway = next(b for b in box.buttons() if b.text() == "Undo anyway")
    QTest.mouseClick(anyway, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "again" in pane.history_result.text())
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company is None


def push_everyone(qtbot: QtBot, desk: Desk) -> None:
    ids = [desk.local_id(e) for e in ("ada@example.com", "ada+news@example.com", "grace@example.com")]
    for name in ("hubspot", "pipedrive", "salesforce"):
        task = desk.panel.tasks.start(desk.workspace.sync.push_now(name, {RecordObject.CONTACT: ids},
                                                                   SyncTrigger.MANUAL), name=f"push {name}")
        qtbot.waitUntil(task.done, timeout=20_000)
        assert not task.result().failures


def test_merge_two_duplicates_with_a_per_field_pick(qtbot: QtBot, desk: Desk, shots_dir: Path,
                                                    styled_app: QApplication) -> None:
    push_everyone(qtbot, desk)
    hubspot_other = desk.crm_id("hubspot", "ada+news@example.com")
    QTest.mouseClick(desk.panel.duplicates_button, Qt.MouseButton.LeftButton)
    dialog = desk.panel.duplicates_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.report is not None and not dialog.searching, timeout=10_000)
    assert cells(dialog.groups_table, 0) == ["Same email", "Same phone"]
    assert cells(dialog.groups_table, 2)[0] == "ada@example.com, ada+news@example.com"
    click_table_row(dialog.groups_table, 0)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert (dialog.keep_combo.currentText(), dialog.other_combo.currentText()) == (
        "ada@example.com", "ada+news@example.com")
    fields = dialog.fields_table
    assert cells(fields, 0) == ["First name", "Last name", "Company", "Phone"], "named as the marketer knows them"
    headings = [fields.horizontalHeaderItem(column) for column in (1, 2)]
    assert [(h.text(), h.toolTip()) for h in headings if h is not None] == [
        ("Kept contact", "ada@example.com"), ("Other contact", "ada+news@example.com")]
    take = fields.item(2, 3)
    assert take.checkState() == Qt.CheckState.Checked, "a blank kept value defaults to the other's"
    last_name = fields.item(1, 3)
    assert last_name.checkState() == Qt.CheckState.Unchecked
    fields.setCurrentCell(1, 3)
    fields.setFocus()
    QTest.keyClick(fields, Qt.Key.Key_Space)
    assert last_name.checkState() == Qt.CheckState.Checked
    assert "in Salesforce itself" in dialog.crm_label.text()
    assert "hubspot: HubSpot merges" in dialog.crm_label.text()
    name_controls(dialog)  # what the app's filter does when the window is shown
    assert unnamed_controls(dialog) == [], "every control of the Duplicates view has an accessible name"
    image = save_shot(dialog, shots_dir / "people-duplicates.png")
    assert distinct_colours(image) > 20

    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert box is not None
    merge = next(b for b in box.buttons() if b.text() == "Merge")
    QTest.mouseClick(merge, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result_label.text().startswith("Merged"), timeout=20_000)
    text = dialog.result_label.text()
    assert "; took Last name, Company;" in text, "the fields by their names, not the wire's"
    assert "hubspot: contact" in text and "pipedrive: person" in text and "salesforce: merge Contact" in text
    assert cells(dialog.groups_table, 0) == [], "the duplicates are gone from the list"
    assert desk.workspace.contacts.find("ada+news@example.com") is None
    kept = desk.workspace.contacts.find("ada@example.com")
    assert kept is not None and (kept.last_name, kept.company) == ("King", "Analytical Engines")
    assert hubspot_other not in desk.hubspot._records["contacts"]
    qtbot.waitUntil(lambda: not desk.panel.model.busy, timeout=5000)
    assert desk.panel.model.total == 2 and desk.panel.notice.isVisible()


def test_the_detail_pane_renders(qtbot: QtBot, desk: Desk, shots_dir: Path, styled_app: QApplication) -> None:
    push_everyone(qtbot, desk)
    import_company(desk, "Engines Ltd")
    desk.panel.reload()
    qtbot.waitUntil(lambda: not desk.panel.model.busy, timeout=5000)  # read on the list's reading thread
    show_person(qtbot, desk, "ada@example.com", CRM_TAB)
    pane = desk.panel.detail_pane
    click_table_row(pane.links_table, cells(pane.links_table, 0).index("hubspot"))
    QTest.mouseClick(pane.sync_one_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "hubspot: updated in the CRM" in pane.links_result.text(), timeout=15_000)
    assert cells(pane.links_table, 1) == ["HubSpot", "Pipedrive", "Salesforce"]
    image = save_shot(desk.panel, shots_dir / "people-crm-records.png")
    assert distinct_colours(image) > 20
    QTest.mouseClick(pane.tabs.tabBar(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     pane.tabs.tabBar().tabRect(HISTORY_TAB).center())
    click_table_row(pane.history_table, 0)
    image = save_shot(desk.panel, shots_dir / "people-history.png")
    assert distinct_colours(image) > 20


def test_edit_a_person_by_hand_refused_then_saved_and_sent_by_the_next_sync(
    qtbot: QtBot, desk: Desk, shots_dir: Path, styled_app: QApplication
) -> None:
    panel = desk.panel
    show_person(qtbot, desk, "ada@example.com", HISTORY_TAB)
    pane = panel.detail_pane
    assert pane.edit_button.isEnabled()
    panel.table.setFocus()
    QTest.keyClick(panel.table, Qt.Key.Key_F2)
    dialog = panel.edit_dialog
    assert dialog is not None and dialog.isVisible(), "F2 on the list edits the person on show"
    assert {key: editor.text() for key, editor in dialog.editors.items()} == {  # type: ignore[union-attr]
        "firstName": "Ada", "lastName": "Lovelace", "company": "", "phone": "+14155550101"}
    assert not dialog.save_button.isEnabled(), "nothing changed yet"
    name_controls(dialog)  # what the app's filter does when the window is shown
    assert unnamed_controls(dialog) == [], "every control of the form has an accessible name"
    company, phone = dialog.editors["company"], dialog.editors["phone"]
    QTest.keyClicks(company, "Analytical Engines")
    phone.selectAll()  # type: ignore[union-attr]
    QTest.keyClicks(phone, "call me")
    assert dialog.save_button.isEnabled()
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=5000)
    assert dialog.error_label.text().startswith("Not saved, nothing was changed:\nPhone: "), dialog.error_label.text()
    assert dialog.isVisible() and phone.hasFocus(), "the refused field takes the keyboard, the form stays open"
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company is None, "nothing of a refused edit is written"
    save_shot(dialog, shots_dir / "people-edit.png")

    phone.selectAll()  # type: ignore[union-attr]
    QTest.keyClicks(phone, "+1 415 555 0199")
    QTest.keyClick(phone, Qt.Key.Key_Return)  # saves: after the refusal, Return must not reach Cancel
    qtbot.waitUntil(lambda: panel.edit_dialog is None, timeout=5000)
    assert panel.notice.text() == ("ada@example.com: saved Company, Phone; the next sync sends them to your CRMs")
    qtbot.waitUntil(lambda: cells(pane.history_table, 1)[:2] == ["Company", "Phone"]
                    or cells(pane.history_table, 1)[:2] == ["Phone", "Company"], timeout=5000)
    assert set(cells(pane.history_table, 2)[:2]) == {"— → Analytical Engines", "+14155550101 → +14155550199"}
    assert pane.history_table.item(0, 0).toolTip().endswith(" by edit")
    qtbot.waitUntil(lambda: panel.model.data(panel.model.index(desk.row_of("ada@example.com"), PersonColumn.COMPANY))
                    == "Analytical Engines", timeout=5000)

    task = panel.tasks.start(desk.workspace.sync.push_now(
        "hubspot", {RecordObject.CONTACT: [desk.local_id("ada@example.com")]}, SyncTrigger.MANUAL), name="push")
    qtbot.waitUntil(task.done, timeout=15_000)
    assert not task.result().failures
    sent = desk.hubspot._records["contacts"][desk.crm_id("hubspot", "ada@example.com")].properties
    assert (sent["company"], sent["phone"]) == ("Analytical Engines", "+14155550199")


def test_a_leads_form_offers_its_status_as_a_list(qtbot: QtBot) -> None:
    detail = PersonDetail(RecordObject.LEAD, 7, "dan@example.com", "Dan Ito", "Initech")
    detail.fields = {"firstName": "Dan", "lastName": "Ito", "company": "Initech", "source": "twitter",
                     "status": "contacted", "custom.segment": "vip"}
    dialog = PersonEditDialog(detail)
    qtbot.addWidget(dialog)
    status = dialog.editors["status"]
    assert isinstance(status, QComboBox) and status.currentText() == "Contacted"
    assert [status.itemText(i) for i in range(status.count())] == [
        "New", "Contacted", "Qualified", "Unqualified", "Converted"]
    assert dialog.editors["custom.segment"].accessibleName() == "segment (custom field)"
    sent: list[dict[str, str | None]] = []
    dialog.save_requested.connect(sent.append)
    status.setCurrentIndex(status.findData("qualified"))
    dialog.editors["company"].clear()  # type: ignore[union-attr]
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert sent == [{"company": None, "status": "qualified"}], "only what changed, a cleared field as blank"
    assert not dialog.save_button.isEnabled(), "not sent twice while saving"


def test_add_a_person_by_hand_from_new(qtbot: QtBot, desk: Desk) -> None:
    panel = desk.panel
    panel.table.setFocus()
    QTest.keyClick(panel.table, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    dialog = panel.edit_dialog
    assert dialog is not None and dialog.new and dialog.windowTitle() == "New contact"
    assert list(dialog.editors) == ["email", "firstName", "lastName", "company", "phone"]
    assert not dialog.save_button.isEnabled() and dialog.save_button.text() == "Add", "an email is needed first"
    QTest.keyClicks(dialog.editors["email"], "Ada@Example.com")
    QTest.keyClicks(dialog.editors["company"], "Somewhere Else")
    QTest.keyClick(dialog.editors["company"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.error_label.isVisible(), timeout=5000)
    assert dialog.error_label.text().startswith("ada@example.com is already a contact")
    assert dialog.editors["email"].hasFocus()
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company is None, "the stored contact is left alone"

    dialog.editors["email"].selectAll()  # type: ignore[union-attr]
    QTest.keyClicks(dialog.editors["email"], "hedy@example.com")
    QTest.keyClicks(dialog.editors["firstName"], "Hedy")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.edit_dialog is None, timeout=5000)
    assert panel.notice.text() == "Added hedy@example.com as a contact; the next sync sends them to your CRMs"
    pane = panel.detail_pane
    qtbot.waitUntil(lambda: pane.detail is not None and pane.detail.email == "hedy@example.com", timeout=5000)
    assert panel.filter_edit.text() == "hedy@example.com" and panel.model.rowCount() == 1, "shown, alone, picked"
    assert panel.count_label.text() == "1 contact"
    assert pane.detail.fields["company"] == "Somewhere Else"  # type: ignore[union-attr]


def test_an_undo_back_to_blank_says_the_crm_keeps_its_value(qtbot: QtBot, desk: Desk) -> None:
    import_company(desk, "First Co")
    result = push_contact(qtbot, desk, "hubspot", "ada@example.com")
    assert not result.failures
    pane = undo_the_imported_company(qtbot, desk)
    stored = desk.workspace.contacts.find("ada@example.com")
    assert stored is not None and stored.company is None

    assert not push_contact(qtbot, desk, "hubspot", "ada@example.com").failures
    in_crm = desk.hubspot._records["contacts"][desk.crm_id("hubspot", "ada@example.com")].properties["company"]
    assert in_crm == "First Co", "a blank never wipes a CRM value"
    text = pane.history_result.text()
    assert "next sync sends" not in text, f"the pane promises what the sync does not do: {text}"
    assert text.endswith("blank here only: a blank never clears a CRM's value, so the CRMs keep theirs"), text


def test_an_undo_back_to_blank_says_it_is_sent_where_the_mapping_lets_a_blank_wipe(
    qtbot: QtBot, desk: Desk
) -> None:
    """With HubSpot's company mapped to let a blank wipe the CRM's value, the blank put back is sent, and said so."""
    hubspot = desk.workspace.integrations.get("hubspot")
    mappings = [replace(m, blank_wipes=True) if m.local_field == "company" else m
                for m in desk.workspace.sync.mappings(hubspot, RecordObject.CONTACT)]
    desk.workspace.sync.save_mappings(hubspot, RecordObject.CONTACT, mappings)
    import_company(desk, "First Co")
    assert not push_contact(qtbot, desk, "hubspot", "ada@example.com").failures
    pane = undo_the_imported_company(qtbot, desk)
    assert pane.history_result.text().endswith("the next sync sends it to the CRMs"), pane.history_result.text()

    assert not push_contact(qtbot, desk, "hubspot", "ada@example.com").failures
    in_crm = desk.hubspot._records["contacts"][desk.crm_id("hubspot", "ada@example.com")].properties.get("company")
    assert not in_crm, "the blank was sent, as the pane said"


def test_an_edit_that_clears_a_field_says_the_crm_keeps_its_value(qtbot: QtBot, desk: Desk) -> None:
    import_company(desk, "First Co")
    panel = desk.panel
    show_person(qtbot, desk, "ada@example.com", HISTORY_TAB)
    panel.table.setFocus()
    QTest.keyClick(panel.table, Qt.Key.Key_F2)
    dialog = panel.edit_dialog
    assert dialog is not None
    company, phone = dialog.editors["company"], dialog.editors["phone"]
    company.selectAll()  # type: ignore[union-attr]
    QTest.keyClick(company, Qt.Key.Key_Delete)
    phone.selectAll()  # type: ignore[union-attr]
    QTest.keyClicks(phone, "+1 415 555 0199")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.edit_dialog is None, timeout=5000)
    assert panel.notice.text() == (
        "ada@example.com: saved Company, Phone; the next sync sends Phone to your CRMs; "
        "Company blank here only: a blank never clears a CRM's value, so the CRMs keep theirs")


def undo_the_imported_company(qtbot: QtBot, desk: Desk) -> Any:
    """Click Undo this change on ada's company as the import wrote it; the detail pane, once it answered."""
    show_person(qtbot, desk, "ada@example.com", HISTORY_TAB)
    pane = desk.panel.detail_pane
    history = pane.history_table
    row = next(row for row in range(history.rowCount())
               if cells(history, 1)[row] == "Company" and history.item(row, 0).toolTip().endswith(" by import"))
    click_table_row(history, row)
    QTest.mouseClick(pane.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "again" in pane.history_result.text(), timeout=5000)
    return pane


def push_contact(qtbot: QtBot, desk: Desk, name: str, email: str) -> Any:
    task = desk.panel.tasks.start(desk.workspace.sync.push_now(
        name, {RecordObject.CONTACT: [desk.local_id(email)]}, SyncTrigger.MANUAL), name="push")
    qtbot.waitUntil(task.done, timeout=15_000)
    return task.result()


def test_after_the_last_merge_the_merged_contacts_are_no_longer_offered(qtbot: QtBot, desk: Desk) -> None:
    """Seen exploring: once the last group was merged, the view still read "Keep ada@example.com and merge into it
    ada+news@example.com", the contact merged away (deleted here) still offered in both boxes."""
    QTest.mouseClick(desk.panel.duplicates_button, Qt.MouseButton.LeftButton)
    dialog = desk.panel.duplicates_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.report is not None and not dialog.searching, timeout=10_000)
    click_table_row(dialog.groups_table, 0)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert box is not None
    QTest.mouseClick(next(b for b in box.buttons() if b.text() == "Merge"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result_label.text().startswith("Merged"), timeout=20_000)
    assert cells(dialog.groups_table, 0) == []
    offered = [combo.itemText(i) for combo in (dialog.keep_combo, dialog.other_combo) for i in range(combo.count())]
    assert "ada+news@example.com" not in offered, offered
    assert not dialog.merge_button.isEnabled()


def push_ada(qtbot: QtBot, desk: Desk, *names: str) -> None:
    for name in names:
        task = desk.panel.tasks.start(desk.workspace.sync.push_now(
            name, {RecordObject.CONTACT: [desk.local_id("ada@example.com")]}, SyncTrigger.MANUAL), name=f"push {name}")
        qtbot.waitUntil(task.done, timeout=20_000)
        assert not task.result().failures


def ask_to_forget_ada(qtbot: QtBot, desk: Desk) -> QMessageBox:
    """Delete on Ada's row; the question, once her CRM records are read on a store thread."""
    table = desk.panel.table
    table.setFocus(Qt.FocusReason.OtherFocusReason)
    table.selectRow(desk.row_of("ada@example.com"))
    QTest.keyClick(table, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: desk.panel.confirm_box is not None, timeout=5000)
    box = desk.panel.confirm_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    return box


def test_forget_with_their_crm_records_deletes_them_in_each_crm_then_here(
        qtbot: QtBot, desk: Desk, shots_dir: Path) -> None:
    push_ada(qtbot, desk, "hubspot", "pipedrive")
    hubspot_id, pipedrive_id = desk.crm_id("hubspot", "ada@example.com"), desk.crm_id("pipedrive", "ada@example.com")
    box = ask_to_forget_ada(qtbot, desk)
    check = box.checkBox()
    assert check is not None and check is desk.panel.forget_in_crms_box
    assert check.text() == "Also delete their records in the CRMs (2 linked: HubSpot “hubspot”, Pipedrive “pipedrive”)"
    assert not check.isChecked(), "unticked unless the marketer ticks it"
    assert box.informativeText().endswith(
        "Note: the records in the CRMs are not deleted unless you tick the box below.")
    check.setChecked(True)
    image = save_shot(box, shots_dir / "people-forget-in-crms.png")
    assert distinct_colours(image) > 5
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.panel.notice.text().startswith("hubspot: contact"), timeout=20_000)
    assert desk.panel.notice.tone == "ok"
    assert desk.panel.notice.text() == (
        f"hubspot: contact {hubspot_id} deleted; pipedrive: contact {pipedrive_id} deleted. "
        "forgot ada@example.com: contact 1 deleted, " + desk.panel.notice.text().split(" deleted, ", 1)[1])
    assert desk.hubspot._records["contacts"][hubspot_id].archived, "deleted (archived) in HubSpot"
    assert int(pipedrive_id) not in desk.pipedrive.persons, "deleted in Pipedrive"
    assert desk.workspace.contacts.find("ada@example.com") is None, "and forgotten here"
    assert desk.panel.service.forgetting.forgotten_among(["ada@example.com"])
    qtbot.waitUntil(lambda: "ada@example.com" not in [
        line.email for line in map(desk.panel.model.line, range(desk.panel.model.rowCount())) if line], timeout=5000)


def test_forget_with_their_crm_records_forgets_nothing_when_a_crm_refuses_and_says_why(
        qtbot: QtBot, desk: Desk) -> None:
    push_ada(qtbot, desk, "hubspot")
    hubspot_id = desk.crm_id("hubspot", "ada@example.com")
    desk.hubspot.apply_config({"scopes": [s for s in desk.hubspot.scopes if s != "crm.objects.contacts.write"]})
    box = ask_to_forget_ada(qtbot, desk)
    check = box.checkBox()
    assert check is not None and check.text().endswith("(1 linked: HubSpot “hubspot”)")
    check.setChecked(True)
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: desk.panel.notice.tone == "error", timeout=20_000)
    text = desk.panel.notice.text()
    assert text.startswith(f"ada@example.com was not forgotten: hubspot: contact {hubspot_id} NOT deleted: "), text
    assert "scope" in text.lower(), "the CRM's reason"
    assert text.endswith("Nothing was erased here, so that the records left can still be found: delete them in the "
                         "CRM, or fix the cause and forget them again."), text
    assert not desk.hubspot._records["contacts"][hubspot_id].archived
    assert desk.workspace.contacts.find("ada@example.com") is not None, "nothing forgotten"
    assert desk.crm_id("hubspot", "ada@example.com") == hubspot_id, "the link still finds the record"
    assert not desk.panel.service.forgetting.forgotten_among(["ada@example.com"])
