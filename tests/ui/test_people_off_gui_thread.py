"""The People panel reads the store only off the GUI thread: picking a person (their profiles, timeline, CRM records
and history), and reading the list and the campaigns again after an import or a merge; a merge and its plan do their
store work (and their CRM merge) on the sync worker. The person picked last is the one shown, whatever order the
reads come back in, and a read still under way when the panel goes away ends quietly."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTableView
from pytestqt.qtbot import QtBot
from shiboken6 import isValid

from crm_desktop.app import imports, people
from crm_desktop.app.integrations import IntegrationService
from crm_desktop.app.people import PeopleService, PersonDetail
from crm_desktop.app.social import SocialService
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact, Lead, SocialPlatform, SocialProfile
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.store.duplicates_store import DuplicateStore
from crm_desktop.store.models import SyncTrigger
from crm_desktop.store.people_store import PeopleStore
from crm_desktop.store.repositories import ContactStore
from crm_desktop.ui.people_model import PersonColumn
from crm_desktop.ui.people_panel import DuplicatesDialog, PeoplePanel
from tests.ui.conftest import HubSpotBench, drive, person

#: Every People store read behind the list, its filters and the detail pane.
PEOPLE_READS = ("page", "keyset_at", "count", "campaign_names", "email_of", "profiles", "timeline", "crm_links",
                "audit")
#: The reads behind one person's detail pane.
DETAIL_READS = {"email_of", "profiles", "timeline", "crm_links", "audit"}
#: The reads behind the list read again (its count, its first page, the campaigns of its filter).
RELOAD_READS = {"page", "campaign_names"}


class StoreReads:
    """The People store reads made while recording, each with the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.recording = False

    def wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def reading(*args: Any, **kwargs: Any) -> Any:
            if self.recording:
                self.calls.append((name, threading.get_ident()))
            return method(*args, **kwargs)

        return reading

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.calls}

    def on_the_gui_thread(self) -> list[str]:
        gui = threading.get_ident()
        return [name for name, thread in self.calls if thread == gui]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> StoreReads:
    recorded = StoreReads()
    for name in PEOPLE_READS:
        monkeypatch.setattr(PeopleStore, name, recorded.wrap(name, getattr(PeopleStore, name)))
    return recorded


def open_panel(qtbot: QtBot, workspace: Workspace, *, closed_by_qtbot: bool = True, saved_before: int = 0
               ) -> PeoplePanel:
    """Three contacts (two sharing a phone) in a People panel on show, its list read (with the ``saved_before``
    contacts the workspace had)."""
    workspace.contacts.save_many([
        Contact(email="ada@example.com", first_name="Ada", last_name="Lovelace", phone="+14155550101",
                social_profiles=[SocialProfile(platform=SocialPlatform.TWITTER, username="ada", followers=1200)]),
        Contact(email="ada+news@example.com", first_name="Augusta", last_name="King", company="Analytical Engines",
                phone="+14155550101"),
        Contact(email="grace@example.com", first_name="Grace", last_name="Hopper", company="Navy"),
    ])
    made = PeoplePanel(PeopleService(workspace.database, workspace.social, workspace.sync))
    if closed_by_qtbot:
        qtbot.addWidget(made)
    made.resize(1240, 760)
    made.show()
    qtbot.waitExposed(made)
    qtbot.waitUntil(lambda: made.model.total == 3 + saved_before and not made.model.busy, timeout=5000)
    return made


@pytest.fixture
def panel(qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop) -> Iterator[PeoplePanel]:
    made = open_panel(qtbot, workspace)
    yield made
    qtbot.waitUntil(lambda: not made.tasks.pending, timeout=10_000)


def recorded_thread(method: Callable[..., Any], threads: list[int]) -> Callable[..., Any]:
    """``method``, adding the thread of each call to ``threads``."""
    @functools.wraps(method)
    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return method(*args, **kwargs)

    return recording


def row_of(panel: PeoplePanel, email: str) -> int:
    model = panel.model
    return next(row for row in range(model.rowCount()) if model.index(row, PersonColumn.EMAIL).data() == email)


def click_row(view: QTableView, row: int) -> None:
    rect = view.visualRect(view.model().index(row, PersonColumn.EMAIL))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, rect.center())


