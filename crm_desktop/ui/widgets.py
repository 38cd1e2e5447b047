"""Small building blocks the panels share: the heading every panel starts with, toned notices, the record
table's look, what Enter and Delete do on every table, choice combo boxes and the save-file question."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TypeVar, cast

from PySide6.QtCore import (
    QAbstractItemModel,
    QCoreApplication,
    QEvent,
    QObject,
    QSize,
    Qt,
    QTimer,
    Signal,
    SignalInstance,
)
from PySide6.QtGui import QKeyEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStyle,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

#: Where a table puts a figure (count, money, share): on the right, so its digits line up.
FIGURE_ALIGNMENT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter

#: The tones a notice can take; the stylesheet colours ``[tone="..."]``.
TONES = ("info", "ok", "error")


def set_tone(widget: QWidget, tone: str) -> None:
    """Give ``widget`` a tone (``info``, ``ok`` or ``error``) and re-polish it so the stylesheet applies at once."""
    if tone not in TONES:
        raise ValueError(f"unknown tone {tone!r}; use one of {', '.join(TONES)}")
    if widget.property("tone") == tone:
        return
    widget.setProperty("tone", tone)
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class PanelHeading(QWidget):
    """A panel's title and the sentence that says what the panel is for.

    Attributes:
        title: the bold heading label.
        subtitle: the explanatory sentence below it.
    """

    def __init__(self, title: str, subtitle: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(title)
        self.title.setObjectName("panelTitle")
        self.subtitle = QLabel(subtitle)
        self.subtitle.setObjectName("panelSubtitle")
        self.subtitle.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addWidget(self.subtitle)


class Notice(QLabel):
    """A framed sentence saying what just happened (info, done, or an error), hidden while empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def say(self, text: str, tone: str = "info") -> None:
        """Show ``text`` in ``tone``."""
        set_tone(self, tone)
        self.setText(text)
        self.setVisible(bool(text))
        self._keep_whole()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Stay as tall as the text needs at the new width."""
        super().resizeEvent(event)
        self._keep_whole()

    def _keep_whole(self) -> None:
        """Never shorter than the wrapped text at the label's width: a squeezed panel page (whose layout sizes
        labels by their smallest size hint, not their height for width) cut a long notice's last lines off, where
        it should have scrolled."""
        needed = self.heightForWidth(self.width()) if self.text() else 0
        if needed != self.minimumHeight():
            self.setMinimumHeight(max(needed, 0))

    def clear_notice(self) -> None:
        """Hide the notice."""
        self.clear()
        self.hide()

    @property
    def tone(self) -> str:
        """The notice's tone."""
        return str(self.property("tone") or "info")


def value_rows(form: QFormLayout, captions: tuple[str, ...]) -> dict[str, QLabel]:
    """A details form's rows: a wrapping, selectable value label per caption, returned by caption."""
    values: dict[str, QLabel] = {}
    for caption in captions:
        value = QLabel()
        value.setObjectName("detailValue")
        value.setWordWrap(True)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        values[caption] = value
        form.addRow(caption, value)
    return values


def fill_table(table: QTableWidget, headers: list[str], rows: list[list[str]], *,
               numbers: Collection[int] = ()) -> None:
    """Replace a small read-only table's content; the ``numbers`` columns (counts, money, shares) are right-aligned,
    cells and header, so their digits line up as in every spreadsheet."""
    table.clear()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(headers)
    for column in numbers:
        if (header := table.horizontalHeaderItem(column)) is not None:
            header.setTextAlignment(FIGURE_ALIGNMENT)
    table.setRowCount(len(rows))
    for row, values in enumerate(rows):
        for column, value in enumerate(values):
            item = QTableWidgetItem(value)
            item.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
            item.setToolTip(value if len(value) > 40 else "")
            if column in numbers:
                item.setTextAlignment(FIGURE_ALIGNMENT)
            table.setItem(row, column, item)


