"""The Sync Monitor's health board: per integration its state, last good sync, outbox, quota gauge and progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QWidget

from crm_desktop.app.sync_monitor import HealthState, IntegrationHealth
from crm_desktop.app.text import duration_text, plural
from crm_desktop.ui.wording import local_time, short_time

logger = logging.getLogger(__name__)

#: The dot's colour per state: readable on the light and the dark theme alike.
STATE_COLOURS = {
    HealthState.IN_SYNC: "#16a34a",
    HealthState.SYNCING: "#2563eb",
    HealthState.SOME_FAILED: "#d97706",
    HealthState.FAILING: "#dc2626",
    HealthState.NEEDS_RECONNECT: "#dc2626",
    HealthState.RATE_LIMITED: "#d97706",
    HealthState.OFFLINE: "#64748b",
    HealthState.CANCELLED: "#64748b",  # grey, as the run's "Cancelled" status: stopped, nothing refused
    HealthState.NOT_SYNCED: "#64748b",
}

#: Below this share of the daily quota left, the gauge turns amber; below the second, red.
QUOTA_LOW, QUOTA_CRITICAL = 0.25, 0.10


@dataclass
class _Phase:
    phase: str
    started: float
    first_done: int


class ProgressRate:
    """Records per second and time left of one integration's sync, from its progress reports.

    The rate is measured from the first report of the current phase (pulling, pushing...), so a phase that starts
    slowly or quickly is not averaged with the one before.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._phase: _Phase | None = None
        self.rate: float | None = None
        self.seconds_left: float | None = None

    def report(self, phase: str, done: int, total: int) -> None:
        now = self._clock()
        if self._phase is None or self._phase.phase != phase or done < self._phase.first_done:
            self._phase = _Phase(phase, now, done)
            self.rate = self.seconds_left = None
            return
        elapsed = now - self._phase.started
        counted = done - self._phase.first_done
        if elapsed <= 0 or counted <= 0:
            return
        self.rate = counted / elapsed
        # A total equal to what is done is no total: the engine says so when it cannot know (a CRM's pages).
        self.seconds_left = (total - done) / self.rate if total > done else None

    def text(self) -> str:
        """``35 records/s · about 12 s left`` (empty until measured; no time left without a total)."""
        if self.rate is None:
            return ""
        parts = [f"{self.rate:,.0f} records/s" if self.rate >= 10 else f"{self.rate:,.1f} records/s"]
        if self.seconds_left is not None:
            left = self.seconds_left
            parts.append(f"about {duration_text(left)} left" if left >= 1 else "under a second left")
        return " · ".join(parts)


def progress_figures(phase: str, done: int, total: int) -> str:
    """``pushing contacts, 200 of 603`` when the total is known, else ``pulling contacts: 400 so far``."""
    if total > done:
        return f"{phase}, {done:,} of {total:,}"
    return f"{phase}: {done:,} so far" if done else phase


def quota_text(line: IntegrationHealth) -> str:
    """``8,300 of 10,000 calls left today``, what is left where the CRM reports only that, or why it is unknown."""
    if line.quota_remaining is None:
        return "API quota: not reported yet"
    if not line.quota_limit:
        # Pipedrive reports the tokens left of the company's daily budget, never the budget itself.
        return f"{line.quota_remaining:,} of the daily API quota left today (the CRM does not report the quota itself)"
    return f"{line.quota_remaining:,} of {line.quota_limit:,} API calls left today"


def quota_label_text(line: IntegrationHealth) -> str:
    """The board's cell for the quota left (under its "API quota left" heading): a share, what is left today, or
    unknown."""
    share = line.quota_left_share
    if share is not None:
        return f"{share:.0%}"
    if line.quota_remaining is not None:
        return f"{line.quota_remaining:,} today"
    return "unknown"


#: The board's column headings and how many columns each spans (the quota's spans its gauge and its figure).
HEADINGS: tuple[tuple[str, int], ...] = (
    ("", 1), ("State", 1), ("Last sync", 1), ("Outbox", 1), ("API quota left", 2),
)