def shown_email(panel: PeoplePanel) -> str | None:
    detail = panel.detail_pane.detail
    return detail.email if detail is not None else None


def test_picking_a_person_reads_them_off_the_gui_thread(
    qtbot: QtBot, panel: PeoplePanel, reads: StoreReads, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.leads.save_many([Lead(email="lead@example.com", first_name="Lee")])
    scored_on: list[int] = []
    attributed_on: list[int] = []
    monkeypatch.setattr(SocialService, "engagement_score",
                        recorded_thread(SocialService.engagement_score, scored_on))
    monkeypatch.setattr(SocialService, "attribution", recorded_thread(SocialService.attribution, attributed_on))
    reads.recording = True
    click_row(panel.table, row_of(panel, "ada@example.com"))
    qtbot.waitUntil(lambda: shown_email(panel) == "ada@example.com", timeout=5000)
    QTest.keyClick(panel.table, Qt.Key.Key_Down)  # the keyboard picks the next person
    next_email = panel.model.index(row_of(panel, "ada@example.com") + 1, PersonColumn.EMAIL).data()
    qtbot.waitUntil(lambda: shown_email(panel) == next_email, timeout=5000)
    QTest.mouseClick(panel.kind_tabs, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     panel.kind_tabs.tabRect(1).center())
    qtbot.waitUntil(lambda: panel.model.total == 1 and not panel.model.busy, timeout=5000)
    click_row(panel.table, 0)  # a lead: its attribution under each model too
    qtbot.waitUntil(lambda: shown_email(panel) == "lead@example.com", timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)

    assert reads.names >= DETAIL_READS, reads.calls
    assert reads.on_the_gui_thread() == [], "read on the GUI thread"
    gui = threading.get_ident()
    assert scored_on and gui not in scored_on, "the engagement score was worked out on the GUI thread"
    assert attributed_on and gui not in attributed_on, "the attribution was worked out on the GUI thread"


def test_an_import_is_checked_saved_and_read_again_off_the_gui_thread(
    qtbot: QtBot, panel: PeoplePanel, reads: StoreReads, tmp_path: Path, workspace: Workspace
) -> None:
    path = tmp_path / "people.csv"
    path.write_text("Email,First Name\nnew.person@example.com,Nova\n", encoding="utf-8")
    ran_on: dict[str, list[int]] = {"preview_import": [], "import_file": []}
    for name, calls in ran_on.items():
        setattr(panel.service, name, recorded_thread(getattr(panel.service, name), calls))
    checking = panel.preview_import(path)
    assert not panel.import_button.isEnabled() and panel.notice.text() == "Checking people.csv…"
    qtbot.waitUntil(checking.done, timeout=5000)
    dialog = checking.result()
    assert dialog is not None and panel.import_button.isEnabled()
    reads.recording = True
    with qtbot.waitSignal(panel.people_changed, timeout=5000):
        QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.model.total == 4 and not panel.model.busy, timeout=5000)
    qtbot.waitUntil(lambda: reads.names >= RELOAD_READS, timeout=5000)

    assert panel.notice.text().startswith("Imported: 1 created")
    gui = threading.get_ident()
    assert all(calls and gui not in calls for calls in ran_on.values()), f"ran on the GUI thread: {ran_on}"
    assert reads.on_the_gui_thread() == [], "read on the GUI thread"
    assert workspace.contacts.find("new.person@example.com") is not None


