"""The People panel: contacts and leads in a windowed, filtered, SQL-sorted table, one person's whole story in a
detail pane (open a CRM record, sync one now, undo one change), a CSV/JSONL import with a preview of the refused
rows before anything is saved, and likely duplicates with a per-field merge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTabBar,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.app.change_undo import undoable
from crm_desktop.app.duplicates import DuplicateReport, MergeError, MergePlan, MergeReport
from crm_desktop.app.errors import ProviderError, StoreError, SyncAlreadyRunning, VaultError
from crm_desktop.app.field_mapping import local_field_label
from crm_desktop.app.forget import CRM_RECORDS_STAY, ERASED_WORDS, ForgetOutcome, ForgetReport, LinkedRecord
from crm_desktop.app.imports import DuplicateRecordError, EditReport, ImportProgress, ImportReport
from crm_desktop.app.people import (
    BLANK_STAYS_HERE,
    AuditLine,
    ChangeUndoRefused,
    ChangeUndoReport,
    CrmLinkLine,
    CrmLinkUnavailable,
    ImportPreview,
    NotFoundError,
    PeopleQuery,
    PeopleService,
    PersonDetail,
    SyncOneResult,
    SyncState,
    undone_text,
)
from crm_desktop.app.record_files import READABLE_SUFFIXES, custom_columns_in_words
from crm_desktop.app.text import plural
from crm_desktop.domain.errors import InvalidRecordError
from crm_desktop.domain.models import Provider, SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import AttributionModel, CreditedTouchpoint
from crm_desktop.ui.columns import ColumnChoice
from crm_desktop.ui.import_rows_model import NotKeptRowsModel, RefusedRowsModel
from crm_desktop.ui.integrations_model import CRM_NAMES
from crm_desktop.ui.people_model import SORT_COLUMNS, PeopleTableModel, PersonColumn
from crm_desktop.ui.person_edit_dialog import PersonEditDialog
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.widgets import (
    AsksFirst,
    EmptyTableNote,
    Notice,
    PanelHeading,
    RowKeys,
    action_button,
    ask_where_to_save,
    column_width_for,
    fill_table,
    fit_columns_to_view,
    hold_while_open,
    leave_on_tab,
    open_at_size,
    refit_on_new_look,
    row_keys,
    scrolling_page,
    selected_row,
    set_tone,
    show_rows_in_full,
    small_table,
    small_view,
    span_lines,
)
from crm_desktop.ui.wording import (
    MODEL_NAMES,
    PLATFORM_NAMES,
    TOUCHPOINT_NAMES,
    error_sentence,
    local_time,
    named,
    short_time,
)

logger = logging.getLogger(__name__)

#: The platform list's data of a "Reached on" entry: this prefix and the platform's value.
REACHED = "reached:"
#: How long the filter waits after the last key before querying (typing a name is one query, not one per key).
FILTER_DELAY_MS = 200

SYNC_STATE_NAMES: dict[str, str] = {
    SyncState.LINKED: "Linked",
    SyncState.NOT_LINKED: "Not linked",
    SyncState.FAILED: "Failed",
}


def row_summary(accessible_name: str) -> QLabel:
    """The box under a detail table that says its selected row in full (hidden until a row is selected)."""
    label = QLabel()
    label.setObjectName("rowSummary")
    label.setWordWrap(True)
    label.setAccessibleName(accessible_name)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def acting_tab(table: QTableWidget, summary: QLabel, buttons: list[QPushButton], result: QLabel) -> QWidget:
    """A detail tab that acts on its table's selected row: the table, the row in full, the buttons, and what the
    last press did."""
    tab = QWidget()
    layout = QVBoxLayout(tab)
    layout.setContentsMargins(0, 4, 0, 0)
    layout.addWidget(table, 1)
    layout.addWidget(summary)
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    layout.addLayout(row)
    layout.addWidget(result)
    return tab


def change_text(change: AuditLine) -> str:
    """A recorded change's values: "First Co → Second Co" ("—" for none)."""
    return f"{change.before or '—'} → {change.after or '—'}"


def change_origin(change: AuditLine) -> str:
    """When a recorded change was made, to the second, by what, and where it was written when that was the CRM."""
    where = ", written in the CRM" if change.side == "crm" else ""
    return f"{local_time(change.at, seconds=True)} by {change.source}{where}"


def link_summary(link: CrmLinkLine) -> tuple[str, str]:
    """What the CRM records tab says under its table of the selected record, and its tone: the record's state, when
    it was last synced and its last error in full, which the narrow table can only show cut short or off to the
    right."""
    crm = CRM_NAMES.get(Provider(link.provider), link.provider)
    if link.crm_id is None:
        said = f"{link.integration}: not in {crm} yet. “Sync this one now” sends it."
    else:
        said = f"{link.integration}: {crm} record {link.crm_id}, last synced {local_time(link.last_synced)}."
    if link.state == SyncState.FAILED or link.last_error:
        return f"{said}\nThe last sync of it failed: {link.last_error or 'no reason was given'}", "error"
    return said, "ok" if link.crm_id is not None else "info"


def timeline_cut_text(shown: int, size: int) -> str:
    """The line under a timeline that shows only the newest of a person's entries."""
    return f"The {shown:,} newest of {size:,} entries: the {size - shown:,} older ones are not listed here."


