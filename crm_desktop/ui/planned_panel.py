"""The base of panels whose content arrives with the sync engine: a heading and what the panel will hold."""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from crm_desktop.ui.widgets import PanelHeading


class PlannedPanel(QWidget):
    """A panel that says plainly what it will hold until its feature lands.

    Subclasses set :attr:`TITLE`, :attr:`PURPOSE` (one sentence: what the panel shows the marketer) and
    :attr:`ARRIVES_WITH` (which piece of work fills it in).

    Attributes:
        heading: the panel's title and purpose.
        note: the framed sentence saying what is still to come.
    """

    TITLE: ClassVar[str] = ""
    PURPOSE: ClassVar[str] = ""
    ARRIVES_WITH: ClassVar[str] = "the sync engine"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = PanelHeading(self.TITLE, self.PURPOSE)
        self.note = QLabel(f"{self.TITLE} is coming with {self.ARRIVES_WITH}; nothing here needs setting up yet.")
        self.note.setObjectName("comingNote")
        self.note.setWordWrap(True)
        self.note.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(16)
        layout.addWidget(self.heading)
        layout.addWidget(self.note)
        layout.addStretch(1)