def held_after_rows(panel: PeoplePanel, method: str, rows: int,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold the service's ``method`` (an import or its check) on its thread once it told ``rows`` rows read, until
    the second event is set; the first is set when it is held, before the window is told of the step (so the
    window can never show the step before the test knows the hold)."""
    told, go_on = threading.Event(), threading.Event()
    reading = getattr(panel.service, method)

    def held(*args: Any, progress: Callable[[imports.ImportProgress], None], **kwargs: Any) -> Any:
        def holding(step: imports.ImportProgress) -> None:
            holds = step.rows_read == rows and not told.is_set()
            if holds:
                told.set()
            progress(step)
            if holds:
                assert go_on.wait(30)

        return reading(*args, progress=holding, **kwargs)

    monkeypatch.setattr(panel.service, method, held)
    return told, go_on


def test_an_import_shows_a_bar_of_the_rows_read_while_the_window_stays_responsive(
    qtbot: QtBot, panel: PeoplePanel, tmp_path: Path, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "IMPORT_CHUNK", 2)
    path = tmp_path / "people.csv"
    path.write_text("Email,First Name\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(6)), encoding="utf-8")
    checking = panel.preview_import(path)
    qtbot.waitUntil(checking.done, timeout=5000)
    dialog = checking.result()
    assert dialog is not None and panel.import_progress.isHidden()
    # The import is held on its thread after its first chunk, until the bar is seen.
    told, go_on = held_after_rows(panel, "import_file", 2, monkeypatch)
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.notice.text() == "Importing people.csv: 2 of 6 rows read…", timeout=5000)
    bar = panel.import_progress
    assert bar.isVisible() and (bar.minimum(), bar.maximum(), bar.value()) == (0, 1000, 333)
    assert told.is_set() and not panel.import_button.isEnabled()
    with qtbot.waitSignal(panel.people_changed, timeout=5000):
        go_on.set()
    assert panel.import_progress.isHidden() and panel.import_button.isEnabled()
    assert panel.notice.text().startswith("Imported: 6 created")


def test_a_file_being_checked_shows_a_bar_of_the_rows_read(
    qtbot: QtBot, panel: PeoplePanel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200,000-row file is checked for a while before its preview opens: the check shows how far it is, as the
    import does, instead of "Checking…" alone."""
    monkeypatch.setattr(people, "IMPORT_CHUNK", 2)
    path = tmp_path / "people.csv"
    path.write_text("Email,First Name\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(6)), encoding="utf-8")
    told, go_on = held_after_rows(panel, "preview_import", 4, monkeypatch)
    checking = panel.preview_import(path)
    assert panel.notice.text() == "Checking people.csv…" and panel.import_progress.isVisible()
    qtbot.waitUntil(lambda: panel.notice.text() == "Checking people.csv: 4 of 6 rows read…", timeout=5000)
    bar = panel.import_progress
    assert (bar.minimum(), bar.maximum(), bar.value()) == (0, 1000, 666)
    assert told.is_set() and not panel.import_button.isEnabled()
    go_on.set()
    qtbot.waitUntil(checking.done, timeout=5000)
    dialog = checking.result()
    assert dialog is not None and dialog.isVisible()
    assert panel.import_progress.isHidden() and panel.import_button.isEnabled() and panel.notice.text() == ""
    assert dialog.summary.text().startswith("6 valid rows: 6 new")
    dialog.reject()


def first_duplicates_planned(qtbot: QtBot, panel: PeoplePanel) -> DuplicatesDialog:
    """Open the Duplicates dialog, pick its first group and wait for the merge plan."""
    QTest.mouseClick(panel.duplicates_button, Qt.MouseButton.LeftButton)
    dialog = panel.duplicates_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.report is not None and not dialog.searching, timeout=10_000)
    dialog.groups_table.selectRow(0)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    return dialog


def merge_confirmed(qtbot: QtBot, dialog: DuplicatesDialog) -> None:
    """Press Merge, confirm, and wait for the dialog to say it merged."""
    with qtbot.waitSignal(dialog.merged, timeout=10_000):
        QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
        box = dialog.confirm_box
        assert box is not None
        QTest.mouseClick(next(b for b in box.buttons() if b.text() == "Merge"), Qt.MouseButton.LeftButton)


def test_the_list_is_read_again_off_the_gui_thread_after_a_merge(
    qtbot: QtBot, panel: PeoplePanel, reads: StoreReads, workspace: Workspace
) -> None:
    dialog = first_duplicates_planned(qtbot, panel)
    assert (dialog.keep_combo.currentText(), dialog.other_combo.currentText()) == (
        "ada@example.com", "ada+news@example.com")
    reads.recording = True
    # Recorded from the merge on: the reads after it are those of the list and the campaigns read again.
    merge_confirmed(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.model.total == 2 and not panel.model.busy, timeout=5000)
    qtbot.waitUntil(lambda: reads.names >= RELOAD_READS, timeout=5000)

    assert reads.on_the_gui_thread() == [], "read on the GUI thread"
    assert workspace.contacts.find("ada+news@example.com") is None
    dialog.close()


#: The store calls a merge plan and a merge make: the two contacts, their CRM links, the integrations, the save.
MERGE_STORE_CALLS = {
    DuplicateStore: ("contacts_by_id", "links_of", "finish_merge"),
    ContactStore: ("find", "save"),
    IntegrationService: ("list", "get"),
}


def test_a_merge_and_its_plan_do_their_store_work_on_the_sync_worker(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = hubspot.workspace
    worker = workspace.sync.run_off_thread().thread_id  # as the main window does
    panel = open_panel(qtbot, workspace, saved_before=3)
    emails = ["ada@example.com", "ada+news@example.com"]
    ids = [local.id for local in workspace.sync.store.local_by_emails(RecordObject.CONTACT, emails).values()]
    pushed = drive(qtbot, workspace.sync.push_now(hubspot.name, {RecordObject.CONTACT: ids}, SyncTrigger.MANUAL))
    assert not pushed.failures
    kept_crm_id, other_crm_id = hubspot.crm_id("ada@example.com"), hubspot.crm_id("ada+news@example.com")
    calls: list[tuple[str, int]] = []
    for owner, names in MERGE_STORE_CALLS.items():
        for name in names:
            monkeypatch.setattr(owner, name, recorded_call(f"{owner.__name__}.{name}", getattr(owner, name), calls))
    dialog = first_duplicates_planned(qtbot, panel)
    assert "hubspot-marketing: HubSpot merges" in dialog.crm_label.text()
    merge_confirmed(qtbot, dialog)
    qtbot.waitUntil(lambda: panel.model.total == 5 and not panel.model.busy, timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending and not dialog.tasks.pending, timeout=10_000)

    made = {name for name, _ in calls}
    assert made >= {f"{owner.__name__}.{name}" for owner, names in MERGE_STORE_CALLS.items() for name in names}
    gui = threading.get_ident()
    assert [name for name, thread in calls if thread == gui] == [], "the merge's store work ran on the GUI thread"
    assert {thread for name, thread in calls if name == "DuplicateStore.finish_merge"} == {worker}
    assert f"{hubspot.name}: contact {other_crm_id} merged into {kept_crm_id}" in dialog.result_label.text()
    assert workspace.contacts.find("ada+news@example.com") is None
    dialog.close()


def recorded_call(name: str, method: Callable[..., Any], calls: list[tuple[str, int]]) -> Callable[..., Any]:
    """``method``, adding its name and the thread of each call to ``calls``."""
    @functools.wraps(method)
    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, threading.get_ident()))
        return method(*args, **kwargs)

    return recording