def span_lines(table: QTableWidget, rows: Iterable[int], *, italic: bool = False) -> None:
    """Make each of ``rows`` one line across the whole table (its first cell's text, left-aligned and whole in its
    tooltip, in italics for a line that details the one above): what a narrow table cannot fit in a column."""
    table.clearSpans()
    for row in rows:
        table.setSpan(row, 0, 1, table.columnCount())
        if (item := table.item(row, 0)) is not None:
            item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            item.setToolTip(item.text())
            if italic:
                font = item.font()
                font.setItalic(True)
                item.setFont(font)


def fit_columns_to_view(table: QTableWidget, *, narrowest_last: int = 80) -> None:
    """Size a small table's columns to their text, but give the last one (a URL, an error, a detail) only the room
    left, its middle elided, so the table does not scroll sideways for one long value; it still stretches when the
    table widens. Where the other columns leave it less than ``narrowest_last`` px, it keeps its text's width and
    the table scrolls, as an elided stub would say nothing."""
    header = table.horizontalHeader()
    header.setStretchLastSection(False)  # measured at its text's width, not at the width it was stretched to
    table.resizeColumnsToContents()
    last = table.columnCount() - 1
    if last >= 0:
        table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        room = table.viewport().width() - sum(header.sectionSize(column) for column in range(last))
        if narrowest_last <= room < header.sectionSize(last):
            header.resizeSection(last, room)
    header.setStretchLastSection(True)


def action_button(text: str, accessible_name: str, tooltip: str) -> QPushButton:
    """A button that says what it does twice more: ``accessible_name`` for a screen reader, ``tooltip`` on hover."""
    button = QPushButton(text)
    button.setAccessibleName(accessible_name)
    button.setToolTip(tooltip)
    return button


def small_table(name: str) -> QTableWidget:
    """A small read-only table (a detail pane's, a dialog's), filled by :func:`fill_table`."""
    table = QTableWidget()
    _look_small(table, name)
    return table


def small_view(name: str, model: QAbstractItemModel) -> QTableView:
    """A dialog's read-only table that looks like :func:`small_table` but shows ``model``: for rows that may run
    to thousands, which a view reads only as they come on screen."""
    table = QTableView()
    table.setModel(model)
    model.setParent(table)
    _look_small(table, name)
    return table


def _look_small(table: QTableView, name: str) -> None:
    table.setAccessibleName(name)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    leave_on_tab(table)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().hide()
    table.horizontalHeader().setStretchLastSection(True)
    table.setWordWrap(False)


