"""Small building blocks the panels share: the heading every panel starts with, and toned notices."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

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

    def clear_notice(self) -> None:
        """Hide the notice."""
        self.clear()
        self.hide()

    @property
    def tone(self) -> str:
        """The notice's tone."""
        return str(self.property("tone") or "info")


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


def style_record_table(table: QTableView, *, single_selection: bool = True) -> None:
    """Give an existing table the look of :func:`record_table`."""
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