class PersonDetailPane(QWidget):
    """One person: header, engagement score with its parts, and tabs for profiles, timeline, attribution, CRM
    records (open one in the CRM, sync this one now) and history (undo one change).

    Attributes:
        detail: the person shown (``None`` when nobody is selected).
        title, score_label, breakdown_label: the header.
        tabs: the detail tabs; profiles_table, timeline_table, attribution_table, links_table, history_table.
        open_button, sync_one_button, links_result: the CRM records tab's actions and what the last one did.
        undo_button, history_result: the history tab's undo of the selected change and what it did.
        undoing: an undo of a change is in flight (its button stays disabled).
        keys: Enter and Delete on each table (Enter on a CRM record opens it in the CRM).
        edit_button: Edit… the person's own fields (F2 on the list does the same).
        forget_button: Forget… the person at their request (Delete on the list does the same).

    Signals:
        edit_requested(): edit the person on show.
        forget_requested(): forget the person on show (after asking).
        open_requested(int): open the CRM record on that row of ``links_table`` in the browser.
        sync_one_requested(int): push the person to the integration on that row now.
        undo_requested(int): undo the recorded change with that audit id.
        status_message(str): what Enter or Delete on one of its tables does not do.
    """

    edit_requested = Signal()
    forget_requested = Signal()
    open_requested = Signal(int)
    sync_one_requested = Signal(int)
    undo_requested = Signal(int)
    status_message = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detail: PersonDetail | None = None
        self.undoing = False
        self.title = QLabel("Select a person to see their details")
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.edit_button = action_button("Edit…", "Edit this person", "Change the person's name, company and other "
                                         "fields (F2); the next sync sends the changes to your CRMs")
        self.forget_button = action_button("Forget…", "Forget this person",
                                           "Erase everything held about this person here, at their request (GDPR "
                                           "right to erasure), and keep syncs and imports from bringing them back "
                                           "(Delete on the list)")
        self.score_label = QLabel()
        self.score_label.setAccessibleName("Engagement score")
        self.breakdown_label = QLabel()
        self.breakdown_label.setWordWrap(True)
        self.breakdown_label.setAccessibleName("Engagement score breakdown")
        self.profiles_table = small_table("Social profiles")
        self.timeline_table = small_table("Timeline")
        self.attribution_table = small_table("Attribution per model")
        self.attribution_table.horizontalHeader().setStretchLastSection(False)  # all five share the width alike
        self.attribution_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.attribution_note = QLabel()
        self.attribution_note.setWordWrap(True)
        self.links_table = small_table("CRM records")
        self.links_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.open_button = action_button("Open in CRM", "Open the record in the CRM",
                                         "Open the selected CRM record in your browser")
        self.sync_one_button = action_button("Sync this one now", "Sync this one now",
                                             "Push this person to the selected integration's CRM now")
        self.link_summary = row_summary("Selected CRM record")
        self.links_result = QLabel()
        self.links_result.setWordWrap(True)
        self.links_result.setAccessibleName("CRM record action result")
        self.links_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.history_table = small_table("History")
        self.history_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.undo_button = action_button("Undo this change", "Undo the selected change",
                                         "Put back the value from before the selected change; the next sync sends it")
        self.change_summary = row_summary("Selected change")
        self.history_result = QLabel()
        self.history_result.setWordWrap(True)
        self.history_result.setAccessibleName("Undo result")
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Person details")
        attribution = QWidget()
        attribution_layout = QVBoxLayout(attribution)
        attribution_layout.setContentsMargins(0, 4, 0, 0)
        attribution_layout.addWidget(self.attribution_note)
        attribution_layout.addWidget(self.attribution_table, 1)
        # What an empty tab of a picked person means, and where its rows come from.
        self.profiles_empty_note = EmptyTableNote(self.profiles_table, (
            "No social profiles yet. An import with a network's columns (twitter_username, linkedin_url, …) or a "
            "conversation recorded with this person adds them."))
        self.timeline_empty_note = EmptyTableNote(self.timeline_table, (
            "No touchpoints yet. Posts, messages and conversations with this person show here as they are "
            "recorded."))
        self.tabs.addTab(self.profiles_table, "Profiles")
        self.tabs.addTab(self.timeline_table, "Timeline")
        self.tabs.addTab(attribution, "Attribution")
        self.tabs.addTab(acting_tab(self.links_table, self.link_summary, [self.open_button, self.sync_one_button],
                                    self.links_result), "CRM records")
        self.tabs.addTab(acting_tab(self.history_table, self.change_summary, [self.undo_button],
                                    self.history_result), "History")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.edit_button, 0, Qt.AlignmentFlag.AlignTop)
        header.addWidget(self.forget_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(header)
        layout.addWidget(self.score_label)
        layout.addWidget(self.breakdown_label)
        layout.addWidget(self.tabs, 1)
        self.open_button.clicked.connect(lambda: self._emit_for_link(self.open_requested))
        self.sync_one_button.clicked.connect(lambda: self._emit_for_link(self.sync_one_requested))
        self.undo_button.clicked.connect(self._emit_undo)
        self.edit_button.clicked.connect(self.edit_requested)
        self.forget_button.clicked.connect(self.forget_requested)
        self.links_table.itemSelectionChanged.connect(self._update_buttons)
        self.history_table.itemSelectionChanged.connect(self._update_buttons)
        say = self.status_message.emit
        read_only = "This list is read from the person's history; nothing is deleted from it."
        self.keys: list[RowKeys] = [
            row_keys(self.profiles_table, say=say, cannot_delete=read_only,
                     cannot_open="A profile's details are all in its row."),
            row_keys(self.timeline_table, say=say, cannot_delete=read_only,
                     cannot_open="A touchpoint's details are all in its row and the line under it."),
            row_keys(self.attribution_table, say=say, cannot_delete=read_only,
                     cannot_open="A touchpoint's credit under each model is on the line under it."),
            row_keys(self.links_table, on_open=self.open_requested.emit, say=say,
                     cannot_delete="A CRM record is deleted in the CRM itself, not from here."),
            row_keys(self.history_table, say=say, cannot_delete=read_only,
                     cannot_open="The selected change is in full under the list; “Undo this change” puts it back."),
        ]
        # Once per resize of the pane, and when a tab comes into sight (a tab not in sight when a person was
        # picked was measured at a size it did not have): not once per table and scroll bar.
        refit_on_new_look(self.tabs, self._fit_tables, on_resize=True)
        self.tabs.currentChanged.connect(lambda _tab: QTimer.singleShot(0, self, self._fit_tables))
        self.show_detail(None)

    def selected_link_row(self) -> int | None:
        """The row of the CRM records table that is selected (the first when only one)."""
        return selected_row(self.links_table)

    def selected_change(self) -> AuditLine | None:
        """The recorded change selected in the history."""
        row = selected_row(self.history_table)
        if self.detail is None or row is None or row >= len(self.detail.audit):
            return None
        return self.detail.audit[row]

    def _emit_for_link(self, signal: Any) -> None:
        row = self.selected_link_row()
        if row is not None:
            signal.emit(row)

    def _emit_undo(self) -> None:
        change = self.selected_change()
        if change is not None and undoable(change.field):
            self.undo_requested.emit(change.id)

    def _update_buttons(self) -> None:
        row = self.selected_link_row()
        link = self.detail.crm_links[row] if self.detail is not None and row is not None else None
        self.open_button.setEnabled(link is not None and link.crm_id is not None)
        if link is None:
            self.link_summary.hide()
        else:
            text, tone = link_summary(link)
            self.link_summary.setText(text)
            set_tone(self.link_summary, tone)
            self.link_summary.show()
        self.sync_one_button.setEnabled(link is not None)
        change = self.selected_change()
        self.undo_button.setEnabled(change is not None and undoable(change.field) and not self.undoing)
        if change is None or self.detail is None:
            self.change_summary.hide()
        else:
            field = local_field_label(self.detail.obj, change.field)
            self.change_summary.setText(f"{field}: {change_text(change)}\n{change_origin(change)}")
            set_tone(self.change_summary, "info")
            self.change_summary.show()

    def set_undoing(self, undoing: bool) -> None:
        """While an undo is in flight: its button disabled and the history busy."""
        self.undoing = undoing
        self.history_table.setCursor(Qt.CursorShape.BusyCursor if undoing else Qt.CursorShape.ArrowCursor)
        self._update_buttons()

    def show_reading(self, who: str | None) -> None:
        """While a person picked is read: nobody's details or actions on offer, and the title says whom. The tabs
        stay enabled, so Enter on the list still moves the keyboard into them."""
        self.show_detail(None)
        self.tabs.setEnabled(True)
        self.title.setText(f"Reading {who}…" if who else "Reading the person…")

    def show_detail(self, detail: PersonDetail | None) -> None:
        """Show ``detail`` (or the empty state)."""
        same_person = (detail is not None and self.detail is not None
                       and (detail.obj, detail.local_id) == (self.detail.obj, self.detail.local_id))
        link_row, history_row = self.selected_link_row(), self.history_table.currentRow()
        self.detail = detail
        self.tabs.setEnabled(detail is not None)
        self.edit_button.setEnabled(detail is not None and bool(detail.fields))
        self.forget_button.setEnabled(detail is not None)
        if not same_person:
            self.links_result.clear()
            self.history_result.clear()
        if detail is None:
            self.title.setText("Select a person to see their details")
            self.score_label.clear()
            self.breakdown_label.clear()
            for table in (self.profiles_table, self.timeline_table, self.attribution_table, self.links_table,
                          self.history_table):
                table.clear()
                table.setRowCount(0)
                table.setColumnCount(0)
            self.attribution_note.clear()
            self._update_buttons()
            return
        kind = "Lead" if detail.obj is RecordObject.LEAD else "Contact"
        heading = f"<b>{detail.name or detail.email}</b> · {kind}"
        if detail.name:
            heading += f"<br>{detail.email}"
        if detail.company:
            heading += f" · {detail.company}"
        self.title.setText(heading)
        score = detail.score
        if score is None:
            self.score_label.setText("Engagement score: — (no social activity yet)")
            self.breakdown_label.clear()
        else:
            self.score_label.setText(f"Engagement score: <b>{score.score:.1f}</b> / 100")
            self.breakdown_label.setText(
                f"Activity {score.activity:.1f} points from {plural(score.interactions, 'interaction')} → "
                f"{score.activity_part:.0%} of saturation · reach {plural(score.followers, 'follower')} → "
                f"{score.reach_part:.0%}"
            )
        fill_table(self.profiles_table, ["Platform", "Username", "Followers", "Profile"],
                   [[named(PLATFORM_NAMES, p.platform), p.username, f"{p.followers:,}", p.url or ""]
                    for p in detail.profiles], numbers=(2,))
        # The detail (a post, a conversation's messages) on a line of its own under its touchpoint: as a fifth
        # column it had a few pixels of the 400 px pane and scrolled the table sideways.
        timeline: list[list[str]] = []
        detail_lines: list[int] = []
        for e in detail.timeline:
            timeline.append([short_time(e.at), named(PLATFORM_NAMES, e.platform), named(TOUCHPOINT_NAMES, e.kind),
                             e.campaign or ""])
            if e.detail:
                detail_lines.append(len(timeline))
                timeline.append([e.detail, "", "", ""])
        if detail.timeline_size > len(detail.timeline):
            # Its oldest line is not this person's first touch: say so where the scrolling ends.
            detail_lines.append(len(timeline))
            timeline.append([timeline_cut_text(len(detail.timeline), detail.timeline_size), "", "", ""])
        fill_table(self.timeline_table, ["When", "Platform", "What", "Campaign"], timeline)
        span_lines(self.timeline_table, detail_lines, italic=True)
        self._show_attribution(detail)
        fill_table(self.links_table, ["Integration", "CRM", "CRM record id", "Last synced", "State", "Last error"],
                   [[link.integration, CRM_NAMES.get(Provider(link.provider), link.provider), link.crm_id or "—",
                     short_time(link.last_synced),
                     named(SYNC_STATE_NAMES, link.state), link.last_error or ""] for link in detail.crm_links])
        # Three columns, the change last with the room left, who made it in the tooltip and in full under the
        # table: six (seconds, field keys, before and after apart, source, side) left After cut and Source and
        # Side out of the 400 px pane.
        fill_table(self.history_table, ["When", "Field", "Change"],
                   [[short_time(a.at), local_field_label(detail.obj, a.field), change_text(a)] for a in detail.audit])
        for row, change in enumerate(detail.audit):
            for column in range(2):
                if (item := self.history_table.item(row, column)) is not None:
                    item.setToolTip(change_origin(change))
        self._fit_tables()
        if detail.crm_links:
            keep = link_row if same_person and link_row is not None else 0
            self.links_table.selectRow(min(keep, len(detail.crm_links) - 1))
        if same_person and 0 <= history_row < len(detail.audit):
            self.history_table.selectRow(history_row)
        self._update_buttons()

    def _fit_tables(self) -> None:
        """Fit the tabs' tables to the pane."""
        for table in (self.profiles_table, self.timeline_table, self.links_table, self.history_table):
            fit_columns_to_view(table)

    def _show_attribution(self, detail: PersonDetail) -> None:
        if detail.obj is not RecordObject.LEAD:
            self.attribution_note.setText("Attribution is worked out for leads; this contact is not one.")
            fill_table(self.attribution_table, [], [])
            return
        linear = detail.attribution.get(AttributionModel.LINEAR)
        touches = linear.touchpoints if linear is not None else []
        conversions = linear.conversions if linear is not None else []
        if len(conversions) > 1:
            self.attribution_note.setText(
                f"Converted {len(conversions)} times: each conversion's credit shared by the touchpoints before it, "
                "as Attribution counts it"
            )
        elif linear is not None and linear.converted_at is not None:
            self.attribution_note.setText(
                f"Converted {local_time(linear.converted_at)}: "
                f"credit of the {plural(len(touches), 'touchpoint')} before it"
            )
        else:
            self.attribution_note.setText(
                f"Not converted yet: the credit {plural(len(touches), 'touchpoint')} would earn now" if touches
                else "No touchpoints to credit yet."
            )
        models = list(AttributionModel)
        # One block per conversion for a lead converted more than once (each shares its own 100%), else one block.
        blocks: list[tuple[str | None, dict[AttributionModel, list[CreditedTouchpoint]]]]
        if len(conversions) > 1:
            blocks = [
                (f"Conversion {number} of {len(conversions)}: {local_time(conversion.timestamp)}"
                 + (f" · {conversion.value:,.2f} {conversion.currency}" if conversion.value is not None else "")
                 + ("" if conversion.touchpoints else " · no touchpoint before it"),
                 {m: detail.attribution[m].conversions[number - 1].touchpoints for m in models})
                for number, conversion in enumerate(conversions, start=1)
            ]
        else:
            blocks = [(None, {m: detail.attribution[m].touchpoints for m in models})]
        rows: list[list[str]] = []
        lines: list[int] = []
        for heading, credited in blocks:
            if heading is not None:
                lines.append(len(rows))
                rows.append([heading] + [""] * (len(models) - 1))
            for number, touch in enumerate(credited[AttributionModel.LINEAR]):
                kind = named(TOUCHPOINT_NAMES, touch.type).lower()
                said = f"{short_time(touch.timestamp)} · {named(PLATFORM_NAMES, touch.platform)} {kind}"
                lines.append(len(rows))
                rows.append([f"{said} · {touch.campaign}" if touch.campaign else said] + [""] * (len(models) - 1))
                rows.append([f"{credited[m][number].credit:.0%}" if number < len(credited[m]) else "" for m in models])
        # Each touchpoint on a line of its own across the table, its credit under each model on the next: in the
        # 400 px pane the five models' shares side by side and the touchpoint's whole name both fit.
        fill_table(self.attribution_table, [MODEL_NAMES[m].replace(" ", "\n") for m in models], rows,
                   numbers=range(len(models)))
        span_lines(self.attribution_table, lines)


class ImportPreviewDialog(QDialog):
    """What an import would do, with every refused row (line, field, reason), before anything is saved.

    Attributes:
        preview: the checked file.
        summary: the counts sentence.
        problems_table: the refused rows; Enter (or a double click) on one shows it in full in ``row_notice``,
            never presses Save.
        warnings_table: valid rows' values the import would not keep (a network's columns without its username),
            shown only when there are some.
        row_notice: the refused row Enter opened, or what Delete does not do.
        keys: Enter and Delete on the refused rows.
        save_button: saves the valid rows (disabled when there are none); the dialog's default button.
    """

    def __init__(self, preview: ImportPreview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        kind = "contacts" if preview.obj is RecordObject.CONTACT else "leads"
        self.setWindowTitle(f"Import {kind} from {preview.path.name}")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        parts = [f"{plural(preview.valid, 'valid row')}: {preview.new:,} new, "
                 f"{preview.existing:,} to update (already stored)", f"{len(preview.problems):,} refused"]
        if preview.forgotten:
            parts.append(f"{plural(preview.forgotten, 'row')} of people forgotten at their request, skipped")
        if preview.warnings:
            parts.append(f"{plural(len(preview.warnings), 'valid row')} with values not kept")
        # With no valid row Save is disabled: say what to do instead of promising what Save would do.
        if preview.valid:
            ending = "Nothing is saved until you press Save."
        elif preview.problems:
            ending = "There is nothing to save: fix the refused rows in the file and import it again."
        elif preview.forgotten:
            ending = "There is nothing to save."
        else:  # an empty file: its notice says so (a header and no rows), or this does
            ending = "" if preview.notices else "There is nothing to save: the file has no rows."
        text = "; ".join(parts) + "." + (f" {ending}" if ending else "")
        if preview.notices:
            text += " " + " ".join(preview.notices)
        if preview.custom_columns:
            said = custom_columns_in_words(preview.custom_columns)
            text += f" {said[0].upper()}{said[1:]}."
        self.summary.setText(text)
        # Views on models, not a widget per cell: a LinkedIn export of 30,000 connections, most without an email,
        # is 28,000 refused rows, whose cells would take the window's thread for seconds to build.
        self.problems_table = small_view("Refused rows", RefusedRowsModel.of(preview))
        self.problems_table.resizeColumnsToContents()
        self.problems_table.horizontalHeader().setStretchLastSection(True)
        # Saved rows whose network columns are dropped (no username there): said before Save, as the CLI says it.
        self.warnings_table = small_view("Values not kept", NotKeptRowsModel.of(preview))
        self.warnings_table.resizeColumnsToContents()
        self.warnings_table.horizontalHeader().setStretchLastSection(True)
        self.row_notice = Notice()
        self.row_notice.setAccessibleName("The selected refused row in full")
        self.keys = show_rows_in_full(
            self.problems_table, self.row_notice,
            cannot_delete="A refused row is fixed in the file itself: correct it there and import the file again.")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = QPushButton(f"Save {plural(preview.valid, 'valid row')}")
        self.save_button.setAccessibleName("Save the valid rows")
        self.save_button.setEnabled(preview.valid > 0)
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        if preview.problems:
            layout.addWidget(QLabel("Refused rows (fix them in the file and import it again):"))
            layout.addWidget(self.problems_table, 1)
            layout.addWidget(self.row_notice)
        else:
            self.problems_table.hide()
        if preview.warnings:
            layout.addWidget(QLabel("Values not kept (these rows are saved without them):"))
            layout.addWidget(self.warnings_table, 1)
        else:
            self.warnings_table.hide()
        layout.addWidget(buttons)
        # Enter outside the refused rows saves, as the preview asks; with nothing to save it cancels. (Set once the
        # buttons are in the dialog: a button not in one yet forgets it when the dialog picks its own.)
        default = self.save_button if preview.valid else buttons.button(QDialogButtonBox.StandardButton.Cancel)
        default.setDefault(True)
        open_at_size(self, 720, 140 + 280 * (bool(preview.problems) + bool(preview.warnings)))


#: What a blank put back or saved does to the CRMs when no mapping sends it (see ``blanks_kept_in_crms``).
_BLANK_STAYS_HERE = BLANK_STAYS_HERE


class DuplicatesDialog(QDialog, AsksFirst):
    """Likely duplicate contacts (same email, phone or social username) and those the CRMs reported; merge two
    with a per-field pick, locally and in each CRM whose API merges.

    Attributes:
        groups_table: one row per group of contacts sharing a value.
        reported_table: the CRMs' duplicate refusals.
        keep_combo, other_combo: the contact kept and the one merged into it.
        fields_table: per field, the kept and the other value; check "Take other" to keep the other's.
        keys: Enter on a group goes to the contact to keep; elsewhere Enter and Delete say what they do not do.
        crm_label: what happens in each CRM.
        merge_button: merges (after a confirmation).
        result_label: what the last search or merge did.
        report, plan: the last search and merge plan; searching: a search is running.

    Signals:
        merged(str): a merge finished; the argument says what it did.
    """

    merged = Signal(str)

    def __init__(self, service: PeopleService, tasks: BackgroundTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.tasks = tasks
        self.report: DuplicateReport | None = None
        self.searching = False
        self.merging = False
        self.plan: MergePlan | None = None
        self.setWindowTitle("Duplicate contacts")
        self.setAccessibleName("Duplicate contacts")
        self.groups_table = small_table("Likely duplicates")
        self.groups_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.reported_table = small_table("Duplicates the CRMs reported")
        self.keep_combo = QComboBox()
        self.keep_combo.setAccessibleName("Contact to keep")
        self.other_combo = QComboBox()
        self.other_combo.setAccessibleName("Contact to merge into it")
        self.fields_table = small_table("Field values to keep")
        self.crm_label = QLabel()
        self.crm_label.setWordWrap(True)
        self.crm_label.setAccessibleName("What happens in each CRM")
        self.merge_button = QPushButton("Merge…")
        self.merge_button.setAccessibleName("Merge the two contacts")
        self.merge_button.setEnabled(False)
        self.result_label = QLabel("Looking for duplicates…")
        self.result_label.setWordWrap(True)
        self.result_label.setAccessibleName("Duplicates result")
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        self.close_button = close.button(QDialogButtonBox.StandardButton.Close)

        pick = QHBoxLayout()
        pick.addWidget(QLabel("Keep"))
        pick.addWidget(self.keep_combo, 1)
        pick.addWidget(QLabel("and merge into it"))
        pick.addWidget(self.other_combo, 1)
        merge_box = QWidget()
        merge_layout = QVBoxLayout(merge_box)
        merge_layout.setContentsMargins(0, 0, 0, 0)
        merge_layout.addLayout(pick)
        merge_layout.addWidget(self.fields_table, 1)
        merge_layout.addWidget(self.crm_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.merge_button)
        buttons.addStretch(1)
        merge_layout.addLayout(buttons)
        tabs = QTabWidget()
        tabs.setAccessibleName("Duplicate kinds")
        tabs.addTab(self.groups_table, "Likely duplicates")
        tabs.addTab(self.reported_table, "Reported by the CRMs")
        self.kind_tabs = tabs
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(tabs)
        splitter.addWidget(merge_box)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([180, 380])
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Contacts that share a normalised email, an E.164 phone or a social username. Pick a "
                                "group, the contact to keep, and the values to keep; the other contact is merged "
                                "into it here and in every CRM whose API merges."))
        layout.itemAt(0).widget().setWordWrap(True)  # type: ignore[union-attr]
        layout.addWidget(splitter, 1)
        layout.addWidget(self.result_label)
        layout.addWidget(close)
        open_at_size(self, 860, 680)
        self.groups_table.itemSelectionChanged.connect(self._group_chosen)
        self.reported_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.reported_table.itemSelectionChanged.connect(self._reported_chosen)
        self.keep_combo.currentIndexChanged.connect(lambda _: self._pair_changed())
        self.other_combo.currentIndexChanged.connect(lambda _: self._pair_changed())
        self.merge_button.clicked.connect(self.confirm_merge)
        say = self.result_label.setText

        def to_keep(_row: int) -> None:
            self.keep_combo.setFocus(Qt.FocusReason.OtherFocusReason)

        self.keys = [
            row_keys(self.groups_table, on_open=to_keep,
                     say=say, cannot_delete="A group is found from the contacts themselves: merge two to end it."),
            row_keys(self.reported_table, on_open=to_keep, say=say,
                     cannot_delete="The CRMs' reports are kept with their runs; nothing is deleted here."),
            row_keys(self.fields_table, say=say, cannot_open="Tick “Take other” (Space) to keep the other's value.",
                     cannot_delete="A field is kept or taken from the other contact, not deleted."),
        ]

    def find_duplicates(self) -> asyncio.Task[DuplicateReport | None]:
        """Look for duplicates again, off the GUI thread (it reads every contact's email), and list them."""
        self.searching = True
        self.result_label.setText("Looking for duplicates…")
        return self.tasks.start(self._find(), name="find duplicates")

    async def _find(self) -> DuplicateReport | None:
        try:
            report = await asyncio.to_thread(self.service.duplicates.find)
        except StoreError as exc:
            if isValid(self):
                self.result_label.setText(f"Duplicates could not be read: {exc}")
            return None
        finally:
            if isValid(self):
                self.searching = False
        if isValid(self):  # closed while looking: nothing left to list them in
            self._show_report(report)
        return report

    def _show_report(self, report: DuplicateReport) -> None:
        self.report = report
        fill_table(self.groups_table, ["Why", "Shared value", "Contacts"],
                   [[group.reason.value.capitalize(), group.shared, ", ".join(email for _, email in group.contacts)]
                    for group in report.groups])
        fill_table(self.reported_table, ["Integration", "Contact", "What the CRM said", "When"],
                   [[r.integration, r.email, r.message, local_time(r.at)] for r in report.reported])
        for table in (self.groups_table, self.reported_table):
            table.resizeColumnsToContents()
            table.horizontalHeader().setStretchLastSection(True)
        self.result_label.setText(
            f"{plural(len(report.groups), 'group')} of likely duplicates; {len(report.reported)} reported by the CRMs."
            if report.groups or report.reported else "No likely duplicates found.")
        if report.groups:
            self.groups_table.selectRow(0)
        else:
            self._offer([])  # the two just merged (one deleted here) are no longer offered

    def _group_chosen(self) -> None:
        row = selected_row(self.groups_table)
        if self.report is None or row is None:
            return
        self._offer(list(self.report.groups[row].contacts))

    def _reported_chosen(self) -> None:
        """A CRM's refusal: the contact linked to the CRM record that holds the email, kept, and the refused one."""
        row = selected_row(self.reported_table)
        if self.report is None or row is None:
            return
        reported = self.report.reported[row]
        if reported.local_id is None or reported.holder_id is None or reported.holder_email is None:
            self._offer([])
            self.crm_label.setText(f"No other contact here is linked to {reported.integration}'s record "
                                   f"{reported.crm_id or '(none named)'}: nothing to merge {reported.email} with.")
            return
        self._offer([(reported.holder_id, reported.holder_email), (reported.local_id, reported.email)])

    def _offer(self, contacts: list[tuple[int, str]]) -> None:
        """Fill the Keep and "merge into it" boxes with these contacts (the first two picked) and plan."""
        for combo, chosen in ((self.keep_combo, 0), (self.other_combo, 1)):
            combo.blockSignals(True)
            combo.clear()
            for local_id, email in contacts:
                combo.addItem(email, local_id)
            combo.setCurrentIndex(min(chosen, combo.count() - 1))
            combo.blockSignals(False)
        self._pair_changed()

    def _pair_changed(self) -> asyncio.Task[MergePlan | None] | None:
        keep, other = self.keep_combo.currentData(), self.other_combo.currentData()
        if keep is None or other is None or keep == other:
            self._show_plan(None)
            if keep is not None and keep == other:
                self.crm_label.setText("Pick two different contacts.")
            return None
        return self.tasks.start(self._plan(int(keep), int(other)), name="merge plan")

    async def _plan(self, keep: int, other: int) -> MergePlan | None:
        try:
            plan = await self.service.duplicates.plan(keep, other)
        except (MergeError, ProviderError, VaultError) as exc:
            if isValid(self):
                self._show_plan(None)
                self.crm_label.setText(str(exc))
            return None
        if not isValid(self):
            return plan  # closed while it was worked out
        if (self.keep_combo.currentData(), self.other_combo.currentData()) == (keep, other):
            self._show_plan(plan)
        return plan

    def _show_plan(self, plan: MergePlan | None) -> None:
        self.plan = plan
        self.merge_button.setEnabled(plan is not None)
        if plan is None:
            fill_table(self.fields_table, [], [])
            self.crm_label.clear()
            return
        # The two addresses are in the Keep and "merge into it" boxes above; in a heading they were cut short.
        fill_table(self.fields_table, ["Field", "Kept contact", "Other contact", "Take other"],
                   [[f.label, f.keep or "—", f.other or "—", ""] for f in plan.fields])
        for column, email in ((1, plan.keep_email), (2, plan.other_email)):
            heading = self.fields_table.horizontalHeaderItem(column)
            if heading is not None:
                heading.setToolTip(email)
        for row, choice in enumerate(plan.fields):
            item = QTableWidgetItem("")
            item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            item.setCheckState(Qt.CheckState.Checked if choice.fills_blank else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, f"Take the other's {choice.label}")
            self.fields_table.setItem(row, 3, item)
        self.fields_table.resizeColumnsToContents()
        header = self.fields_table.horizontalHeader()
        header.setStretchLastSection(False)
        # The values may be long; the check box column needs only its header's width.
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        lines = []
        for step in plan.crm_steps:
            crm = CRM_NAMES[step.provider]
            if step.action == "merge":
                lines.append(f"{step.integration}: {crm} merges {step.other_crm_id} into {step.keep_crm_id}")
            elif step.action == "by hand":
                lines.append(f"{step.integration}: both are in {crm}: merge {step.other_crm_id} into "
                             f"{step.keep_crm_id} in {crm} itself (its API has no merge)")
            elif step.action == "move link":
                lines.append(f"{step.integration}: the kept contact takes over {crm} record {step.other_crm_id}")
        lines.append("Social profiles and custom fields the kept contact lacks come from the other. "
                     f"{plan.other_email} is then deleted here.")
        self.crm_label.setText("\n".join(lines))

    def taken_fields(self) -> set[str]:
        """The fields whose "Take other" box is checked."""
        if self.plan is None:
            return set()
        return {choice.field for row, choice in enumerate(self.plan.fields)
                if (item := self.fields_table.item(row, 3)) is not None
                and item.checkState() == Qt.CheckState.Checked}

    def confirm_merge(self) -> QMessageBox | None:
        """Ask before merging (a merge cannot be undone in the CRMs)."""
        if self.plan is None:
            return None
        plan = self.plan
        return self.ask_first("Merge contacts", f"Merge {plan.other_email} into {plan.keep_email}?", "Merge",
                              lambda: self.merge(plan),
                              detail="The CRMs that merge do it now and cannot take it back.")

    def reject(self) -> None:
        """Close (Close, Escape, the window's close button), but not while a merge is under way: it ends by saying
        what it did and having People read the list again, so the dialog waits for it, its Close button off."""
        if self.merging:
            return
        super().reject()

    def merge(self, plan: MergePlan) -> asyncio.Task[MergeReport | None]:
        """Merge the plan's two contacts with the fields checked."""
        self.merge_button.setEnabled(False)
        self.merging = True
        self.close_button.setEnabled(False)
        self.result_label.setText(f"Merging {plan.other_email} into {plan.keep_email}…")
        return self.tasks.start(self._merge(plan, self.taken_fields()), name="merge contacts")

    async def _merge(self, plan: MergePlan, take: set[str]) -> MergeReport | None:
        try:
            report = await self.service.duplicates.merge(plan.keep_id, plan.other_id, take)
        except (MergeError, ProviderError, VaultError, NotFoundError) as exc:
            self.result_label.setText(f"Not merged: {exc}")
            self.merge_button.setEnabled(True)
            return None
        finally:
            self.merging = False
            if isValid(self):  # gone only with the window, which stops the merge
                self.close_button.setEnabled(True)
        parts = [f"Merged {report.merged_email} into {plan.keep_email}"]
        if report.changed_labels:
            parts.append("took " + ", ".join(report.changed_labels))
        parts.extend(report.merged_in_crm)
        parts.extend(report.by_hand)
        text = "; ".join(parts) + "."
        self.merged.emit(text)
        found = await asyncio.to_thread(self.service.duplicates.find)
        if isValid(self):  # closed once the merge was done: People has said it already
            self._show_report(found)
            self.result_label.setText(text)
        return report


def forget_in_crms_label(linked: list[LinkedRecord]) -> str:
    """The Forget question's check box: ``Also delete their records in the CRMs (2 linked: HubSpot “hs”, …)``."""
    names = list(dict.fromkeys(record.label() for record in linked))
    return f"Also delete their records in the CRMs ({len(linked)} linked: {', '.join(names)})"


def import_summary(report: ImportReport) -> str:
    """The sentence an import ends with."""
    text = (f"Imported: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{len(report.problems)} refused")
    if report.warnings:
        text += f", {plural(len(report.warnings), 'row')} with values not kept"
    if len(report.skipped) == 1:
        text += f", 1 skipped ({report.skipped[0][1]}: {report.skipped[0][2]})"
    elif report.skipped:
        text += f", {len(report.skipped)} skipped (people forgotten at their request: not imported)"
    if report.run_id is not None:
        text += f" (run {report.run_id}; undo it from the Sync Monitor)"
    return text


class PeoplePanel(QWidget, AsksFirst):
    """Contacts and leads: filter, sort, page through them and see one person in full; import files.

    Attributes:
        service: the People service.
        kind_tabs: Contacts / Leads.
        filter_edit, platform_combo, campaign_combo, score_min, score_max, integration_combo, state_combo: filters.
        model, table: the paged list.
        count_label: how many match.
        detail_pane: the selected person.
        import_button: Import a CSV/JSONL file.
        new_button: New… adds a contact or lead by hand.
        export_button: Export… the people listed to CSV.
        notice: what the last action did.
        import_progress: while a file is checked or imported, the rows read of those it holds, then the save (busy).
        preview_dialog: the last import preview opened.
        edit_dialog: the person's edit form, while open.

    Signals:
        status_message(str): a line for the window's status bar.
        people_changed(): an import or an edit saved records.
        change_undone(int): one change was undone, by the run with that id.
        import_progressed(ImportProgress): how far an import or its check is, emitted on the thread it runs on
            (shown on the window's).
    """

    status_message = Signal(str)
    people_changed = Signal()
    change_undone = Signal(int)
    import_progressed = Signal(object)

    def __init__(
        self, service: PeopleService, integrations: list[tuple[int, str]] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.tasks = BackgroundTasks()
        self.preview_dialog: ImportPreviewDialog | None = None
        self.duplicates_dialog: DuplicatesDialog | None = None
        self.edit_dialog: PersonEditDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self._loaded = False
        self._select_first = False
        self._undoing_change: int | None = None
        self._forgetting = False
        self._asking_forget = False
        #: The Forget question's "Also delete their records in the CRMs" box, while a question offers it.
        self.forget_in_crms_box: QCheckBox | None = None
        #: The person the detail pane is to show, as (kind, local id), and the number of the newest read of them:
        #: only that read's answer is drawn.
        self._person_wanted: tuple[RecordObject, int] | None = None
        self._person_reads = 0
        self._person_task: asyncio.Task[PersonDetail | None] | None = None
        #: A row picked before its page was read: shown once the page arrives.
        self._row_waiting: int | None = None
        self._campaign_reads = 0

        heading = PanelHeading(
            "People", "Your contacts and leads with their social profiles, engagement, touchpoints, attribution and "
            "CRM records. Type to filter; click a column to sort."
        )
        self.kind_tabs = QTabBar()
        self.kind_tabs.setAccessibleName("Contacts or leads")
        self.kind_tabs.addTab("Contacts")
        self.kind_tabs.addTab("Leads")
        self.kind_tabs.setDrawBase(False)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name, email or company (Ctrl+F)")
        self.filter_edit.setAccessibleName("Filter people")
        self.filter_edit.setClearButtonEnabled(True)
        self.platform_combo = QComboBox()
        self.platform_combo.setAccessibleName("Platform")
        self.platform_combo.addItem("All platforms", None)
        for platform in SocialPlatform:
            self.platform_combo.addItem(named(PLATFORM_NAMES, platform), platform)
        # People reached on a platform (a touchpoint there): what the Attribution panel's platform rows count.
        self.platform_combo.insertSeparator(self.platform_combo.count())
        for platform in SocialPlatform:
            self.platform_combo.addItem(f"Reached on {named(PLATFORM_NAMES, platform)}", f"{REACHED}{platform.value}")
        self.campaign_combo = QComboBox()
        self.campaign_combo.setAccessibleName("Campaign")
        self.campaign_combo.addItem("All campaigns", None)
        self.score_min = QDoubleSpinBox()
        self.score_max = QDoubleSpinBox()
        for box, name, value in ((self.score_min, "Lowest engagement score", 0.0),
                                 (self.score_max, "Highest engagement score", 100.0)):
            box.setRange(0.0, 100.0)
            box.setDecimals(0)
            box.setValue(value)
            box.setAccessibleName(name)
            box.setKeyboardTracking(False)
        self.integration_combo = QComboBox()
        self.integration_combo.setAccessibleName("Integration")
        self.state_combo = QComboBox()
        self.state_combo.setAccessibleName("Sync state")
        self.state_combo.addItem("Any state", None)
        for state, name in SYNC_STATE_NAMES.items():
            self.state_combo.addItem(name, state)
        self.set_integrations(integrations or [])
        for combo in (self.platform_combo, self.campaign_combo, self.integration_combo, self.state_combo):
            # Narrow at the window's minimum size, as wide as the longest entry when there is room.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(11)
        # "Reached on Instagram" whole: the row keeps room for it at the window's smallest width.
        self.platform_combo.setMinimumContentsLength(max(len(self.platform_combo.itemText(i))
                                                         for i in range(self.platform_combo.count())))
        self.import_button = action_button("Import…", "Import a CSV or JSONL file",
                                           "Import contacts or leads from a CSV or JSONL file, with a preview first")
        self.new_button = action_button("New…", "Add a person", "Add a contact (or, on the Leads tab, a lead) by hand "
                                        "(Ctrl+N); the next sync sends it")
        self.duplicates_button = action_button(
            "Duplicates…", "Find duplicate contacts",
            "Contacts that look like one person, and those the CRMs reported; merge two")

        filters = QHBoxLayout()
        filters.addWidget(self.kind_tabs)
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.new_button)
        filters.addWidget(self.import_button)
        filters.addWidget(self.duplicates_button)
        more = QHBoxLayout()
        more.addWidget(self.platform_combo)
        more.addWidget(self.campaign_combo)
        more.addWidget(QLabel("Score"))
        more.addWidget(self.score_min)
        more.addWidget(QLabel("to"))
        more.addWidget(self.score_max)
        more.addStretch(1)
        # The sync-state filter on a line of its own, so the panel still fits the window's smallest width.
        sync_filters = QHBoxLayout()
        sync_filters.addWidget(QLabel("Sync state"))
        sync_filters.addWidget(self.integration_combo)
        sync_filters.addWidget(self.state_combo)
        sync_filters.addStretch(1)

        self.model = PeopleTableModel(service, PeopleQuery(), self, background=True)
        self.table = QTableView()
        self.table.setAccessibleName("People list")
        self.table.setModel(self.model)
        leave_on_tab(self.table)
        self.table.horizontalHeader().setSortIndicator(PersonColumn.EMAIL, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # keeps both ends of a long email
        self._fitting_columns = False
        self._columns_set_by_hand = False
        self.column_choice = ColumnChoice(self.table, "people", changed=self._fit_columns)
        self._fit_columns()
        refit_on_new_look(self.table, self._fit_columns, on_resize=True)
        header.sectionResized.connect(self._column_resized)
        header.sortIndicatorChanged.connect(self._sort_indicator_changed)
        # What an empty list means: nobody yet (and how to bring people in), or nobody these filters let through.
        self.empty_note = EmptyTableNote(self.table, "")
        self.count_label = QLabel()
        self.count_label.setAccessibleName("People count")
        self.export_button = action_button("Export…", "Export the people listed to CSV", "Save everyone the list "
                                           "shows, filtered and sorted as it is, to a CSV file that Import… reads back")
        self.detail_pane = PersonDetailPane()
        self.notice = Notice()
        self.import_progress = QProgressBar()
        self.import_progress.setAccessibleName("Import progress")
        self.import_progress.setTextVisible(False)
        self.import_progress.hide()
        # The file checked or imported, and which of the two ("Checking", "Importing"): the bar's words.
        self._importing = ""
        self._import_step = ""
        # Queued: the import tells it from its own thread, and widgets are changed on the window's alone.
        self.import_progressed.connect(self._show_import_progress, Qt.ConnectionType.QueuedConnection)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        under_list = QHBoxLayout()
        under_list.addWidget(self.count_label, 1)
        under_list.addWidget(self.export_button)
        left_layout.addLayout(under_list)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail_pane)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([640, 400])
        self._fit_detail_pane()
        refit_on_new_look(self.detail_pane.tabs, self._fit_detail_pane)

        layout = scrolling_page(self)
        layout.setContentsMargins(20, 16, 20, 12)
        layout.addWidget(heading)
        layout.addLayout(filters)
        layout.addLayout(more)
        layout.addLayout(sync_filters)
        layout.addWidget(self.notice)
        layout.addWidget(self.import_progress)
        layout.addWidget(self.splitter, 1)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filters)
        self.filter_edit.textChanged.connect(lambda _: self._filter_timer.start())
        for combo in (self.platform_combo, self.campaign_combo, self.integration_combo, self.state_combo):
            combo.currentIndexChanged.connect(lambda _: self.apply_filters())
        # Each end of the score range holds the other's limit: From above To would list nobody, and say nothing.
        self.score_min.valueChanged.connect(self.score_max.setMinimum)
        self.score_max.valueChanged.connect(self.score_min.setMaximum)
        self.score_min.valueChanged.connect(lambda _: self.apply_filters())
        self.score_max.valueChanged.connect(lambda _: self.apply_filters())
        self.kind_tabs.currentChanged.connect(lambda _: self.apply_filters())
        self.import_button.clicked.connect(self.choose_import_file)
        self.new_button.clicked.connect(self.new_person)
        self.export_button.clicked.connect(self.choose_export_file)
        self.duplicates_button.clicked.connect(self.open_duplicates)
        self.detail_pane.open_requested.connect(self.open_in_crm)
        self.detail_pane.sync_one_requested.connect(self.sync_one_now)
        self.detail_pane.undo_requested.connect(self.undo_change)
        self.detail_pane.edit_requested.connect(self.edit_person)
        self.detail_pane.forget_requested.connect(self.forget_person)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.activated.connect(self._open_row)
        self.keys = row_keys(
            self.table, on_open=lambda row: self._open_row(self.model.index(row, 0)), say=self.status_message.emit,
            on_delete=self.forget_person,
        )
        self.detail_pane.status_message.connect(self.status_message)
        self.model.reset_done.connect(self._count_changed)
        self.model.refreshed.connect(self._list_refreshed)
        self.model.busy_changed.connect(self._busy_changed)
        self.model.read_failed.connect(self._read_failed)
        self.model.dataChanged.connect(self._rows_arrived)
        find = QShortcut(QKeySequence.StandardKey.Find, self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.focus_filter)
        add = QShortcut(QKeySequence.StandardKey.New, self)
        add.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        add.activated.connect(self.new_person)
        edit = QShortcut(QKeySequence(Qt.Key.Key_F2), self.table)
        edit.setContext(Qt.ShortcutContext.WidgetShortcut)
        edit.activated.connect(self.edit_person)

    # -- the list's columns ----------------------------------------------------------------------------------

    #: Per column, the text it is made wide enough to show whole: a typical long value (measured in the table's own
    #: font, so the widths follow the theme and the system font size). Updated takes what is left.
    WIDEST_TEXTS: ClassVar[dict[PersonColumn, str]] = {
        PersonColumn.NAME: "Margaret Hamilton",
        PersonColumn.EMAIL: "barbara.lovelace32@example.com",
        PersonColumn.COMPANY: "Analytical Engines",
        PersonColumn.SCORE: "100.0",
        PersonColumn.PLATFORMS: "Instagram, LinkedIn",
    }
    #: Where the list is too narrow for Name, Email, Company and Score whole, these give way in this order (Email
    #: first), each down to the width of its text here; below that a long value elides in its middle. Names give
    #: way last and least: they are how the marketer finds a person.
    GIVE_WAY: ClassVar[dict[PersonColumn, str]] = {
        PersonColumn.EMAIL: "ada8@example.com",
        PersonColumn.COMPANY: "Babbage & Co",
        PersonColumn.NAME: "Ada Lovelace",
    }
    #: The columns kept in sight while the list has room for their narrowest widths.
    KEPT_IN_SIGHT = (PersonColumn.NAME, PersonColumn.EMAIL, PersonColumn.COMPANY, PersonColumn.SCORE)
    #: The columns that matter less, in the order they fold away (hidden by the list, not the marketer, and back
    #: when it widens) while the list has no room for them beside Name, Email, Company and Score whole, each with
    #: the text it needs at least (never less than its heading).
    FOLDS: ClassVar[dict[PersonColumn, str]] = {
        PersonColumn.UPDATED: "Today 09:26",
        PersonColumn.PLATFORMS: "Twitter/X",
    }

    def _fit_columns(self) -> None:
        """Size the columns to their text, never wider than the list: Updated and then Platforms fold away while
        there is no room for them beside Name, Email, Company and Score whole (on a 1,280 px laptop's window);
        where even those four do not fit whole, Email gives way, then Company, then Name (:attr:`GIVE_WAY`). Once
        the marketer drags a column, their widths stay."""
        if self._columns_set_by_hand:
            return
        self.table.ensurePolished()
        header = self.table.horizontalHeader()
        choice = self.column_choice
        self._fitting_columns = True
        try:
            for column in choice.folded:
                self.table.setColumnHidden(column, False)
            choice.folded.clear()
            widths = {column: column_width_for(self.table, (text,), column, slack=8)
                      for column, text in self.WIDEST_TEXTS.items()}
            least = {column: column_width_for(self.table, (text,), column, slack=8)
                     for column, text in self.FOLDS.items()}
            room = self.table.viewport().width()

            def shown_width(columns: Iterable[PersonColumn]) -> int:
                return sum(widths[c] if c in self.KEPT_IN_SIGHT else least[c] if c in least else widths[c]
                           for c in columns if not self.table.isColumnHidden(c))

            for column in self.FOLDS:
                if self.table.isColumnHidden(column) or shown_width(PersonColumn) <= room:
                    continue
                self.table.setColumnHidden(column, True)
                choice.folded.add(column)
            for column, narrowest_text in self.GIVE_WAY.items():
                overflow = shown_width(self.KEPT_IN_SIGHT) - room
                if overflow <= 0:
                    break
                narrowest = column_width_for(self.table, (narrowest_text,), slack=8)
                widths[column] = max(narrowest, widths[column] - overflow)
            platforms = PersonColumn.PLATFORMS
            if not self.table.isColumnHidden(platforms):  # what the others leave it, down to its least
                others = shown_width(c for c in PersonColumn if c is not platforms)
                widths[platforms] = max(least[platforms], min(widths[platforms], room - others))
            for column, width in widths.items():
                header.resizeSection(column, width)
        finally:
            self._fitting_columns = False

    def _column_resized(self, column: int, _old: int, _new: int) -> None:
        # The last column shown (Updated, unless it is hidden or folded) stretches with the list, and a column hidden
        # shrinks to nothing; any other column resized outside the fitting is the marketer's drag.
        header = self.table.horizontalHeader()
        shown = [c for c in range(header.count()) if not header.isSectionHidden(c)]
        if column not in shown or column == max(shown, key=header.visualIndex):
            return
        if not self._fitting_columns and column in self.WIDEST_TEXTS:
            self._columns_set_by_hand = True

    def _sort_indicator_changed(self, column: int, _order: Qt.SortOrder) -> None:
        # Platforms does not sort: the arrow goes back to the column the list is sorted by.
        if PersonColumn(column) in SORT_COLUMNS:
            return
        query = self.model.query
        sorted_by = next(c for c, sort in SORT_COLUMNS.items() if sort is query.sort)
        order = Qt.SortOrder.DescendingOrder if query.descending else Qt.SortOrder.AscendingOrder
        self.table.horizontalHeader().setSortIndicator(sorted_by, order)

    def _fit_detail_pane(self) -> None:
        # The detail pane never gets so narrow that its tabs scroll: History would be out of sight.
        tabs = self.detail_pane.tabs
        tabs.ensurePolished()
        margins = self.detail_pane.contentsMargins()
        self.detail_pane.setMinimumWidth(tabs.tabBar().sizeHint().width() + 2 * tabs.style().pixelMetric(
            QStyle.PixelMetric.PM_DefaultFrameWidth) + margins.left() + margins.right() + 8)

    # -- loading ---------------------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        """Read the first page the first time the panel is shown (not at window start)."""
        super().showEvent(event)
        if not self._loaded:
            self.reload()

    def reload(self) -> None:
        """Read the campaigns and the current query's count and first page again (after an import or a merge), on
        the list's reading thread: the GUI thread only draws what they read."""
        self._loaded = True
        self.apply_filters(force=True)  # asked first: the list's first page is what the user waits for
        self._campaign_reads += 1
        number = self._campaign_reads
        self.model.read_aside(self.service.campaign_names, lambda names: self._campaigns_arrived(number, names))

    def _campaigns_arrived(self, number: int, names: object) -> None:
        if number != self._campaign_reads or not isValid(self):
            return  # a newer read is on the way, or the panel is gone
        if isinstance(names, Exception):
            logger.warning("the campaign names could not be read: %s", names)
            return
        assert isinstance(names, list)
        current = self.campaign_combo.currentData()
        if current is not None and current not in names:
            names.append(current)  # the list is filtered by it: the filter keeps saying so
        self.campaign_combo.blockSignals(True)
        self.campaign_combo.clear()
        self.campaign_combo.addItem("All campaigns", None)
        for name in names:
            self.campaign_combo.addItem(name, name)
        found = self.campaign_combo.findData(current) if current is not None else 0
        self.campaign_combo.setCurrentIndex(max(found, 0))
        self.campaign_combo.blockSignals(False)

    def set_integrations(self, integrations: list[tuple[int, str]]) -> None:
        """The integrations the sync-state filter offers, as (id, name). The one chosen stays chosen (the list stays
        filtered by it); when it was removed, the list is read again for any integration, as the filter then says."""
        chosen = self.integration_combo.currentData()
        self.integration_combo.blockSignals(True)
        self.integration_combo.clear()
        self.integration_combo.addItem("Any integration", None)
        for integration_id, name in integrations:
            self.integration_combo.addItem(name, integration_id)
        self.integration_combo.setCurrentIndex(max(self.integration_combo.findData(chosen), 0) if chosen else 0)
        self.integration_combo.blockSignals(False)
        if self._loaded and self.integration_combo.currentData() != chosen:
            self.apply_filters()

    def current_query(self) -> PeopleQuery:
        """The query the filters describe (keeping the sort)."""
        low, high = self.score_min.value(), self.score_max.value()
        # Qt hands an enum stored as item data back as its plain value.
        platform, state = self.platform_combo.currentData(), self.state_combo.currentData()
        reached = str(platform).removeprefix(REACHED) if str(platform).startswith(REACHED) else None
        return replace(
            self.model.query,
            obj=RecordObject.LEAD if self.kind_tabs.currentIndex() == 1 else RecordObject.CONTACT,
            text=self.filter_edit.text(),
            platform=SocialPlatform(platform) if platform and reached is None else None,
            reached_on=SocialPlatform(reached) if reached else None,
            campaign=self.campaign_combo.currentData(),
            score_min=low if low > 0 else None,
            score_max=high if high < 100 else None,
            integration_id=self.integration_combo.currentData(),
            sync_state=SyncState(state) if state else None,
        )

    def apply_filters(self, force: bool = False) -> None:
        """Query the store with the filters as they are now."""
        self._filter_timer.stop()
        query = self.current_query()
        if not force and query == self.model.query and self.model.pages_loaded:
            return
        try:
            self.model.set_query(query)
        except Exception as exc:  # the store cannot be read: say so, keep the window usable
            logger.warning("cannot read the people list: %s", exc)
            self.notice.say(f"The people list could not be read: {exc}", "error")
            return
        self.show_person(None)

    def _count_changed(self, total: int) -> None:
        query = self.model.query
        kind = "lead" if query.obj is RecordObject.LEAD else "contact"
        self.count_label.setText(plural(total, kind))
        unfiltered = PeopleQuery(obj=query.obj, sort=query.sort, descending=query.descending)
        self.empty_note.label.setText(
            "Nobody matches these filters." if query != unfiltered
            else f"No {kind}s yet. Import… a CSV or JSONL file (a CRM's export will do), add one with New…, or "
                 f"sync an integration to bring its {kind}s in.")
        if self._select_first and total:
            self.table.selectRow(0)
        self._select_first = False

    def show_filtered(self, obj: RecordObject, *, text: str = "", campaign: str | None = None,
                      platform: SocialPlatform | None = None, reached_on: SocialPlatform | None = None) -> None:
        """Show the contacts or leads matching one thing only (an email, a campaign, a platform, the people reached
        on a platform: Enter on a run's record or an attribution row), the first of them selected once read; the
        other filters are cleared."""
        controls = (self.kind_tabs, self.filter_edit, self.platform_combo, self.campaign_combo, self.score_min,
                    self.score_max, self.integration_combo, self.state_combo)
        for control in controls:
            control.blockSignals(True)
        try:
            self.kind_tabs.setCurrentIndex(1 if obj is RecordObject.LEAD else 0)
            self.filter_edit.setText(text)
            wanted = (platform, platform.value) if platform is not None else (
                (f"{REACHED}{reached_on.value}",) if reached_on is not None else ())
            self.platform_combo.setCurrentIndex(next(
                (i for i in range(self.platform_combo.count()) if self.platform_combo.itemData(i) in wanted), 0))
            if campaign is not None and self.campaign_combo.findData(campaign) < 0:
                self.campaign_combo.addItem(campaign, campaign)
            self.campaign_combo.setCurrentIndex(max(self.campaign_combo.findData(campaign), 0) if campaign else 0)
            self.score_min.setValue(0.0)
            self.score_max.setValue(100.0)
            self.score_min.setMaximum(100.0)
            self.score_max.setMinimum(0.0)
            self.integration_combo.setCurrentIndex(0)
            self.state_combo.setCurrentIndex(0)
        finally:
            for control in controls:
                control.blockSignals(False)
        self._select_first = True
        if self._loaded:
            self.apply_filters(force=True)
        else:
            self.reload()

    def _busy_changed(self, busy: bool) -> None:
        # The list is empty while a new filter or sort is read; the count line says why.
        if busy:
            self.count_label.setText("Searching…")
            self.empty_note.label.setText("")  # not "nobody" before the list is read
        self.table.setCursor(Qt.CursorShape.BusyCursor if busy else Qt.CursorShape.ArrowCursor)

    def _read_failed(self, reason: str) -> None:
        self.count_label.setText("")
        self.notice.say(f"The people list could not be read: {reason}", "error")

    def stop_reading(self) -> None:
        """Stop the list's reading thread (the window is closing); reads still asked for are dropped, and so is the
        person being read."""
        self._filter_timer.stop()
        self._row_waiting = None
        if self._person_task is not None:
            self._person_task.cancel()
        self.model.close()

    def focus_filter(self) -> None:
        """Ctrl+F: put the cursor in the filter."""
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    # -- the detail pane -------------------------------------------------------------------------------------

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        self.show_person(selected_row(self.table))

    def _open_row(self, index: QModelIndex) -> None:
        self.show_person(index.row())
        self.detail_pane.tabs.setFocus()

    def show_person(self, row: int | None) -> asyncio.Task[PersonDetail | None] | None:
        """Show the person on ``row`` in the detail pane, read on a store thread (the pane says whom it is reading
        meanwhile; the person already on show stays until read again). Only the person picked last is drawn: the
        answer for one picked before is dropped. ``None`` when nobody is to be read now (no row, or the row's page
        is still being read: the person is read once it arrives)."""
        self._row_waiting = None
        line = self.model.held_line(row) if row is not None else None  # no store read here: a held page or none
        if line is None:
            self._person_wanted = None
            self._person_reads += 1  # an answer still on the way is for someone no longer picked
            if row is not None and 0 <= row < self.model.total:
                self._row_waiting = row  # its page was asked for: see _rows_arrived
                self.detail_pane.show_reading(None)
            else:
                self.detail_pane.show_detail(None)
            return None
        wanted = (self.model.query.obj, line.id)
        reading = self._person_task
        if wanted == self._person_wanted and reading is not None and not reading.done():
            return reading  # picked, then opened with Enter: one read
        shown = self.detail_pane.detail
        if shown is None or (shown.obj, shown.local_id) != wanted:
            self.detail_pane.show_reading(line.name or line.email)
        return self._read_person(*wanted, again=False, who=line.email)

    def _rows_arrived(self, top: QModelIndex, bottom: QModelIndex) -> None:
        waiting = self._row_waiting
        if waiting is None:
            return
        if top.row() <= waiting <= bottom.row():
            self.show_person(waiting)
        else:
            self.model.held_line(waiting)  # ask again if the request was dropped while the view scrolled by

    def show_written(self, records_written: bool = True) -> None:
        """Show what a sync run, an undo or a conflict decision wrote: the list's count and the rows on show are read
        again, keeping the person picked, when local records were written or the list is filtered by sync state
        (which any run may change); the person on show is read again in any case (their CRM records and history)."""
        if not self._loaded:
            return  # the first show reads everything
        query = self.model.query
        if records_written or query.sync_state is not None or query.integration_id is not None:
            self.model.refresh()
        self.refresh_detail()

    def _list_refreshed(self, total: int) -> None:
        self._count_changed(total)
        wanted = self._person_wanted
        if wanted is None or wanted[0] is not self.model.query.obj:
            return
        row = self.model.row_of(wanted[1])
        if row is not None and selected_row(self.table) != row:
            self.table.selectRow(row)  # the person picked moved (a pulled contact sorts before them)

    def refresh_detail(self) -> asyncio.Task[PersonDetail | None] | None:
        """Read the person on show (or being read) again, after a sync or an undo changed their CRM records or
        history, on a store thread; the pane shows them as they were until then. ``None`` when nobody is picked."""
        if self._person_wanted is None:
            return None
        return self._read_person(*self._person_wanted, again=True)

    def _read_person(
        self, obj: RecordObject, local_id: int, *, again: bool, who: str = "That person"
    ) -> asyncio.Task[PersonDetail | None]:
        """Start the newest read of one person; the reads started before it are not drawn."""
        self._person_wanted = (obj, local_id)
        self._person_reads += 1
        name = "read the person again" if again else "read the person"
        self._person_task = self.tasks.start(self._read_detail(self._person_reads, obj, local_id, again, who),
                                             name=name)
        return self._person_task

    async def _read_detail(
        self, number: int, obj: RecordObject, local_id: int, again: bool, who: str
    ) -> PersonDetail | None:
        def current() -> bool:  # still the newest read, and the panel still there to draw it
            return isValid(self) and number == self._person_reads

        try:
            detail = await asyncio.to_thread(self._detail_unless_outdated, number, obj, local_id)
        except NotFoundError:
            if not current():
                return None
            self._person_wanted = None
            self.detail_pane.show_detail(None)
            if not again:
                self.notice.say(f"{who} is no longer in the local store; the list was read again.", "info")
                self.model.reload()
            return None
        except Exception as exc:  # the store failed: a sentence, never a crash
            if not current():
                return None
            if again and self.detail_pane.detail is not None:  # the person as they were stays on show
                self.notice.say(error_sentence("Reading the person again", exc), "error")
            else:
                self._person_wanted = None
                self.detail_pane.show_detail(None)
                self.notice.say(error_sentence("Reading the person", exc), "error")
            return None
        if not current() or detail is None:
            return None  # another person was picked, or this one asked for again, meanwhile
        self.detail_pane.show_detail(detail)
        return detail

    def _detail_unless_outdated(self, number: int, obj: RecordObject, local_id: int) -> PersonDetail | None:
        """On a store thread: one person's detail, or ``None`` when a newer read was asked for while this one
        waited for a thread (holding Down through the list skips the people passed whose read had not started)."""
        if number != self._person_reads:
            return None
        return self.service.detail(obj, local_id)

    async def _read_again_if_picked(self, obj: RecordObject, local_id: int) -> None:
        """Read one person again after an action on them, if they are still the one picked."""
        if self._person_wanted == (obj, local_id):
            await self._read_person(obj, local_id, again=True)

    # -- one person's CRM records and history ---------------------------------------------------------------

    def _link(self, row: int) -> CrmLinkLine | None:
        detail = self.detail_pane.detail
        return detail.crm_links[row] if detail is not None and 0 <= row < len(detail.crm_links) else None

    def open_in_crm(self, row: int) -> asyncio.Task[str | None] | None:
        """Open the CRM record on ``row`` of the CRM records tab in the browser (its address is built from the
        integration's settings; HubSpot's portal id is asked for once)."""
        link, detail = self._link(row), self.detail_pane.detail
        if link is None or detail is None or link.crm_id is None:
            return None
        return self.tasks.start(self._open_in_crm(detail.obj, link), name=f"open {link.integration} record")

    async def _open_in_crm(self, obj: RecordObject, link: CrmLinkLine) -> str | None:
        assert link.crm_id is not None
        try:
            url = await self.service.record_url(link.integration, obj, link.crm_id)
        except (CrmLinkUnavailable, ProviderError, VaultError) as exc:
            self.detail_pane.links_result.setText(f"{link.integration}: cannot open the record: {exc}")
            return None
        if not QDesktopServices.openUrl(QUrl(url)):
            self.detail_pane.links_result.setText(f"{link.integration}: no browser opened {url}")
            return None
        self.detail_pane.links_result.setText(f"Opened {url}")
        return url

    def sync_one_now(self, row: int) -> asyncio.Task[SyncOneResult | None] | None:
        """Push the person on show to the integration on ``row`` now, and say what the CRM did."""
        link, detail = self._link(row), self.detail_pane.detail
        if link is None or detail is None:
            return None
        self.detail_pane.sync_one_button.setEnabled(False)
        self.detail_pane.links_result.setText(f"{link.integration}: sending…")
        return self.tasks.start(self._sync_one(link.integration, detail.obj, detail.local_id),
                                name=f"sync one to {link.integration}")

    async def _sync_one(self, integration: str, obj: RecordObject, local_id: int) -> SyncOneResult | None:
        result: SyncOneResult | None = None
        try:
            result = await self.service.sync_one(integration, obj, local_id)
            text = result.message + (f" (run {result.run_id})" if result.run_id else "")
        except (SyncAlreadyRunning, ProviderError, VaultError, NotFoundError) as exc:
            text = f"{integration}: not sent: {exc}"
        finally:
            self.detail_pane.sync_one_button.setEnabled(True)
        await self._read_again_if_picked(obj, local_id)
        self.detail_pane.links_result.setText(text)
        self.status_message.emit(text)
        return result

    def undo_change(self, audit_id: int, *, force: bool = False) -> asyncio.Task[ChangeUndoReport | None] | None:
        """Undo one recorded change on a store thread (the button disabled and "Undoing…" shown meanwhile); when
        its value changed since, ask before putting the old one back anyway. ``None`` while another undo runs."""
        if self._undoing_change is not None:
            return None
        self._undoing_change = audit_id
        self.detail_pane.set_undoing(True)
        self.detail_pane.history_result.setText("Undoing the change…")
        return self.tasks.start(self._undo_change(audit_id, force), name=f"undo change {audit_id}")

    async def _undo_change(self, audit_id: int, force: bool) -> ChangeUndoReport | None:
        try:
            report = await asyncio.to_thread(self.service.undo_change, audit_id, force=force)
        except ChangeUndoRefused as exc:
            if exc.changed_since and not force:
                self.detail_pane.history_result.setText("")
                self._ask_to_force_undo(audit_id, str(exc))
            else:
                self.detail_pane.history_result.setText(f"Not undone: {exc}")
            return None
        except Exception as exc:  # the store failed: a sentence in the pane, never a crash
            self.detail_pane.history_result.setText(error_sentence("Undoing the change", exc))
            return None
        finally:
            self._undoing_change = None
            self.detail_pane.set_undoing(False)
        self.model.refresh()
        if self._person_wanted is not None:
            await self._read_person(*self._person_wanted, again=True)
        if not isValid(self):
            return report  # the panel was closed meanwhile: nothing left to say it in
        text = undone_text(report)
        self.detail_pane.history_result.setText(text)
        self.status_message.emit(text)
        self.change_undone.emit(report.run_id)
        return report

    def _ask_to_force_undo(self, audit_id: int, reason: str) -> QMessageBox:
        return self.ask_first(
            "Undo this change", reason, "Undo anyway", lambda: self.undo_change(audit_id, force=True), warning=True,
            on_declined=lambda: self.detail_pane.history_result.setText("Not undone: the newer value was kept."))

    # -- export ----------------------------------------------------------------------------------------------

    def choose_export_file(self) -> QFileDialog:
        """Ask where to save the people listed (window-modal; returns at once)."""
        query = self.current_query()
        name = "leads.csv" if query.obj is RecordObject.LEAD else "contacts.csv"
        return ask_where_to_save(self, "file_dialog", "Export the people listed", name, "CSV files (*.csv)",
                                 lambda path: self.export_csv(path, query))

    def export_csv(self, path: Path, query: PeopleQuery | None = None) -> asyncio.Task[int | None]:
        """Write the people ``query`` (the list's, by default) lists to ``path`` on a store thread (Export…
        disabled meanwhile) and say how many."""
        query = query or self.current_query()
        self.export_button.setEnabled(False)
        self.notice.say(f"Exporting to {path.name}…", "info")
        return self.tasks.start(self._export_csv(path, query), name="export people")

    async def _export_csv(self, path: Path, query: PeopleQuery) -> int | None:
        try:
            written = await asyncio.to_thread(self.service.export_csv, query, path)
        except (OSError, StoreError) as exc:
            if isValid(self):
                self.export_button.setEnabled(True)
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                self.notice.say(f"The people could not be saved to {path}: {reason}", "error")
            return None
        if not isValid(self):
            return written
        self.export_button.setEnabled(True)
        kind = "lead" if query.obj is RecordObject.LEAD else "contact"
        text = f"Exported {plural(written, kind)} to {path}"
        self.notice.say(text, "ok")
        self.status_message.emit(text)
        return written

    # -- one person's own fields -----------------------------------------------------------------------------

    def edit_person(self) -> PersonEditDialog | None:
        """Open the edit form of the person on show (``None`` while nobody is, or they are still being read)."""
        detail = self.detail_pane.detail
        if detail is None or not detail.fields or self._person_wanted != (detail.obj, detail.local_id):
            self.status_message.emit("Pick a person first; F2 edits the one on show.")
            return None
        return self._open_form(PersonEditDialog(detail, self))

    def new_person(self) -> PersonEditDialog:
        """Open the form of a contact or lead (the tab on show) added by hand."""
        obj = RecordObject.LEAD if self.kind_tabs.currentIndex() == 1 else RecordObject.CONTACT
        return self._open_form(PersonEditDialog.for_new(obj, self))

    def _open_form(self, dialog: PersonEditDialog) -> PersonEditDialog:
        if self.edit_dialog is not None:  # one form at a time
            dialog.deleteLater()
            self.edit_dialog.raise_()
            return self.edit_dialog
        dialog.save_requested.connect(lambda values: self.save_edit(dialog, values))
        dialog.finished.connect(lambda _result: self._edit_closed(dialog))
        self.edit_dialog = dialog
        dialog.open()
        return dialog

    def _edit_closed(self, dialog: PersonEditDialog) -> None:
        if self.edit_dialog is dialog:
            self.edit_dialog = None
        dialog.deleteLater()

    def save_edit(self, dialog: PersonEditDialog, values: dict[str, str | None]) -> asyncio.Task[EditReport | None]:
        """Save an edit (or add a person) on a store thread; a refusal goes back to the form, a success closes it and
        reads the person and the list again (a person added is shown, alone in the list, with their details)."""
        return self.tasks.start(self._save_edit(dialog, values), name="add a person" if dialog.new else "save an edit")

    async def _save_edit(self, dialog: PersonEditDialog, values: dict[str, str | None]) -> EditReport | None:
        detail = dialog.detail
        try:
            if dialog.new:
                fields = {key: value for key, value in values.items() if key != "email"}
                report = await asyncio.to_thread(self.service.create, detail.obj, values.get("email") or "", fields)
            else:
                report = await asyncio.to_thread(self.service.edit, detail.obj, detail.local_id, values)
        except InvalidRecordError as exc:
            if isValid(dialog):
                dialog.refuse_record(exc)
            return None
        except DuplicateRecordError as exc:
            if isValid(dialog):
                dialog.refuse(str(exc), ["email"])
            return None
        except Exception as exc:  # gone meanwhile, or the store failed: a sentence in the form, never a crash
            if isValid(dialog):
                dialog.refuse(error_sentence("Saving the edit", exc))
            return None
        # A blank does not touch a CRM's value unless a mapping lets it wipe it (or fills in its default). Read
        # before the form closes, so the notice is there when it has.
        blanked = [] if dialog.new else [change.field for change in report.changes if change.new in (None, "")]
        kept: set[str] = set()
        if blanked:
            try:
                kept = await asyncio.to_thread(self.service.blanks_kept_in_crms, detail.obj, blanked)
            except Exception:  # saved all the same; without the mappings, say what a sync would try
                logger.warning("could not read the mappings to word a saved edit", exc_info=True)
        if isValid(dialog):
            dialog.accept()
        if not isValid(self):
            return report  # saved; the panel was closed meanwhile
        if dialog.new:
            text = f"Added {report.email} as a {detail.obj.value}; the next sync sends them to your CRMs"
            self.notice.say(text, "ok")
            self.status_message.emit(text)
            self.show_filtered(detail.obj, text=report.email)
            self.people_changed.emit()
            return report
        named = ", ".join(local_field_label(detail.obj, change.field) for change in report.changes)
        sent = [change for change in report.changes if change.field not in kept]
        cleared = ", ".join(local_field_label(detail.obj, change.field) for change in report.changes
                            if change not in sent)
        if not report.changes:
            text = f"{detail.email}: nothing to save, the values were already there"
        elif not cleared:
            text = (f"{detail.email}: saved {named}; the next sync sends "
                    f"{'it' if len(report.changes) == 1 else 'them'} to your CRMs")
        else:
            text = f"{detail.email}: saved {named}; "
            if sent:
                text += (f"the next sync sends {', '.join(local_field_label(detail.obj, c.field) for c in sent)} "
                         "to your CRMs; ")
            text += f"{cleared} {_BLANK_STAYS_HERE}"
        self.notice.say(text, "ok")
        self.status_message.emit(text)
        self.model.refresh()
        await self._read_again_if_picked(detail.obj, detail.local_id)
        self.people_changed.emit()
        return report

    # -- duplicates ------------------------------------------------------------------------------------------

    # -- forgetting a person at their request --------------------------------------------------------------

    def forget_person(self, row: int | None = None) -> asyncio.Task[QMessageBox | None] | None:
        """Ask, naming the person, what goes and their linked CRM records, before forgetting the person on ``row``
        of the list (the person on show when no row is given); the linked records are read on a store thread first,
        then the question opens. ``None`` when nobody is there to forget or a forgetting is under way."""
        if self._forgetting or self._asking_forget:
            return None
        who: tuple[str, str] | None = None
        if row is not None:
            line = self.model.held_line(row)
            if line is not None:
                who = (line.name or line.email, line.email)
        elif (shown := self.detail_pane.detail) is not None:
            who = (shown.name or shown.email, shown.email)
        if who is None:
            return None
        self._asking_forget = True
        return self.tasks.start(self._ask_forget(*who), name="ask before forgetting")

    async def _ask_forget(self, name: str, email: str) -> QMessageBox | None:
        try:
            linked = await asyncio.to_thread(self.service.forgetting.linked_records, email)
        except Exception as exc:  # the store failed: nothing asked, nothing erased; said, never a crash
            if isValid(self):
                self.notice.say(error_sentence("Reading the person's CRM records", exc), "error")
            return None
        finally:
            self._asking_forget = False
        if not isValid(self):
            return None
        named = email if name == email else f"{name} ({email})"
        crms = ("Note: the records in the CRMs are not deleted unless you tick the box below." if linked
                else f"Note: {CRM_RECORDS_STAY}.")
        check = QCheckBox(forget_in_crms_label(linked)) if linked else None
        box = self.ask_first(
            "Forget this person", f"Forget {named}?", "Forget",
            lambda: self._start_forget(email, in_crms=check is not None and check.isChecked()), warning=True,
            detail=f"This erases {ERASED_WORDS}, for the contact and the lead with this email, and cannot be "
                   f"undone. Syncs, imports, pushes and social events naming {email} are skipped from now on "
                   f"(“crm-desktop contacts unforget” lifts that). {crms}")
        if check is not None:
            check.setToolTip("Each CRM record is deleted first; if a CRM refuses, nothing is forgotten here, so "
                             "that the records left can still be found. HubSpot and Salesforce keep deleted "
                             "records in their recycle bins for a while.")
            box.setCheckBox(check)
        self.forget_in_crms_box = check
        return box

    def _start_forget(self, email: str, *, in_crms: bool = False) -> asyncio.Task[ForgetReport | None]:
        self._forgetting = True
        self.forget_in_crms_box = None
        self.detail_pane.forget_button.setEnabled(False)
        self.status_message.emit(f"Deleting {email}'s records in the CRMs…" if in_crms else f"Forgetting {email}…")
        return self.tasks.start(self._forget(email, in_crms), name="forget a person")

    async def _forget(self, email: str, in_crms: bool) -> ForgetReport | None:
        deleted: list[str] = []
        try:
            if in_crms:
                outcome = await self.service.forget_in_crms_first(email)
                deleted = [deletion.line() for deletion in outcome.deletions]
                if outcome.report is None:
                    self._not_forgotten(email, outcome)
                    return None
                report = outcome.report
            else:
                report = await asyncio.to_thread(self.service.forgetting.forget, email)
        except Exception as exc:  # the store failed: nothing was erased (one transaction); said, never a crash
            if isValid(self):
                self.notice.say(error_sentence("Forgetting the person", exc), "error")
                self.detail_pane.forget_button.setEnabled(self.detail_pane.detail is not None)
            return None
        finally:
            self._forgetting = False
        if not isValid(self):
            return report
        shown = self.detail_pane.detail
        if shown is not None and shown.email == report.email:
            self._person_wanted = None
            self._person_reads += 1  # a read still on the way is of someone no longer here
            self.detail_pane.show_detail(None)
        if in_crms:
            text = f"{'; '.join(deleted)}. {report.summary()}." if deleted else f"{report.summary()}."
        else:
            text = f"{report.summary()}. {CRM_RECORDS_STAY[0].upper()}{CRM_RECORDS_STAY[1:]}."
        self.notice.say(text, "ok")
        self.status_message.emit(text)
        self.reload()
        self.people_changed.emit()
        return report

    def _not_forgotten(self, email: str, outcome: ForgetOutcome) -> None:
        """Say which CRM refused and why, and that nothing was forgotten here."""
        if not isValid(self):
            return
        refused = "; ".join(deletion.line() for deletion in outcome.refused)
        done = [deletion.line() for deletion in outcome.deletions if deletion.outcome != "failed"]
        text = (f"{email} was not forgotten: {refused}. " + (f"Done: {'; '.join(done)}. " if done else "")
                + "Nothing was erased here, so that the records left can still be found: delete them in the CRM, "
                "or fix the cause and forget them again.")
        self.notice.say(text, "error")
        self.status_message.emit(text)
        self.detail_pane.forget_button.setEnabled(self.detail_pane.detail is not None)

    def open_duplicates(self) -> DuplicatesDialog:
        """Show likely duplicates and the CRMs' reports; a merge there refreshes the list."""
        if self.duplicates_dialog is not None:
            self.duplicates_dialog.raise_()
            self.duplicates_dialog.find_duplicates()
            return self.duplicates_dialog
        dialog = DuplicatesDialog(self.service, self.tasks, self)
        dialog.merged.connect(self._merged)
        hold_while_open(self, "duplicates_dialog", dialog)
        dialog.show()
        dialog.find_duplicates()
        return dialog

    def _merged(self, text: str) -> None:
        self.notice.say(text, "ok")
        self.status_message.emit(text)
        self.reload()
        self.people_changed.emit()

    # -- import ----------------------------------------------------------------------------------------------

    def choose_import_file(self) -> QFileDialog:
        """Ask for the file to import (window-modal; returns at once)."""
        endings = " ".join(f"*{suffix}" for suffix in sorted(READABLE_SUFFIXES))
        dialog = QFileDialog(self, "Import contacts or leads", str(Path.home()),
                             f"Contacts or leads ({endings});;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(lambda path: self.preview_import(Path(path)))
        dialog.finished.connect(dialog.deleteLater)
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def preview_import(self, path: Path) -> asyncio.Task[ImportPreviewDialog | None]:
        """Check ``path`` into the current tab's kind on a store thread (it reads the file and the records it
        updates; Import… disabled meanwhile) and open the preview; Save imports the valid rows."""
        obj = RecordObject.LEAD if self.kind_tabs.currentIndex() == 1 else RecordObject.CONTACT
        self._import_began("Checking", path.name)
        return self.tasks.start(self._preview_import(path, obj), name="check a file to import")

    async def _preview_import(self, path: Path, obj: RecordObject) -> ImportPreviewDialog | None:
        try:
            preview = await asyncio.to_thread(self.service.preview_import, path, obj,
                                              progress=self._tell_import_progress)
        except (ValueError, OSError, StoreError) as exc:
            if isValid(self):
                self._import_ended()
                self.notice.say(f"{path.name} cannot be imported: {exc}", "error")
            return None
        if not isValid(self):
            return None
        self._import_ended()
        self.notice.clear_notice()
        dialog = ImportPreviewDialog(preview, self)
        dialog.accepted.connect(lambda: self.save_import(preview))
        dialog.finished.connect(dialog.deleteLater)
        self.preview_dialog = dialog
        dialog.open()
        return dialog

    def save_import(self, preview: ImportPreview) -> asyncio.Task[ImportReport | None]:
        """Import the previewed file on a store thread (Import… disabled meanwhile), then show what it did and read
        the list again."""
        self._import_began("Importing", preview.path.name)
        return self.tasks.start(self._save_import(preview), name="import a file")

    def _import_began(self, step: str, name: str) -> None:
        """Import… off and the bar shown (busy until the rows are counted) while a file is checked or imported."""
        self.import_button.setEnabled(False)
        self.notice.say(f"{step} {name}…", "info")
        self._importing, self._import_step = name, step
        self.import_progress.setRange(0, 0)
        self.import_progress.show()

    def _tell_import_progress(self, progress: ImportProgress) -> None:
        """Pass the progress of an import or its check to the window's thread (a queued signal); a panel closed
        meanwhile is not told, and the import goes on."""
        if isValid(self):
            self.import_progressed.emit(progress)

    def _show_import_progress(self, progress: ImportProgress) -> None:
        """Show how far the import or its check is: a bar of the rows read, then a busy one while they are
        saved."""
        if not self._importing:
            return  # told after the import ended (a queued signal)
        if progress.saving or progress.total is None:
            self.import_progress.setRange(0, 0)
        else:
            # A bar's range is an int: a per mille of the rows keeps a file of billions within it.
            self.import_progress.setRange(0, 1000)
            self.import_progress.setValue(progress.rows_read * 1000 // progress.total if progress.total else 1000)
        self.notice.say(f"{self._import_step} {self._importing}: {progress.in_words()}", "info")

    def _import_ended(self) -> None:
        self._importing = ""
        self.import_progress.hide()
        self.import_button.setEnabled(True)

    async def _save_import(self, preview: ImportPreview) -> ImportReport | None:
        try:
            report = await asyncio.to_thread(self.service.import_file, preview.path, preview.obj,
                                             previewed=preview.fingerprint, progress=self._tell_import_progress)
        except (ValueError, OSError, StoreError) as exc:
            if isValid(self):
                self._import_ended()
                self.notice.say(f"{preview.path.name} cannot be imported: {exc}", "error")
            return None
        if not isValid(self):
            return report  # saved; the panel was closed meanwhile
        self._import_ended()
        text = import_summary(report)
        self.notice.say(text, "error" if report.problems and not (report.created or report.updated) else "ok")
        self.status_message.emit(text)
        self.reload()
        self.people_changed.emit()
        return report