def record_table(model: QAbstractItemModel, accessible_name: str, object_name: str = "", *,
                 single_selection: bool = True) -> QTableView:
    """A read-only table of records as every panel shows them: whole rows selected, alternating rows, no grid, no
    row numbers, headers left-aligned, columns sized by hand (the caller stretches the one that takes the room)."""
    table = QTableView()
    if object_name:
        table.setObjectName(object_name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    style_record_table(table, single_selection=single_selection)
    return table


class EmptyTableNote(QObject):
    """A sentence in the middle of a table while its model has no row: what will show there, and how to get it.

    A label on the table's viewport (muted, wrapped), kept to the viewport's size and shown only while the model
    is empty, so an empty list never looks broken.

    Attributes:
        label: the sentence's label.
    """

    def __init__(self, table: QAbstractItemView, text: str) -> None:
        super().__init__(table)
        self._table = table
        self.label = QLabel(text, table.viewport())
        self.label.setObjectName("emptyTableNote")
        self.label.setWordWrap(True)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        table.viewport().installEventFilter(self)
        model = table.model()
        for signal in (model.rowsInserted, model.rowsRemoved, model.columnsInserted, model.columnsRemoved,
                       model.modelReset, model.layoutChanged):
            signal.connect(self.refresh)
        self.refresh()

    def refresh(self, *_args: object) -> None:
        """Show the sentence when the model has columns but no row, hide it otherwise (a table without columns
        shows nothing yet: a detail pane's before a person is picked)."""
        if not (isValid(self._table) and isValid(self.label)):
            return  # a QTableWidget's own model says its rows are gone while the table is being destroyed
        model = self._table.model()
        self.label.setVisible(model.rowCount() == 0 and model.columnCount() > 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Keep the sentence the size of the viewport, with a margin."""
        if event.type() == QEvent.Type.Resize and watched is self._table.viewport():
            self.label.setGeometry(self._table.viewport().rect().adjusted(24, 12, -24, -12))
        return False


class _PageLayout(QVBoxLayout):
    """A panel's layout inside its scroll area: the page is as tall as the view unless its smallest size does not
    fit.

    Its wrapped labels would otherwise make the scroll area size the page by height-for-width, i.e. to its
    preferred height, and scroll at every window size.
    """

    def hasHeightForWidth(self) -> bool:
        return False


class _ScrollingPage(QScrollArea):
    """A panel's scroll area: no stop of its own on Tab (frameless, it draws no focus, so the focus seemed lost),
    and scrolled to whichever of its fields gets the focus, also by a Tab from outside it (the sidebar)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._focus_changed)

    def _focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if new is None or not isValid(self):
            return
        content = self.widget()
        if content is not None and content.isAncestorOf(new):
            self.ensureWidgetVisible(new)


def scrolling_page(panel: QWidget) -> QVBoxLayout:
    """The layout ``panel`` lays its content in: a page in a frameless scroll area that fills the panel.

    A window shorter or narrower than the page's smallest size (a laptop at 150% scaling, the Alerts dock open)
    scrolls the page; without it, the panel's smallest size would push the window past the screen's edge.
    """
    content = QWidget()
    content.setObjectName("panelPage")
    page = _ScrollingPage()
    page.setWidget(content)
    page.setWidgetResizable(True)
    page.setFrameShape(QFrame.Shape.NoFrame)
    outer = QVBoxLayout(panel)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(page)
    return _PageLayout(content)


#: Rounds of posted layout requests let through before scrolling: a new size hint climbs one level of nested
#: layouts a round (three from the connection result to its page); a round with nothing posted costs nothing.
LAYOUT_ROUNDS = 8


def bring_into_view(widget: QWidget) -> None:
    """Scroll the page that holds ``widget`` (see ``scrolling_page``) until it is in sight, once the layout has
    placed it: a result shown below the fold of a short window is otherwise easy to miss."""

    def scroll() -> None:
        holder = widget.parentWidget()
        while holder is not None and not isinstance(holder, QScrollArea):
            holder = holder.parentWidget()
        if holder is None or not widget.isVisible():
            return
        # A longer text grows the page in steps, each a posted layout request (label, its box, the page, then the
        # scroll area's range): let them all land first, or the page is scrolled for the old, shorter text, or
        # not at all while it still fits.
        for _round in range(LAYOUT_ROUNDS):
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        holder.ensureWidgetVisible(widget, 0, 8)

    QTimer.singleShot(0, widget, scroll)


def within_screen(wanted: QSize, available: QSize) -> QSize:
    """``wanted``, but never more than 90% of the screen's ``available`` size (a window's first size)."""
    return wanted.boundedTo(available * 0.9)


def open_at_size(window: QWidget, width: int, height: int) -> None:
    """Give a dialog or window its first size, ``width`` x ``height`` or less on a small screen: a 680 px dialog on
    a 1280x720 screen (1920x1080 at 150%) would put its buttons under the taskbar."""
    window.resize(within_screen(QSize(width, height), window.screen().availableGeometry().size()))


def keep_rows_visible(table: QTableView, rows: int) -> int:
    """Never let a layout or splitter squeeze ``table`` below its header and ``rows`` rows; returns that height."""
    height = (table.horizontalHeader().sizeHint().height() + rows * table.verticalHeader().defaultSectionSize()
              + 2 * table.frameWidth())
    table.setMinimumHeight(height)
    return height


def column_width_for(table: QTableView, texts: Iterable[str], column: int | None = None, *, slack: int = 4) -> int:
    """The width a column of ``table`` needs to show the widest of ``texts`` whole in the table's own font (and its
    header's text, when ``column`` is named): the cell's focus-frame margins plus ``slack`` pixels of air. Call
    ``table.ensurePolished()`` first, so that a stylesheet's font is the one measured."""
    metrics = table.fontMetrics()
    padding = 2 * (table.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin) + 1) + slack
    width = max((metrics.horizontalAdvance(text) for text in texts), default=0) + padding
    if column is not None:
        width = max(width, table.horizontalHeader().sectionSizeHint(column))
    return width


