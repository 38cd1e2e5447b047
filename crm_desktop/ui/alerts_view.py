"""The Alerts view: every alert with its time, integration and run, and what to do next (open the run, reconnect)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from crm_desktop.domain.alerts import Alert, AlertKind
from crm_desktop.ui.table_model import RowsTableModel, TableColumn
from crm_desktop.ui.widgets import AsksFirst, record_table, row_keys, selected_row
from crm_desktop.ui.wording import local_time, short_time

logger = logging.getLogger(__name__)

AlertsLoader = Callable[[], list[Alert]]


class AlertColumn(TableColumn):
    """The Alerts table's columns."""

    WHEN = "When"
    INTEGRATION = "Integration"
    ALERT = "Alert"
    DETAILS = "Details"
    RUN = "Run"


def alert_title(alert: Alert) -> str:
    """The alert's kind in words, with how often it came again (“Sync failed (3 times)”)."""
    return f"{alert.title} ({alert.repeats + 1} times)" if alert.repeats else alert.title


class AlertsTableModel(RowsTableModel[Alert, AlertColumn]):
    """Alerts, the latest occurrence first, with named columns (:class:`AlertColumn`); ``AlertRole`` gives the alert."""

    AlertRole = Qt.ItemDataRole.UserRole + 1
    columns = AlertColumn

    def __init__(self, load: AlertsLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._load = load

    def refresh(self) -> None:
        """Re-read the alerts."""
        self._show_rows(list(self._load()))

    def alert_at(self, row: int) -> Alert:
        """The alert at ``row`` (raises ``IndexError``)."""
        return self._rows[row]

    def row_of(self, alert_id: int) -> int | None:
        """The row showing the alert with this id, if it is listed."""
        return self._first_row(lambda alert: alert.id == alert_id)

    def cell(self, alert: Alert, column: AlertColumn, role: int) -> Any:
        """Each cell's text and tooltip; the alert itself under ``AlertRole``."""
        if role == self.AlertRole:
            return alert
        if role == Qt.ItemDataRole.DisplayRole:
            return {
                AlertColumn.WHEN: short_time(alert.last_seen_at),
                AlertColumn.INTEGRATION: alert.integration_name,
                AlertColumn.ALERT: alert_title(alert),
                AlertColumn.DETAILS: alert.message,
                AlertColumn.RUN: f"Run #{alert.run_id}" if alert.run_id is not None else "—",
            }[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            if column is AlertColumn.WHEN:
                first = local_time(alert.raised_at, seconds=True)
                last = local_time(alert.last_seen_at, seconds=True)
                return f"First: {first}\nLast: {last}" if alert.repeats else first
            if column is AlertColumn.RUN and alert.run_id is not None:
                return "Open this run in the Sync Monitor (Enter or double-click)"
            return alert.message
        return None


class AlertsPanel(QWidget, AsksFirst):
    """The alerts listed for the marketer, with "Open run", "Reconnect…" and "Clear".

    Attributes:
        model, table: the alerts.
        keys: Enter reconnects a refused sign-in or opens the alert's run; Delete forgets the alert (after asking).
        confirm_box: the "forget this alert?" question while it is open.
        open_run_button: shows the selected alert's run in the Sync Monitor.
        reconnect_button: opens the selected integration's connection settings (a refused sign-in).
        clear_button: forgets every alert.
        empty_label: said when there is no alert.
        tab_stops: the controls above, in their Tab order.

    Signals:
        run_requested(int): open this run.
        reconnect_requested(str): reconnect this integration.
        cleared(): the alerts were cleared.
        status_message(str): a short note for the status bar.
    """

    run_requested = Signal(int)
    reconnect_requested = Signal(str)
    cleared = Signal()
    status_message = Signal(str)

    def __init__(
        self,
        load: AlertsLoader,
        clear: Callable[[], int],
        dismiss: Callable[[int], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._clear = clear
        self._dismiss = dismiss
        self.model = AlertsTableModel(load, self)
        self.table = record_table(self.model, "Alerts", "alertsTable")
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(AlertColumn.DETAILS, QHeaderView.ResizeMode.Stretch)
        for column, width in ((AlertColumn.WHEN, 110), (AlertColumn.INTEGRATION, 150),
                              (AlertColumn.ALERT, self.ALERT_WIDTH), (AlertColumn.RUN, 80)):
            self.table.setColumnWidth(column, width)

        self.empty_label = QLabel("No alerts. Failed syncs, sign-ins to renew, low API quotas and refused records "
                                  "show up here.")
        self.empty_label.setObjectName("panelSubtitle")
        self.empty_label.setWordWrap(True)
        self.open_run_button = QPushButton("Open run")
        self.open_run_button.setAccessibleName("Open the alert's run")
        self.reconnect_button = QPushButton("Reconnect…")
        self.reconnect_button.setAccessibleName("Reconnect the alert's integration")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setAccessibleName("Clear all alerts")
        buttons = QHBoxLayout()
        # The sentence takes the room left of the buttons (on one line in a wide window); hidden, the room stays.
        buttons.addWidget(self.empty_label, 1)
        buttons.addStretch(0)
        buttons.addWidget(self.open_run_button)
        buttons.addWidget(self.reconnect_button)
        buttons.addWidget(self.clear_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 8)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)

        #: The view's controls in their Tab order (the window puts them ahead of its sidebar).
        self.tab_stops: list[QWidget] = [self.open_run_button, self.reconnect_button, self.clear_button, self.table]
        self.open_run_button.clicked.connect(self.open_selected_run)
        self.reconnect_button.clicked.connect(self.reconnect_selected)
        self.clear_button.clicked.connect(self.clear)
        self.table.doubleClicked.connect(lambda _index: self.act_on_selected())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.keys = row_keys(self.table, on_open=lambda _row: self.act_on_selected(),
                             on_delete=lambda _row: self.confirm_dismiss(), say=self.status_message.emit)
        self.refresh()

    #: The Alert column's width, widened to a title with its count ("API quota running out (12 times)").
    ALERT_WIDTH = 170

    def refresh(self) -> None:
        """Re-read the alerts, keeping the one selected selected (a new alert comes in above it), else selecting the
        newest, so Enter and "Open run" act on a row at once."""
        selected = self.selected_alert()
        self.model.refresh()
        titles = max(self.table.sizeHintForColumn(AlertColumn.ALERT), self.ALERT_WIDTH)
        if titles > self.table.columnWidth(AlertColumn.ALERT):  # never narrower than the marketer dragged it
            self.table.setColumnWidth(AlertColumn.ALERT, titles)
        row = self.model.row_of(selected.id) if selected is not None else None
        if row is None and self.model.rowCount():
            row = 0
        if row is not None:
            self.table.selectRow(row)
        self.empty_label.setVisible(self.model.rowCount() == 0)
        self._update_buttons()

    def selected_alert(self) -> Alert | None:
        row = selected_row(self.table)
        return self.model.alert_at(row) if row is not None else None

    def select_row(self, row: int) -> None:
        self.table.selectRow(row)

    def _update_buttons(self) -> None:
        alert = self.selected_alert()
        self.open_run_button.setEnabled(alert is not None and alert.run_id is not None)
        self.reconnect_button.setEnabled(
            alert is not None and alert.kind is AlertKind.AUTH_FAILED and alert.integration_id is not None
        )
        self.clear_button.setEnabled(self.model.rowCount() > 0)

    def open_selected_run(self) -> bool:
        """Ask to show the selected alert's run; ``False`` when it has none."""
        alert = self.selected_alert()
        if alert is None or alert.run_id is None:
            return False
        self.run_requested.emit(alert.run_id)
        return True

    def reconnect_selected(self) -> bool:
        """Ask to reconnect the selected alert's integration; ``False`` unless it is a refused sign-in."""
        alert = self.selected_alert()
        if alert is None or alert.kind is not AlertKind.AUTH_FAILED or alert.integration_id is None:
            return False
        self.reconnect_requested.emit(alert.integration_name)
        return True

    def act_on_selected(self) -> None:
        """Enter or a double-click: reconnect a refused sign-in, otherwise open the run (or say it has none)."""
        if not self.reconnect_selected() and not self.open_selected_run():
            self.status_message.emit("This alert has no run to open.")

    def clear(self) -> None:
        """Forget every alert."""
        removed = self._clear()
        logger.info("cleared %d alert(s)", removed)
        self.refresh()
        self.cleared.emit()

    def confirm_dismiss(self) -> QMessageBox | None:
        """Delete: ask before forgetting the selected alert (window-modal, returns at once)."""
        alert = self.selected_alert()
        if alert is None or self._dismiss is None:
            return None
        return self.ask_first(
            "Forget alert", f"Forget the alert “{alert_title(alert)}” of {alert.integration_name}?", "Forget",
            self.dismiss_selected, detail="If it happens again, it is listed and notified again.")

    def dismiss_selected(self) -> bool:
        """Forget the selected alert (no question; Delete asks first); ``False`` when none is selected."""
        alert = self.selected_alert()
        if alert is None or self._dismiss is None:
            return False
        self._dismiss(alert.id)
        row = self.table.selectionModel().selectedRows()[0].row()
        self.refresh()
        if self.model.rowCount():
            self.table.selectRow(min(row, self.model.rowCount() - 1))
        return True
