"""What the Attribution and Sync Monitor charts share: value axes on round numbers, and swapping a view's chart."""

from __future__ import annotations

from PySide6.QtCharts import QChart, QChartView, QValueAxis


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


def replace_chart(view: QChartView, chart: QChart) -> None:
    """Show ``chart`` in ``view``; the chart it showed is deleted once Qt is done with it (a view owns its chart)."""
    previous = view.chart()
    view.setChart(chart)
    if previous is not None:
        previous.deleteLater()