class _RefitOnNewLook(QObject):
    def __init__(self, widget: QWidget, fit: Callable[[], None], on_resize: bool) -> None:
        super().__init__(widget)
        # A panel's own method is held weakly: the filter, owned by one of the panel's widgets, must not keep the
        # panel (and a reading thread it owns) alive once the panel is dropped.
        self._fit: Callable[[], Callable[[], None] | None] = (
            weakref.WeakMethod(fit) if inspect.ismethod(fit) else lambda: fit)
        self._events = {QEvent.Type.StyleChange, QEvent.Type.FontChange}
        widget.installEventFilter(self)
        if on_resize:
            self._events.add(QEvent.Type.Resize)
            if isinstance(widget, QAbstractScrollArea):  # its viewport narrows when a scroll bar shows up
                widget.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in self._events:
            # After the widget has taken in its new look or size: measured with the new paddings, fonts and room.
            QTimer.singleShot(0, self, self._refit)  # dropped with the widget
        return False

    def _refit(self) -> None:
        if (fit := self._fit()) is not None:
            fit()


def refit_on_new_look(widget: QWidget, fit: Callable[[], None], *, on_resize: bool = False) -> None:
    """Call ``fit`` (a panel's sizing of columns or panes to their text) again whenever ``widget`` changes its style
    or font, as a theme switch does (and, with ``on_resize``, its size): sizes measured under the old look would clip
    their text under the new one."""
    _RefitOnNewLook(widget, fit, on_resize)


def fit_placeholder(edit: QLineEdit) -> None:
    """Keep ``edit`` wide enough to show its whole placeholder in its own font and style (again after a theme
    switch), so that a dialog at its minimum width does not cut the hint off."""

    def fit() -> None:
        edit.ensurePolished()  # the stylesheet's font and padding, not the default ones
        metrics = edit.fontMetrics()
        # QLineEdit's size hint is 17 "x" plus its frame, padding and text margins as the style draws them.
        chrome = edit.sizeHint().width() - 17 * metrics.horizontalAdvance("x")
        edit.setMinimumWidth(metrics.horizontalAdvance(edit.placeholderText()) + chrome + 2)  # 2: the cursor's room

    fit()
    refit_on_new_look(edit, fit)


def leave_on_tab(table: QTableView) -> None:
    """Let Tab go on to the next control. A Qt table takes Tab to step from cell to cell and wraps round from the
    last to the first, so a keyboard user who tabbed into one never got out of it (the arrow keys move in it)."""
    table.setTabKeyNavigation(False)


def style_record_table(table: QTableView, *, single_selection: bool = True) -> None:
    """Give an existing table the look of :func:`record_table`."""
    leave_on_tab(table)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    if single_selection:
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)


ChoiceT = TypeVar("ChoiceT")


def choice_combo(accessible_name: str, names: Mapping[ChoiceT, str], chosen: ChoiceT | None = None) -> QComboBox:
    """A combo box offering ``names`` (value: what the marketer reads), each item carrying its value as data, with
    ``chosen`` selected (the first item when ``None``)."""
    combo = QComboBox()
    combo.setAccessibleName(accessible_name)
    for value, name in names.items():
        combo.addItem(name, value)
    if chosen is not None:
        combo.setCurrentIndex(combo.findData(chosen))
    return combo


