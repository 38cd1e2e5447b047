"""What the Attribution and Sync Monitor charts share: value axes on round numbers, lines that show their points,
and swapping a view's chart."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QValueAxis

#: Up to this many points (a day of hours, a week or two of days) a line marks each of them: a sparse line (or a
#: single day, which draws no line at all) stays readable; a month of days or a week of hours would be rows of dots.
MARKED_POINTS = 25


def fit_value_axis(axis: QValueAxis, highest: float, *, whole_numbers: bool) -> None:
    """Run ``axis`` from 0 to a round number at or above ``highest``, its ticks on round numbers (Qt's nice
    numbers); an axis of whole counts never ticks between two whole numbers."""
    axis.setRange(0, max(highest, 1.0))
    axis.applyNiceNumbers()
    if whole_numbers:
        span = round(axis.max() - axis.min())
        if span < axis.tickCount() - 1:
            axis.setTickCount(span + 1)
        axis.setLabelFormat("%d")
    else:
        axis.setLabelFormat("%g")


def line_series(name: str, points: Iterable[tuple[float, float]]) -> QLineSeries:
    """A line named ``name`` (its legend entry) through ``points`` (x, y); each point is marked while there are
    few of them, so that a series of one point, which draws no line, still shows."""
    line = QLineSeries()
    line.setName(name)
    for x, y in points:
        line.append(x, y)
    line.setPointsVisible(line.count() <= MARKED_POINTS)
    return line


def replace_chart(view: QChartView, chart: QChart) -> None:
    """Show ``chart`` in ``view``; the chart it showed is deleted once Qt is done with it (a view owns its chart)."""
    previous = view.chart()
    view.setChart(chart)
    if previous is not None:
        previous.deleteLater()