class HeldRead:
    """``PeopleService.detail`` held back for one person until released (a slow store for them alone)."""

    def __init__(self, service: PeopleService, held_id: int) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self._detail = service.detail
        self._held_id = held_id

    def detail(self, obj: RecordObject, local_id: int) -> PersonDetail:
        if local_id != self._held_id:
            return self._detail(obj, local_id)
        self.started.set()
        assert self.release.wait(10), "the held read was never released"
        try:
            return self._detail(obj, local_id)
        finally:
            self.finished.set()


def hold_read_of(panel: PeoplePanel, email: str) -> HeldRead:
    line = panel.model.line(row_of(panel, email))
    assert line is not None
    held = HeldRead(panel.service, line.id)
    panel.service.detail = held.detail  # type: ignore[method-assign]
    return held


def test_picking_a_then_b_shows_b_even_when_a_is_answered_last(qtbot: QtBot, panel: PeoplePanel) -> None:
    held = hold_read_of(panel, "ada@example.com")
    click_row(panel.table, row_of(panel, "ada@example.com"))
    qtbot.waitUntil(held.started.is_set, timeout=5000)
    pane = panel.detail_pane
    assert pane.detail is None and pane.title.text() == "Reading Ada Lovelace…"
    assert not pane.sync_one_button.isEnabled() and not pane.undo_button.isEnabled(), "no actions on nobody"

    click_row(panel.table, row_of(panel, "grace@example.com"))
    qtbot.waitUntil(lambda: shown_email(panel) == "grace@example.com", timeout=5000)
    held.release.set()
    qtbot.waitUntil(held.finished.is_set, timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)
    QApplication.processEvents()

    assert shown_email(panel) == "grace@example.com", "A's late answer replaced B"
    assert "Grace Hopper" in pane.title.text()
    assert panel.table.currentIndex().row() == row_of(panel, "grace@example.com")


