"""The People panel: contacts and leads in a lazily paged, filtered, SQL-sorted table, one person's whole story in a
detail pane, and a CSV/JSONL import with a preview of the refused rows before anything is saved."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTabBar,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.app.imports import ImportReport
from crm_desktop.app.people import ImportPreview, NotFoundError, PeopleQuery, PeopleService, PersonDetail, SyncState
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.domain.social import AttributionModel
from crm_desktop.ui.people_model import PeopleTableModel, PersonColumn
from crm_desktop.ui.widgets import Notice, PanelHeading
from crm_desktop.ui.wording import local_time, short_time

logger = logging.getLogger(__name__)

#: How long the filter waits after the last key before querying (typing a name is one query, not one per key).
FILTER_DELAY_MS = 200

MODEL_NAMES = {
    AttributionModel.FIRST_TOUCH: "First touch",
    AttributionModel.LAST_TOUCH: "Last touch",
    AttributionModel.LINEAR: "Linear",
    AttributionModel.TIME_DECAY: "Time decay",
    AttributionModel.POSITION_BASED: "Position based",
}
SYNC_STATE_NAMES = {
    SyncState.LINKED: "Linked",
    SyncState.NOT_LINKED: "Not linked",
    SyncState.FAILED: "Failed",
}


def fill_table(table: QTableWidget, headers: list[str], rows: list[list[str]]) -> None:
    """Replace a small read-only table's content."""
    table.clear()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setRowCount(len(rows))
    for row, values in enumerate(rows):
        for column, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip(value if len(value) > 40 else "")
            table.setItem(row, column, item)


def small_table(name: str) -> QTableWidget:
    """A read-only table of the detail pane."""
    table = QTableWidget()
    table.setAccessibleName(name)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    table.setWordWrap(False)
    return table