def refill_names(combo: QComboBox, names: list[str]) -> bool:
    """Offer ``names`` in ``combo``, keeping the one chosen while it is still offered, without signalling a change
    (the caller shows what the choice needs); ``True`` when the choice was kept."""
    chosen = combo.currentText()
    kept = chosen in names
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if kept:
        combo.setCurrentText(chosen)
    combo.blockSignals(False)
    return kept


def selected_row(table: QAbstractItemView) -> int | None:
    """The table's selected row (the first one when several are), if any."""
    selection = table.selectionModel()
    rows = [index.row() for index in selection.selectedRows()] if selection is not None else []
    return min(rows) if rows else None


#: The keys that open a row's details (the main keyboard's Return and the keypad's Enter).
OPEN_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
#: What Enter or Delete says when no row is selected.
NO_ROW_SELECTED = "Select a row first."

RowAction = Callable[[int], object]


class RowKeys(QObject):
    """Enter and Delete on a table, the same on every table of the app.

    Enter (or Return) opens the selected row's details or takes its natural next step; Delete starts its
    destructive action (the panel asks before doing it). A table that offers no such action says so through
    :attr:`said` (the panel's status bar) rather than ignoring the key. An open cell editor keeps its own keys.

    Attributes:
        table: the table whose keys are handled.

    Signals:
        opened(int), deleted(int): Enter or Delete was acted on, for that row.
        said(str): a sentence for the status bar: no row selected, or what the table does not offer.
    """

    opened = Signal(int)
    deleted = Signal(int)
    said = Signal(str)

    def __init__(
        self,
        table: QAbstractItemView,
        *,
        on_open: RowAction | None = None,
        on_delete: RowAction | None = None,
        cannot_open: str = "",
        cannot_delete: str = "",
    ) -> None:
        super().__init__(table)
        if (on_open is None and not cannot_open) or (on_delete is None and not cannot_delete):
            raise ValueError("a table without an Enter or Delete action says why (cannot_open, cannot_delete)")
        self.table = table
        self._on_open = on_open
        self._on_delete = on_delete
        self._cannot_open = cannot_open
        self._cannot_delete = cannot_delete
        table.installEventFilter(self)

    def selected_row(self) -> int | None:
        """The selected row (the first one when several are), if any."""
        return selected_row(self.table)

    def press_enter(self) -> bool:
        """Act as Enter does; ``False`` when nothing was opened (and the status bar says why)."""
        return self._act(self._on_open, self._cannot_open, self.opened)

    def press_delete(self) -> bool:
        """Act as Delete does; ``False`` when nothing was started (and the status bar says why)."""
        return self._act(self._on_delete, self._cannot_delete, self.deleted)

    def _act(self, action: RowAction | None, cannot: str, done: SignalInstance) -> bool:
        if action is None:
            self.said.emit(cannot)
            return False
        row = self.selected_row()
        if row is None:
            self.said.emit(NO_ROW_SELECTED)
            return False
        action(row)
        done.emit(row)
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Take Enter, Return and Delete (without Ctrl, Alt or Shift) pressed on the table, not in a cell editor."""
        if watched is not self.table or event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return super().eventFilter(watched, event)
        if event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return super().eventFilter(watched, event)
        # A cell editor's Enter (commit) that its editor left unhandled comes up to the table: not ours.
        if self.table.state() == QAbstractItemView.State.EditingState:
            return super().eventFilter(watched, event)
        if event.key() in OPEN_KEYS:
            self.press_enter()
            return True
        if event.key() == Qt.Key.Key_Delete:
            self.press_delete()
            return True
        return super().eventFilter(watched, event)


def row_keys(
    table: QAbstractItemView,
    *,
    on_open: RowAction | None = None,
    on_delete: RowAction | None = None,
    cannot_open: str = "",
    cannot_delete: str = "",
    say: Callable[[str], object] | None = None,
) -> RowKeys:
    """Give ``table`` the app's Enter and Delete (see :class:`RowKeys`); ``say`` shows its sentences."""
    keys = RowKeys(table, on_open=on_open, on_delete=on_delete, cannot_open=cannot_open,
                   cannot_delete=cannot_delete)
    if say is not None:
        keys.said.connect(say)
    return keys