class HealthRow:
    """The widgets of one integration's health line (created by :class:`HealthBoard`).

    Attributes:
        name_label, state_label, last_sync_label, outbox_label: the texts.
        quota_bar: the daily API quota left, as a gauge.
        progress_bar, progress_label: the running sync's progress, rate and time left (hidden when idle).
    """

    def __init__(self, board: HealthBoard, name: str) -> None:
        self.name = name
        self.name_label = QLabel(name)
        self.name_label.setObjectName("healthName")
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.name_label.font()
        font.setBold(True)
        self.name_label.setFont(font)
        self.state_label = QLabel()
        self.state_label.setObjectName("healthState")
        self.state_label.setTextFormat(Qt.TextFormat.RichText)
        self.last_sync_label = QLabel()
        self.last_sync_label.setAccessibleName(f"Last sync of {name}")
        self.outbox_label = QLabel()
        self.outbox_label.setAccessibleName(f"Outbox of {name}")
        self.quota_bar = QProgressBar()
        self.quota_bar.setObjectName("quotaGauge")
        self.quota_bar.setRange(0, 1000)
        self.quota_bar.setFixedWidth(110)
        self.quota_bar.setTextVisible(False)
        self.quota_bar.setAccessibleName(f"API quota left for {name}")
        self.quota_label = QLabel()
        self.quota_label.setObjectName("quotaLeft")
        self.quota_label.setAccessibleName(f"API quota left for {name}")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("syncProgress")
        self.progress_bar.setFixedWidth(110)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setAccessibleName(f"Sync progress of {name}")
        self.progress_label = QLabel()
        self.progress_label.setObjectName("syncRate")
        self._clock = board.clock
        self.rate = ProgressRate(board.clock)
        self.health: IntegrationHealth | None = None
        self.show_progress(None)

    def health_widgets(self) -> list[QWidget]:
        """The health line's cells, in the board's column order."""
        return [self.name_label, self.state_label, self.last_sync_label, self.outbox_label, self.quota_bar,
                self.quota_label]

    def widgets(self) -> list[QWidget]:
        return [*self.health_widgets(), self.progress_bar, self.progress_label]

    def show_health(self, line: IntegrationHealth) -> None:
        self.health = line
        colour = STATE_COLOURS[line.state]
        label = line.state.label
        reason = line.reason[:1].upper() + line.reason[1:]
        if line.state is HealthState.CANCELLED and line.last_attempt_at is not None:
            # When it stopped: the "Last sync" beside it is the last run that finished.
            label += " " + short_time(line.last_attempt_at).replace("Today", "today")
            reason += f" (cancelled {local_time(line.last_attempt_at)})"
        self.state_label.setText(f'<span style="color:{colour}">●</span> {label}')
        self.state_label.setToolTip(reason)
        self.state_label.setAccessibleName(f"{self.name}: {label}")
        when = short_time(line.last_success_at) if line.last_success_at else "never"
        self.last_sync_label.setText(when.replace("Today", "today"))
        self.last_sync_label.setToolTip(local_time(line.last_success_at) if line.last_success_at else "")
        self.outbox_label.setText(
            "empty" if not line.outbox_pending else f"{plural(line.outbox_pending, 'record')} waiting"
        )
        self.outbox_label.setToolTip("Records recorded for the CRM and not yet confirmed by it; the next sync sends "
                                     "them first.")
        share = line.quota_left_share
        # An empty gauge reads as "nothing left": where the CRM reports no whole to measure against, there is none.
        self.quota_bar.setHidden(share is None)
        self.quota_bar.setValue(round((share or 0.0) * 1000))
        self.quota_label.setText(quota_label_text(line))
        self.quota_bar.setToolTip(quota_text(line))
        self.quota_label.setToolTip(quota_text(line))
        level = "ok" if share is None or share >= QUOTA_LOW else ("low" if share >= QUOTA_CRITICAL else "critical")
        self.quota_bar.setProperty("level", level)
        chunk = {"ok": "#16a34a", "low": "#d97706", "critical": "#dc2626"}[level]
        self.quota_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {chunk}; border-radius: 3px; }}")

    def show_progress(self, report: tuple[str, int, int] | None, *, busy: str = "") -> bool:
        """Show a running sync's ``(phase, done, total)``; ``None`` hides the bar, or with a ``busy`` text (a run
        with no figures yet: "starting…", a scheduled run's) shows it busy with that text. Returns whether the
        progress line appeared or went (the board's height changed)."""
        was_shown = not self.progress_bar.isHidden()
        if report is None:
            self.rate = ProgressRate(self._clock)
            self.progress_bar.setVisible(bool(busy))
            self.progress_label.setVisible(bool(busy))
            self.progress_bar.setRange(0, 0)
            self.progress_label.setText(busy)
            return was_shown != bool(busy)
        phase, done, total = report
        self.rate.report(phase, done, total)
        self.progress_bar.setVisible(True)
        self.progress_label.setVisible(True)
        if total > done:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)
        else:
            self.progress_bar.setRange(0, 0)  # busy: no total known
        figures = progress_figures(phase, done, total)
        rate = self.rate.text()
        self.progress_label.setText(f"{figures} · {rate}" if rate else figures)
        return not was_shown