def test_a_new_filter_drops_the_answer_for_the_person_picked_before(qtbot: QtBot, panel: PeoplePanel) -> None:
    held = hold_read_of(panel, "ada@example.com")
    click_row(panel.table, row_of(panel, "ada@example.com"))
    qtbot.waitUntil(held.started.is_set, timeout=5000)
    QTest.keyClicks(panel.filter_edit, "grace")
    qtbot.waitUntil(lambda: panel.model.total == 1 and not panel.model.busy, timeout=5000)
    held.release.set()
    qtbot.waitUntil(held.finished.is_set, timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)
    QApplication.processEvents()

    assert panel.detail_pane.detail is None, "a person no longer in the list was drawn"
    assert panel.detail_pane.title.text() == "Select a person to see their details"


def test_a_read_under_way_when_the_panel_goes_away_ends_quietly(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    panel = open_panel(qtbot, workspace, closed_by_qtbot=False)
    campaigns_asked, campaigns_released = threading.Event(), threading.Event()
    campaign_names = panel.service.campaign_names

    def held_campaign_names() -> list[str]:
        campaigns_asked.set()
        assert campaigns_released.wait(10), "the campaign read was never released"
        return campaign_names()

    panel.service.campaign_names = held_campaign_names  # type: ignore[method-assign]
    panel.reload()  # after an import, say: the list, then the campaigns, on the reading thread
    qtbot.waitUntil(lambda: campaigns_asked.is_set() and not panel.model.busy, timeout=5000)
    held = hold_read_of(panel, "ada@example.com")
    click_row(panel.table, row_of(panel, "ada@example.com"))
    qtbot.waitUntil(held.started.is_set, timeout=5000)
    reading = panel.tasks.pending
    assert len(reading) == 1, "the person is being read"
    panel.close()
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not isValid(panel)
    held.release.set()
    campaigns_released.set()
    qtbot.waitUntil(held.finished.is_set, timeout=5000)
    qtbot.waitUntil(lambda: all(task.done() for task in reading), timeout=5000)
    qtbot.wait(50)  # the campaigns' answer, had it been handed over

    assert all(not task.cancelled() and task.exception() is None for task in reading)
    assert reading[0].result() is None, "nothing drawn"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_closing_the_window_drops_the_person_being_read(
    qtbot: QtBot, panel: PeoplePanel, caplog: pytest.LogCaptureFixture
) -> None:
    held = hold_read_of(panel, "ada@example.com")
    click_row(panel.table, row_of(panel, "ada@example.com"))
    qtbot.waitUntil(held.started.is_set, timeout=5000)
    reading = panel.tasks.pending
    assert len(reading) == 1
    panel.stop_reading()  # what the window does as it closes
    qtbot.waitUntil(lambda: reading[0].done(), timeout=5000)
    held.release.set()
    qtbot.waitUntil(held.finished.is_set, timeout=5000)
    QApplication.processEvents()

    assert reading[0].cancelled()
    assert panel.detail_pane.detail is None and not panel.model.reading
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_row_picked_before_its_page_is_read_is_shown_once_it_arrives(
    qtbot: QtBot, workspace: Workspace, qasync_loop: qasync.QEventLoop, reads: StoreReads
) -> None:
    workspace.contacts.save_many(person(number) for number in range(1, 451))
    panel = PeoplePanel(PeopleService(workspace.database, workspace.social, workspace.sync))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitUntil(lambda: panel.model.total == 450 and not panel.model.busy, timeout=5000)
    far = 420  # on the third page: not on screen, so not read yet
    assert panel.model.held_line(far) is None
    reads.recording = True
    panel.table.selectRow(far)
    assert panel.detail_pane.title.text() == "Reading the person…" and panel.detail_pane.detail is None
    qtbot.waitUntil(lambda: panel.detail_pane.detail is not None, timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)

    line = panel.model.held_line(far)
    assert line is not None and shown_email(panel) == line.email
    assert reads.names >= {"page"} | DETAIL_READS, reads.calls
    assert reads.on_the_gui_thread() == [], "read on the GUI thread"


def test_people_passed_before_their_read_started_are_not_read(qtbot: QtBot, panel: PeoplePanel) -> None:
    read_ids: list[int] = []
    detail = panel.service.detail

    def recording_detail(obj: RecordObject, local_id: int) -> PersonDetail:
        read_ids.append(local_id)
        return detail(obj, local_id)

    panel.service.detail = recording_detail  # type: ignore[method-assign]
    ids = {}
    for email in ("ada@example.com", "grace@example.com"):
        line = panel.model.line(row_of(panel, email))
        assert line is not None
        ids[email] = line.id
    # Two picks before the loop runs again (a key held down): the first one's read has not started yet.
    panel.show_person(row_of(panel, "ada@example.com"))
    panel.show_person(row_of(panel, "grace@example.com"))
    qtbot.waitUntil(lambda: shown_email(panel) == "grace@example.com", timeout=5000)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)

    assert read_ids == [ids["grace@example.com"]]


