"""The Sync Monitor's metrics charts (QtCharts): contacts synced, success rate, API errors, latency, quota used."""

from __future__ import annotations

import logging

from PySide6.QtCharts import QChart, QChartView, QDateTimeAxis, QLineSeries, QValueAxis
from PySide6.QtCore import QDateTime, QMargins, Qt, QTimeZone, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from crm_desktop.app.sync_monitor import MetricPoint, MetricsRange, MetricsSeries
from crm_desktop.app.text import plural
from crm_desktop.ui.charts import fit_value_axis, line_series, replace_chart

logger = logging.getLogger(__name__)

#: Line colours, one per series (quota: one per integration).
LINE_COLOURS = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2")


def _ms(point: MetricPoint) -> float:
    return point.start.timestamp() * 1000


class MetricsCharts(QWidget):
    """A range selector and five charts of the figures stored per run and hour.

    Attributes:
        range_combo: 24 hours, 7 days or 30 days.
        contacts_chart, success_chart, errors_chart, latency_chart, quota_chart: the chart views.
        summary_label: the range's totals in words.

    Signals:
        range_changed(str): the chosen :class:`MetricsRange` value.
    """

    range_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.range_combo = QComboBox()
        self.range_combo.setAccessibleName("Metrics range")
        for span in MetricsRange:
            self.range_combo.addItem(span.label, span.value)
        self.summary_label = QLabel("")
        self.summary_label.setObjectName("metricsSummary")
        self.summary_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Show"))
        top.addWidget(self.range_combo)
        top.addWidget(self.summary_label, 1)
        self.contacts_chart = self._view("Contacts synced per hour")
        self.success_chart = self._view("Sync success rate")
        self.errors_chart = self._view("API error rate")
        self.latency_chart = self._view("Average event → CRM latency")
        self.quota_chart = self._view("CRM API quota used")
        grid = QGridLayout()
        grid.setSpacing(8)
        grid.addWidget(self.contacts_chart, 0, 0)
        grid.addWidget(self.success_chart, 0, 1)
        grid.addWidget(self.errors_chart, 0, 2)
        grid.addWidget(self.latency_chart, 1, 0)
        grid.addWidget(self.quota_chart, 1, 1, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addLayout(top)
        layout.addLayout(grid, 1)
        self.series: MetricsSeries | None = None
        self.range_combo.currentIndexChanged.connect(lambda _i: self.range_changed.emit(self.chosen_range.value))

    @staticmethod
    def _view(name: str) -> QChartView:
        view = QChartView()
        view.setAccessibleName(name)
        view.setRenderHint(QPainter.RenderHint.Antialiasing)
        view.setMinimumSize(150, 100)
        return view

    @property
    def chosen_range(self) -> MetricsRange:
        return MetricsRange(self.range_combo.currentData())

    def show_series(self, series: MetricsSeries) -> None:
        """Draw every chart from ``series``."""
        self.series = series
        points = series.points
        hours = series.range.bucket.total_seconds() / 3600
        per = "" if hours == 1 else f" (average of {hours:g} h)"
        self._draw(self.contacts_chart, f"Contacts synced per hour{per}", series,
                   {"Contacts": [(p, p.contacts_per_hour) for p in points]}, whole_numbers=True)
        self._draw(self.success_chart, "Sync success rate (%)", series,
                   {"Success": [(p, p.success_rate * 100) for p in points if p.success_rate is not None]},
                   percent=True)
        self._draw(self.errors_chart, "API error rate (%)", series,
                   {"Errors": [(p, p.api_error_rate * 100) for p in points if p.api_error_rate is not None]})
        self._draw(self.latency_chart, "Average event → CRM latency (s)", series,
                   {"Latency": [(p, p.average_latency) for p in points if p.average_latency is not None]})
        quota = {
            name: [(p, p.quota_used_share[name] * 100) for p in points if name in p.quota_used_share]
            for name in series.integrations
        }
        self._draw(self.quota_chart, "CRM API quota used (% of the daily quota)", series,
                   {name: values for name, values in quota.items() if values}, percent=True, legend=True)
        runs = sum(p.runs for p in points)
        synced = sum(p.contacts_per_hour * hours for p in points)
        self.summary_label.setText(
            f"{series.range.label}: {plural(runs, 'sync run')}, {plural(round(synced), 'contact')} synced."
            if runs else f"{series.range.label}: no sync has run."
        )

    def _draw(self, view: QChartView, title: str, series: MetricsSeries,
              lines: dict[str, list[tuple[MetricPoint, float]]], *, whole_numbers: bool = False,
              percent: bool = False, legend: bool = False) -> None:
        """Draw ``lines`` over the range; a ``percent`` chart runs 0-100, any other from 0 to a round number above
        its highest value (ticks on whole numbers only where the figure is a count, ``whole_numbers``)."""
        chart = QChart()
        chart.setTitle(title)
        chart.setMargins(QMargins(2, 2, 2, 2))
        chart.setBackgroundRoundness(4)
        chart.setBackgroundBrush(self.palette().base())
        chart.setTitleBrush(self.palette().text())
        axis_x = QDateTimeAxis()
        axis_x.setFormat("HH:mm" if series.range is MetricsRange.DAY else "dd MMM")
        axis_x.setTickCount(5)
        axis_x.setRange(QDateTime.fromMSecsSinceEpoch(int(series.start.timestamp() * 1000), QTimeZone.systemTimeZone()),
                        QDateTime.fromMSecsSinceEpoch(int(series.end.timestamp() * 1000), QTimeZone.systemTimeZone()))
        axis_y = QValueAxis()
        axis_y.setTickCount(5)
        for axis in (axis_x, axis_y):
            axis.setLabelsBrush(self.palette().text())
            axis.setGridLineColor(self.palette().mid().color())
        chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        highest = 0.0
        for number, (name, values) in enumerate(lines.items()):
            line = line_series(name, ((_ms(point), value) for point, value in values))
            line.setPen(QPen(QColor(LINE_COLOURS[number % len(LINE_COLOURS)]), 2))
            highest = max([highest, *(value for _point, value in values)])
            chart.addSeries(line)
            line.attachAxis(axis_x)
            line.attachAxis(axis_y)
        if percent:
            axis_y.setRange(0, 100)
            axis_y.setLabelFormat("%d")
        else:
            fit_value_axis(axis_y, highest, whole_numbers=whole_numbers)
        chart.legend().setVisible(legend and bool(lines))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.legend().setLabelBrush(self.palette().text())
        if not any(lines.values()):
            chart.setTitle(f"{title} — no data yet")
        replace_chart(view, chart)

    def line_values(self, view: QChartView) -> dict[str, list[float]]:
        """The y values each line of a chart shows (for tests and accessibility)."""
        result: dict[str, list[float]] = {}
        for line in view.chart().series():
            if isinstance(line, QLineSeries):
                result[line.name()] = [line.at(i).y() for i in range(line.count())]
        return result