def row_in_full(model: QAbstractItemModel, row: int) -> str:
    """One row of a table as "Column: value" lines (empty cells left out), for cells too long for their column."""
    lines = []
    for column in range(model.columnCount()):
        value = model.index(row, column).data(Qt.ItemDataRole.DisplayRole)
        if value not in (None, ""):
            title = model.headerData(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
            heading = str(title).replace("\n", " ")  # a two-line column title reads as one
            lines.append(f"{heading}: {value}")
    return "\n".join(lines)


def show_rows_in_full(table: QAbstractItemView, notice: Notice, *, cannot_delete: str) -> RowKeys:
    """Enter (or a double click) on a row of a dialog's table shows the whole row in ``notice``, and Delete says
    ``cannot_delete`` there: a key pressed in the table never reaches the dialog's default button."""
    model = table.model()

    def show(row: int) -> None:
        notice.say(row_in_full(model, row))

    table.activated.connect(lambda index: show(index.row()))
    return row_keys(table, on_open=show, cannot_delete=cannot_delete, say=notice.say)


class AsksFirst:
    """For a panel or dialog that asks before its destructive actions, one question at a time.

    Attributes:
        confirm_box: the question while it is open (``None`` otherwise).
    """

    confirm_box: QMessageBox | None = None

    def ask_first(
        self,
        title: str,
        question: str,
        action: str,
        on_confirmed: Callable[[], object],
        *,
        detail: str = "",
        warning: bool = False,
        on_declined: Callable[[], object] | None = None,
    ) -> QMessageBox:
        """Ask before a destructive action, over this widget (window-modal, returns at once): ``action`` names the
        button that does it, Cancel is the default; ``on_confirmed`` runs only when the action's button was
        pressed, ``on_declined`` otherwise. A ``warning`` (the action overwrites something newer) shows the warning
        icon. :attr:`confirm_box` holds the question while it is open."""
        box = QMessageBox(QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Question, title, question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, cast(QWidget, self))
        if detail:
            box.setInformativeText(detail)
        box.button(QMessageBox.StandardButton.Yes).setText(action)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)

        def answered(_result: int) -> None:
            confirmed = box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)
            if self.confirm_box is box:
                self.confirm_box = None
            box.deleteLater()
            if confirmed:
                on_confirmed()
            elif on_declined is not None:
                on_declined()

        box.finished.connect(answered)
        self.confirm_box = box
        box.open()
        return box


def hold_while_open(owner: QObject, attribute: str, dialog: QDialog) -> None:
    """Keep ``dialog`` in ``owner``'s ``attribute`` while it is open; once it closes, forget it (unless a newer one
    took its place) and delete it."""
    setattr(owner, attribute, dialog)

    def closed(_result: int) -> None:
        if getattr(owner, attribute, None) is dialog:
            setattr(owner, attribute, None)
        dialog.deleteLater()

    dialog.finished.connect(closed)


def ask_where_to_save(owner: QWidget, attribute: str, title: str, file_name: str, file_filter: str,
                      on_chosen: Callable[[Path], object]) -> QFileDialog:
    """Ask where to save a file, suggesting ``file_name`` in the home folder (window-modal, returns at once).

    The name's suffix is added when the marketer types none; ``on_chosen`` gets the path once one is chosen, and
    ``owner``'s ``attribute`` holds the dialog while it is open (:func:`hold_while_open`)."""
    dialog = QFileDialog(owner, title, str(Path.home() / file_name), file_filter)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix(Path(file_name).suffix.lstrip("."))
    dialog.fileSelected.connect(lambda path: on_chosen(Path(path)))
    hold_while_open(owner, attribute, dialog)
    dialog.open()
    return dialog