class HealthBoard(QWidget):
    """One health line per integration, in a grid under column headings so the columns line up and each cell
    says only its value ("today 13:57", "12 records waiting", "98%").

    Attributes:
        rows: the lines by integration name.
        headings: the column headings (hidden while there is no integration).
        empty_label: shown while there is no integration.
        clock: the monotonic clock progress rates are measured with.
    """

    def __init__(self, parent: QWidget | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.setObjectName("healthBoard")
        self.clock = clock
        self.rows: dict[str, HealthRow] = {}
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(12)
        self._grid.setVerticalSpacing(6)
        self.empty_label = QLabel("No integration yet: add one in Integrations.")
        self._grid.addWidget(self.empty_label, 0, 0)
        self.headings: list[QLabel] = []
        for column, (text, span) in enumerate(HEADINGS):
            if text:
                heading = QLabel(text)
                heading.setObjectName("healthHeading")
                heading.setForegroundRole(QPalette.ColorRole.PlaceholderText)
                self._grid.addWidget(heading, 0, column, 1, span)
                heading.hide()
                self.headings.append(heading)

    def show_health(self, lines: Sequence[IntegrationHealth]) -> None:
        """Show these lines (integrations added or removed since are added or removed)."""
        names = [line.name for line in lines]
        if names != list(self.rows):
            self._rebuild(names)
        for line in lines:
            self.rows[line.name].show_health(line)

    def _rebuild(self, names: list[str]) -> None:
        kept = {name: row for name, row in self.rows.items() if name in names}
        for name, row in self.rows.items():
            if name not in kept:
                for widget in row.widgets():
                    widget.deleteLater()
        for row in kept.values():
            for widget in row.widgets():
                self._grid.removeWidget(widget)
        self.rows = {name: kept.get(name) or HealthRow(self, name) for name in names}
        self.empty_label.setVisible(not names)
        for heading in self.headings:
            heading.setVisible(bool(names))
        for number, row in enumerate(self.rows.values()):
            line = 1 + 2 * number
            for column, widget in enumerate(row.health_widgets()):
                self._grid.addWidget(widget, line, column)
                widget.show()  # now, not when Qt gets to it: the board's height is measured at once
            # A running sync's bar and its phase, counts, rate and time left go on a line of their own under the
            # integration's (hidden, it takes no room), so a line never grows wider than the window while it syncs.
            self._grid.addWidget(row.progress_bar, line + 1, 1)
            self._grid.addWidget(row.progress_label, line + 1, 2, 1, len(HEADINGS) - 1)
        self._grid.setColumnStretch(len(HEADINGS) + 1, 1)  # the lines keep to the left; the room left is here

    def show_progress(self, name: str, report: tuple[str, int, int] | None, *, busy: str = "") -> bool:
        """Show (or hide) an integration's progress line; whether it appeared or went."""
        row = self.rows.get(name)
        return row is not None and row.show_progress(report, busy=busy)
