"""The Attribution panel: campaigns' and platforms' touchpoints, leads and credited conversions under a chosen
model and period, with a bar per campaign, a line chart of touchpoints per platform, and a CSV export."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSet,
    QChart,
    QChartView,
    QDateTimeAxis,
    QHorizontalBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QDate, QDateTime, QMargins, Qt, Signal, SignalInstance
from PySide6.QtGui import QFontMetrics, QPainter, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QWidget,
)
from shiboken6 import isValid

from crm_desktop.app.people import (
    PeopleService,
    TouchpointSeries,
    local_midnight,
    period_start,
    write_report_csv,
)
from crm_desktop.app.text import plural
from crm_desktop.domain.social import AttributionModel, AttributionReport, ReportRow
from crm_desktop.ui.charts import fit_value_axis, line_series, replace_chart
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.theme import current_theme, style_chart
from crm_desktop.ui.widgets import (
    Notice,
    PanelHeading,
    ask_where_to_save,
    choice_combo,
    fill_table,
    refit_on_new_look,
    row_keys,
    scrolling_page,
    small_table,
)
from crm_desktop.ui.wording import MODEL_NAMES, PLATFORM_NAMES, named

logger = logging.getLogger(__name__)

#: What a report's read gives: the mark of its inputs, the report, the touchpoints per day.
_Read = tuple[tuple[object, ...], AttributionReport, TouchpointSeries]


@dataclass(frozen=True)
class _Outcome:
    """A read done on a store thread: its result, or the error it raised (shown as the panel shows it)."""

    result: _Read | None = None
    error: Exception | None = None

    def unwrap(self) -> _Read:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _outcome_of(read: Callable[[], _Read]) -> _Outcome:
    try:
        return _Outcome(result=read())
    except Exception as exc:  # handed to the GUI thread, which says it
        return _Outcome(error=exc)

#: The period choices: label and days back (``None``: all time; ``-1``: between two chosen dates). "Last 7 days" is
#: today and the 6 days before it, from midnight in the marketer's time zone.
PERIODS: list[tuple[str, int | None]] = [
    ("All time", None),
    ("Last 7 days", 7),
    ("Last 30 days", 30),
    ("Last 90 days", 90),
    ("Between dates…", -1),
]


def period_tip(days: int | None) -> str:
    """What a period choice covers, for its tooltip."""
    if days is None:
        return "Every touchpoint and conversion recorded."
    if days == -1:
        return ("From midnight (your time zone) of the first date you pick to the end of the second; a conversion's "
                "credit still counts its touchpoints from before the first.")
    return (f"Today and the {days - 1} days before it: from midnight (your time zone) {days - 1} days ago, "
            "to now.")
NO_CAMPAIGN = "(no campaign)"
#: The bar chart draws up to this many campaigns, those with the most credit (the table lists them all).
CHART_CAMPAIGNS = 12
#: Told apart two labels of the bar chart that read alike (it shows nothing).
ZERO_WIDTH_SPACE = "\u200b"
#: How much of the bar chart's width the campaign names beside the bars may take (longer ones are shortened).
CAMPAIGN_NAMES_SHARE = 0.35
#: What the bar chart keeps above and below its bars besides its title and the value axis's labels: margins and
#: ticks, in pixels.
CHART_FRAME_HEIGHT = 36
#: Two-line headers keep both breakdowns readable side by side.
REPORT_HEADERS = ["Touchpoints", "Leads", "Conversions\ncredited", "Value\ncredited"]


#: The touchpoints chart draws a line for this many platforms (those with the most touchpoints in the period);
#: the others share one line, so that the lines stay apart and the legend keeps whole names.
PLATFORM_LINES = 5
OTHER_PLATFORMS = "Others"


def value_text(values: dict[str, float]) -> str:
    """Money per currency in whole units, as a report reads, e.g. ``EUR 1,200 · USD 80``; ``—`` when none (the
    CSV export keeps the cents)."""
    return " · ".join(f"{currency} {amount:,.0f}" for currency, amount in sorted(values.items())) or "—"


#: How narrow a campaign's or platform's name may get in the tables (wider names elide).
MIN_NAME_WIDTH = 72


def summary_text(report: AttributionReport) -> str:
    """The report in one line: conversions, their worth, how many had touchpoints to credit (the model is the one
    picked just above it)."""
    if not report.conversions:
        return "No conversions in the period yet"
    text = f"<b>{report.conversions:,}</b> {'conversion' if report.conversions == 1 else 'conversions'} in the period"
    if report.value:
        text += f", worth {value_text(report.value)}"
    unattributed = report.unattributed_conversions
    if not unattributed:
        credited = "credited to its touchpoints" if report.conversions == 1 else "all credited to touchpoints"
    else:
        credited = (f"{report.conversions - unattributed:,} credited to touchpoints, {unattributed:,} with no "
                    f"touchpoint before {'it' if unattributed == 1 else 'them'}")
    return f"{text}; {credited}"


def platform_lines(data: TouchpointSeries) -> dict[str, list[int]]:
    """Per line of the touchpoints chart, its name and daily counts: the :data:`PLATFORM_LINES` platforms with the
    most touchpoints, then (with more platforms than that) the others added up as :data:`OTHER_PLATFORMS`."""
    ranked = sorted(data.per_platform.items(), key=lambda item: (-sum(item[1]), item[0]))
    if len(ranked) <= PLATFORM_LINES:
        shown, rest = ranked, []
    else:
        shown, rest = ranked[:PLATFORM_LINES - 1], ranked[PLATFORM_LINES - 1:]
    lines = {named(PLATFORM_NAMES, platform): counts for platform, counts in shown}
    if rest:
        lines[OTHER_PLATFORMS] = [sum(day) for day in zip(*(counts for _platform, counts in rest), strict=True)]
    return lines


def report_rows(rows: list[ReportRow], blank_name: str, names: Mapping[str, str] | None = None) -> list[list[str]]:
    """A report breakdown as table text (``names``: the marketer's word for a row's name, e.g. a platform's)."""
    return [[(named(names, row.name) if names and row.name else row.name) or blank_name,
             f"{row.touchpoints:,}", f"{row.leads:,}", f"{row.conversions_credited:.2f}",
             value_text(row.value_credited)] for row in rows]


def campaigns_chart_title(shown: int, campaigns: int) -> str:
    """The bar chart's title; it says when the bars are only the campaigns with the most credit, so that they are
    not taken for the whole table."""
    if shown >= campaigns:
        return "Conversions credited per campaign"
    return f"Conversions credited: the {shown} campaigns with the most, of {campaigns:,}"


def campaigns_with_room(axis: QBarCategoryAxis, chart: QChart, chart_height: int) -> int:
    """How many campaigns a bar chart ``chart_height`` tall has room to name, one line each, up to
    :data:`CHART_CAMPAIGNS` (at least one): Qt hides a name that would touch the one next to it."""
    line = QFontMetrics(axis.labelsFont()).height()
    title = QFontMetrics(chart.titleFont()).height()
    room = chart_height - CHART_FRAME_HEIGHT - title - line  # the value axis's labels take a line below the bars
    return max(1, min(CHART_CAMPAIGNS, room // (line + 2)))


def campaign_labels(axis: QBarCategoryAxis, names: list[str], chart_width: int) -> list[str]:
    """The campaign names to put beside the bars of a chart ``chart_width`` wide, level and whole where they fit.

    The names sit on the left of a horizontal bar each (under upright bars, tilted to fit, Qt hid the first one and
    cut the others to a few letters). Qt cuts an axis's names short of the room they have ("Spring Laun..."), so
    its cutting is off; a name wider than :data:`CAMPAIGN_NAMES_SHARE` of the chart is shortened with an ellipsis
    (the Campaigns table beside the chart has it in full).

    The labels are all different: the axis keeps a name once and drops its bar's slot for a repeat, so two names
    that shorten alike ("Campaign 0…") are shortened in the middle instead, and any still alike are told apart
    by invisible marks (each bar keeps its own slot)."""
    metrics = QFontMetrics(axis.labelsFont())
    room = max(int(chart_width * CAMPAIGN_NAMES_SHARE), 1)
    axis.setTruncateLabels(False)
    axis.setLabelsAngle(0)
    labels = [metrics.elidedText(name, Qt.TextElideMode.ElideRight, room) for name in names]
    alike = Counter(labels)
    labels = [metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, room) if alike[label] > 1 else label
              for name, label in zip(names, labels, strict=True)]
    seen: Counter[str] = Counter()
    unique = []
    for label in labels:
        unique.append(label + ZERO_WIDTH_SPACE * seen[label])
        seen[label] += 1
    return unique


class AttributionPanel(QWidget):
    """Which campaigns and platforms earned the conversions, under the model and period the marketer picks.

    Attributes:
        service: the People service (the report and the touchpoint series).
        model_combo, period_combo, since_edit, until_edit: the report's settings (the two dates are shown for
            "Between dates…": the first and the last day of the period, both whole).
        summary_label: conversions, unattributed and value.
        campaigns_table, platforms_table: the breakdowns.
        conversions_chart, touchpoints_chart: the QtCharts views.
        export_button: saves the report as CSV.
        report, series: what is shown.
        campaigns_keys, platforms_keys: Enter on a campaign or platform lists its leads in People.

    Signals:
        status_message(str): a line for the window's status bar.
        campaign_requested(str), platform_requested(str): list this campaign's or platform's leads in People.
    """

    status_message = Signal(str)
    campaign_requested = Signal(str)
    platform_requested = Signal(str)

    def __init__(self, service: PeopleService, now: datetime | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self._now = now
        self.report: AttributionReport | None = None
        self.series: TouchpointSeries | None = None
        self.file_dialog: QFileDialog | None = None
        self._loaded = False
        self._inputs: tuple[object, ...] | None = None
        self.tasks = BackgroundTasks()
        self.reading: asyncio.Task[None] | None = None
        self._reads = 0

        heading = PanelHeading(
            "Attribution", "Which campaigns and platforms earned your conversions. Pick a model to see how the "
            "credit of each conversion is shared among the touchpoints before it."
        )
        self.model_combo = choice_combo("Attribution model", MODEL_NAMES, AttributionModel.LINEAR)
        self.period_combo = QComboBox()
        self.period_combo.setAccessibleName("Period")
        for number, (label, days) in enumerate(PERIODS):
            self.period_combo.addItem(label, days)
            self.period_combo.setItemData(number, period_tip(days), Qt.ItemDataRole.ToolTipRole)
        self.period_combo.setToolTip(period_tip(self.period_combo.currentData()))
        self.since_edit = QDateEdit()
        self.since_edit.setAccessibleName("First day of the period")
        self.until_edit = QDateEdit()
        self.until_edit.setAccessibleName("Last day of the period")
        self.until_label = QLabel("to")
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setVisible(False)
        self.until_label.setVisible(False)
        self.since_edit.setDate(QDate.currentDate().addDays(-30))
        self.until_edit.setDate(QDate.currentDate())
        for combo in (self.model_combo, self.period_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.period_combo.setMinimumContentsLength(max(len(label) for label, _days in PERIODS))  # none is cut
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setAccessibleName("Export the report as CSV")
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Model"))
        controls.addWidget(self.model_combo)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Period"))
        controls.addWidget(self.period_combo)
        controls.addWidget(self.since_edit)
        controls.addWidget(self.until_label)
        controls.addWidget(self.until_edit)
        controls.addStretch(1)

        self.summary_label = QLabel()
        self.summary_label.setAccessibleName("Report summary")
        self.summary_label.setWordWrap(True)
        self.notice = Notice()
        self.campaigns_table = small_table("Campaigns")
        self.campaigns_table.setObjectName("campaignsTable")
        self.platforms_table = small_table("Platforms")
        self.platforms_table.setObjectName("platformsTable")
        for table in (self.campaigns_table, self.platforms_table):
            table.setMinimumHeight(110)

        self.conversions_chart = QChartView()
        self.conversions_chart.setAccessibleName("Credited conversions per campaign")
        self.touchpoints_chart = QChartView()
        self.touchpoints_chart.setAccessibleName("Touchpoints over time per platform")
        for view in (self.conversions_chart, self.touchpoints_chart):
            # Empty until the first report is worked out (on a store thread): in the theme's colours meanwhile,
            # not two white boxes in the dark theme.
            style_chart(view.chart(), current_theme())
        self._campaign_names: list[str] = []
        self._campaigns_drawn = 0
        refit_on_new_look(self.conversions_chart, self._fit_campaign_labels, on_resize=True)
        for view in (self.conversions_chart, self.touchpoints_chart):
            view.setRenderHint(QPainter.RenderHint.Antialiasing)
            view.setMinimumHeight(180)

        grid = QGridLayout()
        grid.addWidget(QLabel("<b>Campaigns</b>"), 0, 0)
        grid.addWidget(QLabel("<b>Platforms</b>"), 0, 1)
        grid.addWidget(self.campaigns_table, 1, 0)
        grid.addWidget(self.platforms_table, 1, 1)
        grid.addWidget(self.conversions_chart, 2, 0)
        grid.addWidget(self.touchpoints_chart, 2, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(1, 2)
        grid.setRowStretch(2, 3)

        layout = scrolling_page(self)
        layout.setContentsMargins(20, 16, 20, 12)
        layout.addWidget(heading)
        layout.addLayout(controls)
        summary = QHBoxLayout()
        summary.addWidget(self.summary_label, 1)
        summary.addWidget(self.export_button)
        layout.addLayout(summary)
        layout.addWidget(self.notice)
        layout.addLayout(grid, 1)

        self.model_combo.currentIndexChanged.connect(lambda _: self.refresh())
        self.period_combo.currentIndexChanged.connect(self._period_chosen)
        self.since_edit.dateChanged.connect(self._dates_chosen)
        self.until_edit.dateChanged.connect(self._dates_chosen)
        self.export_button.clicked.connect(self.choose_export_file)
        figures = "The figures are worked out from the touchpoints and conversions; nothing is deleted here."
        self.campaigns_keys = row_keys(self.campaigns_table, on_open=self.open_campaign, cannot_delete=figures,
                                       say=self.status_message.emit)
        self.platforms_keys = row_keys(self.platforms_table, on_open=self.open_platform, cannot_delete=figures,
                                       say=self.status_message.emit)

    def open_campaign(self, row: int) -> bool:
        """Enter on a campaign: its leads in People (``False`` for the touchpoints without a campaign)."""
        rows = self.report.by_campaign if self.report is not None else []
        return self._list_leads(rows, row, "campaign", self.campaign_requested)

    def open_platform(self, row: int) -> bool:
        """Enter on a platform: its leads in People."""
        rows = self.report.by_platform if self.report is not None else []
        return self._list_leads(rows, row, "platform", self.platform_requested)

    def _list_leads(self, rows: list[ReportRow], row: int, what: str, requested: SignalInstance) -> bool:
        if not 0 <= row < len(rows) or not rows[row].name:
            self.status_message.emit(f"These touchpoints have no {what} to list people by.")
            return False
        requested.emit(rows[row].name)
        if self.report is not None and (self.report.since is not None or self.report.until is not None):
            # People's filters have no period: its list is every lead of the row, so say why it may hold more
            # than the row's count (which is of the period).
            self.status_message.emit(
                f"People lists every lead of {what} {self._row_name(rows[row], what)}, of all time: "
                f"{rows[row].leads:,} of them had a touchpoint in the period")
        return True

    @staticmethod
    def _row_name(row: ReportRow, what: str) -> str:
        return named(PLATFORM_NAMES, row.name) if what == "platform" and row.name else f"“{row.name}”"

    def showEvent(self, event: QShowEvent) -> None:
        """Work the report out the first time the panel is shown (not at window start), and again when shown
        after what it is worked out from changed (a sync, an import, an event from the API or the command line)."""
        super().showEvent(event)
        self.refresh_if_changed()

    def refresh_if_changed(self) -> bool:
        """Work the report out again when its touchpoints, conversions, leads or the time-decay half-life changed
        since it was (a cheap check); return whether it was."""
        if self._loaded:
            try:
                if self.service.attribution_inputs() == self._inputs:
                    return False
            except Exception as exc:  # the store cannot be read: refresh says so
                logger.warning("cannot tell whether the attribution report changed: %s", exc)
        self.refresh()
        return True

    @property
    def model(self) -> AttributionModel:
        """The chosen attribution model."""
        return AttributionModel(self.model_combo.currentData())

    def since(self) -> datetime | None:
        """The start of the chosen period, or ``None`` for all time: a local midnight (the marketer's days, not
        UTC's), as an aware UTC moment. "Last N days" holds N calendar days, today included."""
        days = self.period_combo.currentData()
        if days is None:
            return None
        if days == -1:
            return local_midnight(self.since_edit.date().toPython())  # type: ignore[arg-type]
        return period_start(days, self._current_time())

    def until(self) -> datetime | None:
        """The end of the chosen period, not included (the midnight after its last day, local time), or ``None``
        when the period runs to now."""
        if self.period_combo.currentData() != -1:
            return None
        last_day: date = self.until_edit.date().toPython()  # type: ignore[assignment]
        return local_midnight(last_day + timedelta(days=1))

    def _dates_chosen(self, _date: QDate) -> None:
        # The last day is never before the first: each date bounds the other's calendar.
        self.until_edit.setMinimumDate(self.since_edit.date())
        self.since_edit.setMaximumDate(self.until_edit.date())
        self.refresh()

    def _current_time(self) -> datetime:
        return self._now or datetime.now(UTC)

    def _period_chosen(self, _index: int) -> None:
        days = self.period_combo.currentData()
        for widget in (self.since_edit, self.until_label, self.until_edit):
            widget.setVisible(days == -1)
        self.period_combo.setToolTip(period_tip(days))
        self.refresh()

    def refresh(self) -> AttributionReport | None:
        """Work the report out for the chosen model and period and redraw the tables and charts.

        On the app's loop the report is worked out on a store thread (on a marketing team's touchpoints it takes
        seconds) and drawn when it is in; the reads asked for meanwhile are not drawn but the newest, and ``None``
        is returned. Without a running loop (a screenshot, a script) it is worked out here and returned."""
        self._loaded = True
        self._reads += 1
        read = partial(self._read_report, self.model, self.since(), self.until(), self._current_time())
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._show_read(read)
        self.summary_label.setText(f"Working out the report ({MODEL_NAMES[self.model]})…")
        self.reading = self.tasks.start(self._read_in_thread(self._reads, read), name="work out the attribution")
        return None

    @property
    def busy(self) -> bool:
        """Whether a report is being worked out on a store thread."""
        return self.reading is not None and not self.reading.done()

    async def _read_in_thread(self, number: int, read: Callable[[], _Read]) -> None:
        outcome = await asyncio.to_thread(_outcome_of, read)
        if isValid(self) and number == self._reads:  # not outdated by a newer ask meanwhile
            self._show_read(outcome.unwrap)

    def _read_report(self, model: AttributionModel, since: datetime | None, until: datetime | None,
                     now: datetime) -> _Read:
        inputs = self.service.attribution_inputs()
        report = self.service.attribution_report(model, since, until)
        series = (self.service.touchpoints_per_day(since, before=until) if until is not None
                  else self.service.touchpoints_per_day(since, until=now))
        return inputs, report, series

    def _show_read(self, read: Callable[[], _Read]) -> AttributionReport | None:
        try:
            self._inputs, report, series = read()
        except Exception as exc:  # the store cannot be read: say so, keep the window usable
            logger.warning("cannot work out the attribution report: %s", exc)
            self._inputs = None
            self.notice.say(f"The attribution report could not be worked out: {exc}", "error")
            return None
        self.notice.clear_notice()
        self.report, self.series = report, series
        self.summary_label.setText(summary_text(report))
        figure_columns = range(1, len(REPORT_HEADERS) + 1)
        fill_table(self.campaigns_table, ["Campaign", *REPORT_HEADERS], report_rows(report.by_campaign, NO_CAMPAIGN),
                   numbers=figure_columns)
        fill_table(self.platforms_table, ["Platform", *REPORT_HEADERS],
                   report_rows(report.by_platform, "—", PLATFORM_NAMES), numbers=figure_columns)
        for table in (self.campaigns_table, self.platforms_table):
            # The figures keep their width (the value credited is what the marketer came for); the name takes
            # what is left and elides when the tables are narrow.
            header = table.horizontalHeader()
            header.setStretchLastSection(False)
            header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
            header.setMinimumSectionSize(MIN_NAME_WIDTH)
        self._draw_conversions(report)
        self._draw_touchpoints(series)
        return report

    def _draw_conversions(self, report: AttributionReport) -> None:
        # A bar per campaign lying down, the most credited on top, its name level on its left: as many as the
        # chart has room to name.
        chart = QChart()
        chart.legend().hide()
        chart.setMargins(QMargins(4, 4, 4, 4))
        names = QBarCategoryAxis()
        shown = campaigns_with_room(names, chart, self.conversions_chart.height())
        rows = sorted(report.by_campaign, key=lambda row: row.conversions_credited, reverse=True)[:shown]
        chart.setTitle(campaigns_chart_title(len(rows), len(report.by_campaign)))
        rows.reverse()  # the axis puts its first category at the bottom
        bars = QBarSet("Conversions credited")
        for row in rows:
            bars.append(round(row.conversions_credited, 2))
        series = QHorizontalBarSeries()
        series.append(bars)
        chart.addSeries(series)
        self._campaign_names = [row.name or NO_CAMPAIGN for row in rows] or ["—"]
        self._campaigns_drawn = shown
        names.append(campaign_labels(names, self._campaign_names, self.conversions_chart.width()))
        counts = QValueAxis()
        fit_value_axis(counts, max([row.conversions_credited for row in rows] + [1.0]), whole_numbers=False)
        chart.addAxis(names, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(counts, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(names)
        series.attachAxis(counts)
        self._replace_chart(self.conversions_chart, chart)

    def _draw_touchpoints(self, data: TouchpointSeries) -> None:
        chart = QChart()
        chart.setTitle("Touchpoints per day and platform")
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        # Each day at its local midnight: the axis labels moments in local time.
        moments = [int(local_midnight(day).timestamp() * 1000) for day in data.days]
        axis_x = QDateTimeAxis()
        axis_x.setFormat("dd MMM")
        axis_y = QValueAxis()
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        highest = 1
        for name, counts in platform_lines(data).items():
            line = line_series(name,
                               ((float(moment), float(count)) for moment, count in zip(moments, counts, strict=True)))
            highest = max(highest, *counts)
            chart.addSeries(line)
            line.attachAxis(axis_x)
            line.attachAxis(axis_y)
        if moments:
            first, last = moments[0], moments[-1]
            if first == last:
                first, last = first - 86_400_000, last + 86_400_000
            axis_x.setRange(QDateTime.fromMSecsSinceEpoch(first), QDateTime.fromMSecsSinceEpoch(last))
        axis_x.setTickCount(min(max(len(moments), 2), 7))
        fit_value_axis(axis_y, highest, whole_numbers=True)
        if not data.per_platform:
            chart.legend().hide()
        self._replace_chart(self.touchpoints_chart, chart)

    def _fit_campaign_labels(self) -> None:
        # The chart's size is known (or changed) only once laid out: the names are put for the width it has, and
        # the bars drawn again when its height has room to name more campaigns, or fewer.
        chart = self.conversions_chart.chart()
        axes = chart.axes(Qt.Orientation.Vertical)
        if not axes or not isinstance(axis := axes[0], QBarCategoryAxis):
            return
        if (self.report is not None and campaigns_with_room(axis, chart, self.conversions_chart.height())
                != self._campaigns_drawn):
            self._draw_conversions(self.report)
            return
        labels = campaign_labels(axis, self._campaign_names, self.conversions_chart.width())
        if axis.categories() != labels:
            axis.setCategories(labels)

    @staticmethod
    def _replace_chart(view: QChartView, chart: QChart) -> None:
        style_chart(chart, current_theme())
        replace_chart(view, chart)

    # -- export ----------------------------------------------------------------------------------------------

    def choose_export_file(self) -> QFileDialog:
        """Ask where to save the CSV (window-modal; returns at once)."""
        name = f"attribution-{self.model.value}.csv"
        return ask_where_to_save(self, "file_dialog", "Export attribution report", name, "CSV files (*.csv)",
                                 self.export_csv)

    def export_csv(self, path: Path) -> bool:
        """Write the report on show to ``path``."""
        report = self.report or self.refresh()
        if report is None:
            if self.busy:
                self.notice.say("The report is still being worked out: export it once it shows.", "info")
            return False
        try:
            lines = write_report_csv(report, path)
        except OSError as exc:
            self.notice.say(f"The report could not be saved to {path}: {exc.strerror or exc}", "error")
            return False
        text = f"Attribution report saved to {path} ({plural(lines, 'line')})"
        self.notice.say(text, "ok")
        self.status_message.emit(text)
        return True
