"""Which columns a list shows: a right click on its header ticks them on or off, remembered per list."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import cast

from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QTableView

from crm_desktop.app.paths import APP_AUTHOR, APP_NAME

ORGANISATION = APP_AUTHOR
APPLICATION = APP_NAME


def app_settings() -> QSettings:
    """The user's settings file (an INI file in the platform's config folder, the same on every OS)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


class ColumnChoice:
    """The columns of ``table`` that its user chose to hide, offered on the header's context menu and kept in the
    user's settings under ``columns/<name>/hidden`` (by heading, so a column added or moved later keeps its place).

    Columns in ``always_shown`` (the one that names the row) are not offered; ``changed`` is called after the
    user showed or hid one (to fit the others again). A list the user narrowed to one
    column cannot lose it: the last shown column's entry is disabled.

    Attributes:
        menu: the last menu the header's right click opened (while it is open, its entries can be triggered).
        folded: columns the list itself hid for want of room (a narrow window), not the user: they are not saved
            as hidden and stay ticked in the menu; unticking one hides it for good.
    """

    def __init__(self, table: QTableView, name: str, *, always_shown: Collection[int] = (0,),
                 settings: Callable[[], QSettings] = app_settings,
                 changed: Callable[[], None] | None = None) -> None:
        self._table = table
        self._changed = changed or (lambda: None)
        self._key = f"columns/{name}/hidden"
        self._always_shown = frozenset(always_shown)
        self._settings = settings
        self.menu: QMenu | None = None
        self.folded: set[int] = set()
        header = table.horizontalHeader()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._open_menu)
        self.restore()

    def heading(self, column: int) -> str:
        """The column's heading, as the menu and the settings name it."""
        return str(self._table.model().headerData(column, Qt.Orientation.Horizontal,
                                                  Qt.ItemDataRole.DisplayRole) or "").replace("\n", " ")

    def hidden_headings(self) -> list[str]:
        """The headings of the columns hidden now, in column order."""
        return [self.heading(column) for column in range(self._table.model().columnCount())
                if self._table.isColumnHidden(column) and column not in self.folded]

    def restore(self) -> None:
        """Hide the columns the settings name (headings no longer in the list are ignored)."""
        stored = self._settings().value(self._key, [])
        # An INI file gives one value back as a plain string, several as a list.
        hidden = {stored} if isinstance(stored, str) else {str(heading) for heading in cast(list[object], stored or [])}
        for column in range(self._table.model().columnCount()):
            if column not in self._always_shown:
                self._table.setColumnHidden(column, self.heading(column) in hidden)

    def show_column(self, column: int, shown: bool) -> None:
        """Show or hide one column and remember the choice."""
        self.folded.discard(column)
        self._table.setColumnHidden(column, not shown)
        self._settings().setValue(self._key, self.hidden_headings())
        self._changed()

    def show_all(self) -> None:
        """Show every column again."""
        for column in range(self._table.model().columnCount()):
            self._table.setColumnHidden(column, False)
        self._settings().remove(self._key)
        self._changed()

    def build_menu(self) -> QMenu:
        """The menu of columns: one ticked entry per column that can be hidden, then "Show all columns"."""
        menu = QMenu(self._table)
        menu.setAccessibleName(f"Columns of {self._table.accessibleName()}")
        count = self._table.model().columnCount()
        shown = [column for column in range(count)
                 if not self._table.isColumnHidden(column) or column in self.folded]
        for column in range(count):
            if column in self._always_shown:
                continue
            action = QAction(self.heading(column), menu)
            action.setCheckable(True)
            action.setChecked(column in shown)
            action.setEnabled(not (column in shown and len(shown) == 1))
            action.toggled.connect(lambda on, at=column: self.show_column(at, on))
            menu.addAction(action)
        menu.addSeparator()
        every = menu.addAction("Show all columns")
        every.setEnabled(len(shown) < count)
        every.triggered.connect(self.show_all)
        return menu

    def _open_menu(self, at: QPoint) -> None:
        self.menu = self.build_menu()
        self.menu.aboutToHide.connect(self.menu.deleteLater)
        self.menu.popup(self._table.horizontalHeader().mapToGlobal(at))