class PersonDetailPane(QWidget):
    """One person: header, engagement score with its parts, and tabs for profiles, timeline, attribution, CRM
    records and history.

    Attributes:
        detail: the person shown (``None`` when nobody is selected).
        title, score_label, breakdown_label: the header.
        tabs: the detail tabs; profiles_table, timeline_table, attribution_table, links_table, history_table.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.detail: PersonDetail | None = None
        self.title = QLabel("Select a person to see their details")
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score_label = QLabel()
        self.score_label.setAccessibleName("Engagement score")
        self.breakdown_label = QLabel()
        self.breakdown_label.setWordWrap(True)
        self.breakdown_label.setAccessibleName("Engagement score breakdown")
        self.profiles_table = small_table("Social profiles")
        self.timeline_table = small_table("Timeline")
        self.attribution_table = small_table("Attribution per model")
        self.attribution_note = QLabel()
        self.attribution_note.setWordWrap(True)
        self.links_table = small_table("CRM records")
        self.history_table = small_table("History")
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Person details")
        attribution = QWidget()
        attribution_layout = QVBoxLayout(attribution)
        attribution_layout.setContentsMargins(0, 4, 0, 0)
        attribution_layout.addWidget(self.attribution_note)
        attribution_layout.addWidget(self.attribution_table, 1)
        self.tabs.addTab(self.profiles_table, "Profiles")
        self.tabs.addTab(self.timeline_table, "Timeline")
        self.tabs.addTab(attribution, "Attribution")
        self.tabs.addTab(self.links_table, "CRM records")
        self.tabs.addTab(self.history_table, "History")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.score_label)
        layout.addWidget(self.breakdown_label)
        layout.addWidget(self.tabs, 1)
        self.show_detail(None)

    def show_detail(self, detail: PersonDetail | None) -> None:
        """Show ``detail`` (or the empty state)."""
        self.detail = detail
        self.tabs.setEnabled(detail is not None)
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
                f"Activity {score.activity:.1f} points from {score.interactions} interaction(s) → "
                f"{score.activity_part:.0%} of saturation · reach {score.followers:,} followers → "
                f"{score.reach_part:.0%}"
            )
        fill_table(self.profiles_table, ["Platform", "Username", "Followers", "Profile"],
                   [[p.platform, p.username, f"{p.followers:,}", p.url or ""] for p in detail.profiles])
        fill_table(self.timeline_table, ["When", "Platform", "What", "Campaign", "Detail"],
                   [[local_time(e.at), e.platform, e.kind.replace("_", " "), e.campaign or "", e.detail]
                    for e in detail.timeline])
        self._show_attribution(detail)
        fill_table(self.links_table, ["Integration", "CRM", "CRM record id", "Last synced", "State", "Last error"],
                   [[link.integration, link.provider, link.crm_id or "—", local_time(link.last_synced),
                     link.state, link.last_error or ""] for link in detail.crm_links])
        fill_table(self.history_table, ["When", "Field", "Before", "After", "Source", "Side"],
                   [[local_time(a.at, seconds=True), a.field, a.before or "", a.after or "", a.source, a.side]
                    for a in detail.audit])
        for table in (self.profiles_table, self.timeline_table, self.links_table, self.history_table,
                      self.attribution_table):
            table.resizeColumnsToContents()
            table.horizontalHeader().setStretchLastSection(True)

    def _show_attribution(self, detail: PersonDetail) -> None:
        if detail.obj is not RecordObject.LEAD:
            self.attribution_note.setText("Attribution is worked out for leads; this contact is not one.")
            fill_table(self.attribution_table, [], [])
            return
        linear = detail.attribution.get(AttributionModel.LINEAR)
        touches = linear.touchpoints if linear is not None else []
        if linear is not None and linear.converted_at is not None:
            self.attribution_note.setText(
                f"Converted {local_time(linear.converted_at)}: credit of the {len(touches)} touchpoint(s) before it"
            )
        else:
            self.attribution_note.setText(
                f"Not converted yet: the credit {len(touches)} touchpoint(s) would earn now" if touches
                else "No touchpoints to credit yet."
            )
        models = list(AttributionModel)
        rows = []
        for number, touch in enumerate(touches):
            row = [f"{short_time(touch.timestamp)} · {touch.platform.value} {touch.type.value.replace('_', ' ')}"]
            for model in models:
                credited = detail.attribution[model].touchpoints
                row.append(f"{credited[number].credit:.0%}" if number < len(credited) else "")
            row.append(touch.campaign or "")
            rows.append(row)
        # Two-line model names keep the five credit columns narrow enough for the pane.
        fill_table(self.attribution_table,
                   ["Touchpoint", *(MODEL_NAMES[m].replace(" ", "\n") for m in models), "Campaign"], rows)


class ImportPreviewDialog(QDialog):
    """What an import would do, with every refused row (line, field, reason), before anything is saved.

    Attributes:
        preview: the checked file.
        summary: the counts sentence.
        problems_table: the refused rows.
        save_button: saves the valid rows (disabled when there are none).
    """

    def __init__(self, preview: ImportPreview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        kind = "contacts" if preview.obj is RecordObject.CONTACT else "leads"
        self.setWindowTitle(f"Import {kind} from {preview.path.name}")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        parts = [f"{preview.valid} valid row(s): {preview.new} new, {preview.existing} update existing {kind}",
                 f"{len(preview.problems)} refused"]
        text = "; ".join(parts) + ". Nothing is saved until you press Save."
        if preview.notices:
            text += " " + " ".join(preview.notices)
        self.summary.setText(text)
        self.problems_table = small_table("Refused rows")
        fill_table(self.problems_table, ["Line", "Record", "Field", "Reason"],
                   [[str(p.line), p.record, p.field, p.reason] for p in preview.problems])
        self.problems_table.resizeColumnsToContents()
        self.problems_table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = QPushButton(f"Save {preview.valid} valid row(s)")
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
        else:
            self.problems_table.hide()
        layout.addWidget(buttons)
        self.resize(720, 420 if preview.problems else 140)


def import_summary(report: ImportReport) -> str:
    """The sentence an import ends with."""
    text = (f"Imported: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{len(report.problems)} refused")
    if report.run_id is not None:
        text += f" (run {report.run_id}; undo it from the Sync Monitor)"
    return text


class PeoplePanel(QWidget):
    """Contacts and leads: filter, sort, page through them and see one person in full; import files.

    Attributes:
        service: the People service.
        kind_tabs: Contacts / Leads.
        filter_edit, platform_combo, campaign_combo, score_min, score_max, integration_combo, state_combo: filters.
        model, table: the paged list.
        count_label: how many match.
        detail_pane: the selected person.
        import_button: Import a CSV/JSONL file.
        notice: what the last action did.
        preview_dialog: the last import preview opened.

    Signals:
        status_message(str): a line for the window's status bar.
        people_changed(): an import saved records.
    """

    status_message = Signal(str)
    people_changed = Signal()

    def __init__(
        self, service: PeopleService, integrations: list[tuple[int, str]] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.service = service
        self.preview_dialog: ImportPreviewDialog | None = None
        self.file_dialog: QFileDialog | None = None
        self._loaded = False

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
            self.platform_combo.addItem(platform.value.capitalize(), platform)
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
        self.import_button = QPushButton("Import…")
        self.import_button.setAccessibleName("Import a CSV or JSONL file")
        self.import_button.setToolTip("Import contacts or leads from a CSV or JSONL file, with a preview first")

        filters = QHBoxLayout()
        filters.addWidget(self.kind_tabs)
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.import_button)
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

        self.model = PeopleTableModel(service, PeopleQuery(), self)
        self.table = QTableView()
        self.table.setAccessibleName("People list")
        self.table.setModel(self.model)
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
        for column, width in ((PersonColumn.NAME, 120), (PersonColumn.EMAIL, 190), (PersonColumn.COMPANY, 130),
                              (PersonColumn.PLATFORMS, 110), (PersonColumn.SCORE, 64)):
            header.resizeSection(column, width)
        self.count_label = QLabel()
        self.count_label.setAccessibleName("People count")
        self.detail_pane = PersonDetailPane()
        self.notice = Notice()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.count_label)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail_pane)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([560, 480])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 12)
        layout.addWidget(heading)
        layout.addLayout(filters)
        layout.addLayout(more)
        layout.addLayout(sync_filters)
        layout.addWidget(self.notice)
        layout.addWidget(self.splitter, 1)

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DELAY_MS)
        self._filter_timer.timeout.connect(self.apply_filters)
        self.filter_edit.textChanged.connect(lambda _: self._filter_timer.start())
        for combo in (self.platform_combo, self.campaign_combo, self.integration_combo, self.state_combo):
            combo.currentIndexChanged.connect(lambda _: self.apply_filters())
        self.score_min.valueChanged.connect(lambda _: self.apply_filters())
        self.score_max.valueChanged.connect(lambda _: self.apply_filters())
        self.kind_tabs.currentChanged.connect(lambda _: self.apply_filters())
        self.import_button.clicked.connect(self.choose_import_file)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.activated.connect(self._open_row)
        self.model.reset_done.connect(self._count_changed)
        find = QShortcut(QKeySequence.StandardKey.Find, self)
        find.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        find.activated.connect(self.focus_filter)

    # -- loading ---------------------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        """Read the first page the first time the panel is shown (not at window start)."""
        super().showEvent(event)
        if not self._loaded:
            self.reload()

    def reload(self) -> None:
        """Read the campaigns and the current query's first page again."""
        self._loaded = True
        current = self.campaign_combo.currentData()
        self.campaign_combo.blockSignals(True)
        self.campaign_combo.clear()
        self.campaign_combo.addItem("All campaigns", None)
        for name in self.service.campaign_names():
            self.campaign_combo.addItem(name, name)
        found = self.campaign_combo.findData(current) if current is not None else 0
        self.campaign_combo.setCurrentIndex(max(found, 0))
        self.campaign_combo.blockSignals(False)
        self.apply_filters(force=True)

    def set_integrations(self, integrations: list[tuple[int, str]]) -> None:
        """The integrations the sync-state filter offers, as (id, name)."""
        self.integration_combo.blockSignals(True)
        self.integration_combo.clear()
        self.integration_combo.addItem("Any integration", None)
        for integration_id, name in integrations:
            self.integration_combo.addItem(name, integration_id)
        self.integration_combo.blockSignals(False)

    def current_query(self) -> PeopleQuery:
        """The query the filters describe (keeping the sort)."""
        low, high = self.score_min.value(), self.score_max.value()
        # Qt hands an enum stored as item data back as its plain value.
        platform, state = self.platform_combo.currentData(), self.state_combo.currentData()
        return replace(
            self.model.query,
            obj=RecordObject.LEAD if self.kind_tabs.currentIndex() == 1 else RecordObject.CONTACT,
            text=self.filter_edit.text(),
            platform=SocialPlatform(platform) if platform else None,
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
        self.detail_pane.show_detail(None)

    def _count_changed(self, total: int) -> None:
        kind = "leads" if self.model.query.obj is RecordObject.LEAD else "contacts"
        self.count_label.setText(f"{total:,} {kind}")

    def focus_filter(self) -> None:
        """Ctrl+F: put the cursor in the filter."""
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    # -- the detail pane -------------------------------------------------------------------------------------

    def _selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        rows = self.table.selectionModel().selectedRows()
        self.show_person(rows[0].row() if rows else None)

    def _open_row(self, index: QModelIndex) -> None:
        self.show_person(index.row())
        self.detail_pane.tabs.setFocus()

    def show_person(self, row: int | None) -> PersonDetail | None:
        """Show the person on ``row`` in the detail pane."""
        line = self.model.line(row) if row is not None else None
        if line is None:
            self.detail_pane.show_detail(None)
            return None
        try:
            detail = self.service.detail(self.model.query.obj, line.id)
        except NotFoundError:
            self.notice.say(f"{line.email} is no longer in the local store; the list was read again.", "info")
            self.model.reload()
            return None
        self.detail_pane.show_detail(detail)
        return detail

    def refresh_detail(self) -> PersonDetail | None:
        """Read the person on show again (after a sync changed their CRM records or history)."""
        shown = self.detail_pane.detail
        if shown is None:
            return None
        try:
            detail = self.service.detail(shown.obj, shown.local_id)
        except NotFoundError:
            detail = None
        self.detail_pane.show_detail(detail)
        return detail

    # -- import ----------------------------------------------------------------------------------------------

    def choose_import_file(self) -> QFileDialog:
        """Ask for the file to import (window-modal; returns at once)."""
        dialog = QFileDialog(self, "Import contacts or leads", str(Path.home()),
                             "Contacts or leads (*.csv *.jsonl);;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(lambda path: self.preview_import(Path(path)))
        dialog.finished.connect(dialog.deleteLater)
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def preview_import(self, path: Path) -> ImportPreviewDialog | None:
        """Check ``path`` into the current tab's kind and open the preview; Save imports the valid rows."""
        obj = RecordObject.LEAD if self.kind_tabs.currentIndex() == 1 else RecordObject.CONTACT
        try:
            preview = self.service.preview_import(path, obj)
        except (ValueError, OSError) as exc:
            self.notice.say(f"{path.name} cannot be imported: {exc}", "error")
            return None
        dialog = ImportPreviewDialog(preview, self)
        dialog.accepted.connect(lambda: self.save_import(preview))
        dialog.finished.connect(dialog.deleteLater)
        self.preview_dialog = dialog
        dialog.open()
        return dialog

    def save_import(self, preview: ImportPreview) -> ImportReport | None:
        """Import the previewed file and show what it did."""
        try:
            report = self.service.import_file(preview.path, preview.obj)
        except (ValueError, OSError) as exc:
            self.notice.say(f"{preview.path.name} cannot be imported: {exc}", "error")
            return None
        text = import_summary(report)
        self.notice.say(text, "error" if report.problems and not (report.created or report.updated) else "ok")
        self.status_message.emit(text)
        self.reload()
        self.people_changed.emit()
        return report