def test_the_campaigns_of_an_older_reload_are_dropped(qtbot: QtBot, panel: PeoplePanel) -> None:
    first_asked, release = threading.Event(), threading.Event()
    answers = iter([["Old campaign"], ["New campaign"]])

    def campaign_names() -> list[str]:
        answer = next(answers)
        if answer == ["Old campaign"]:
            first_asked.set()
            assert release.wait(10), "the first read was never released"
        return answer

    panel.service.campaign_names = campaign_names  # type: ignore[method-assign]
    combo = panel.campaign_combo
    offered: set[str] = set()

    def note_offered(*_: object) -> None:
        offered.update(combo.itemText(i) for i in range(combo.count()))

    combo.model().rowsInserted.connect(note_offered)
    combo.model().dataChanged.connect(note_offered)
    panel.reload()  # after an import, say
    qtbot.waitUntil(first_asked.is_set, timeout=5000)
    panel.reload()  # after a merge, while the first is still being read
    release.set()
    qtbot.waitUntil(lambda: combo.findText("New campaign") >= 0, timeout=5000)
    qtbot.waitUntil(lambda: not panel.model.busy and panel.model.total == 3, timeout=5000)

    assert "Old campaign" not in offered, "the older answer was drawn"
    assert [combo.itemText(i) for i in range(combo.count())] == ["All campaigns", "New campaign"]


def test_the_duplicates_dialog_waits_for_its_merge_and_closes_quietly_while_it_looks(
    qtbot: QtBot, panel: PeoplePanel, workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """Closed (Escape) while a merge went on, the dialog was deleted under it: the merge was done, but People never
    heard of it (no "Merged …", the merged contact still listed) and a traceback went to the log. Now the dialog
    stays until its merge ends, Close off meanwhile; closed while it still looks for duplicates, it ends quietly."""
    QTest.mouseClick(panel.duplicates_button, Qt.MouseButton.LeftButton)
    looking = panel.duplicates_dialog
    assert looking is not None and looking.searching
    QTest.keyClick(looking, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not panel.tasks.pending, timeout=5000)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "closing while it looked failed a task"

    dialog = first_duplicates_planned(qtbot, panel)
    gate = asyncio.Event()
    merge = panel.service.duplicates.merge

    async def held_merge(*args: Any) -> Any:
        await gate.wait()
        return await merge(*args)

    monkeypatch.setattr(panel.service.duplicates, "merge", held_merge)
    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
    box = dialog.confirm_box
    assert box is not None
    QTest.mouseClick(next(b for b in box.buttons() if b.text() == "Merge"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.merging, timeout=5000)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.wait(50)
    assert isValid(dialog) and dialog.isVisible(), "the dialog waits for the merge"
    assert not dialog.close_button.isEnabled()
    gate.set()
    qtbot.waitUntil(lambda: panel.notice.text().startswith("Merged ada+news@example.com"), timeout=10_000)
    qtbot.waitUntil(lambda: panel.model.total == 2 and not panel.model.busy, timeout=5000)
    assert dialog.close_button.isEnabled()
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
