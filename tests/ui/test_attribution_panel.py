"""The Attribution panel driven by keys: model and period change the tables and charts at once; CSV export."""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PySide6.QtCharts import (
    QAbstractBarSeries,
    QBarCategoryAxis,
    QChartView,
    QDateTimeAxis,
    QHorizontalBarSeries,
    QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import QDate, QDateTime, QRectF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QComboBox, QGraphicsTextItem, QTableWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.people import PeopleService, TouchpointSeries, write_report_csv
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import SocialPlatform
from crm_desktop.domain.social import (
    AttributionModel,
    AttributionReport,
    EngagementEvent,
    EngagementUser,
    TouchpointType,
)
from crm_desktop.ui.attribution_panel import (
    MIN_NAME_WIDTH,
    AttributionPanel,
    campaign_labels,
    platform_lines,
    summary_text,
)
from crm_desktop.ui.charts import fit_value_axis
from tests.support.marketing_data import CAMPAIGNS, email_of, seed_marketing


def open_panel(qtbot: QtBot, workspace: Workspace, width: int = 1100) -> AttributionPanel:
    """The panel on the seeded marketing data, shown ``width`` px wide."""
    now = seed_marketing(workspace)
    made = AttributionPanel(PeopleService(workspace.database, workspace.social, workspace.sync), now=now)
    qtbot.addWidget(made)
    made.resize(width, 760)
    made.show()
    qtbot.waitExposed(made)
    return made


@pytest.fixture
def panel(qtbot: QtBot, workspace: Workspace) -> AttributionPanel:
    return open_panel(qtbot, workspace)


def choose(combo: QComboBox, text: str) -> None:
    combo.setFocus()
    index = combo.findText(text)
    assert index >= 0, f"{text!r} is not offered"
    while combo.currentIndex() != index:
        QTest.keyClick(combo, Qt.Key.Key_Down if combo.currentIndex() < index else Qt.Key.Key_Up)


def table_rows(table: QTableWidget) -> dict[str, list[str]]:
    return {
        table.item(row, 0).text(): [table.item(row, column).text() for column in range(1, table.columnCount())]
        for row in range(table.rowCount())
    }


def campaign_axis(view: QChartView) -> QBarCategoryAxis:
    [found] = [axis for axis in view.chart().axes() if isinstance(axis, QBarCategoryAxis)]
    return found


def bar_values(panel: AttributionPanel) -> dict[str, float]:
    chart = panel.conversions_chart.chart()
    series = chart.series()[0]
    assert isinstance(series, QAbstractBarSeries)
    names = campaign_axis(panel.conversions_chart).categories()
    bars = series.barSets()[0]
    return {name: bars.at(index) for index, name in enumerate(names)}


def test_the_report_fills_the_tables_and_charts(panel: AttributionPanel, workspace: Workspace) -> None:
    report = workspace.social.attribution_report(AttributionModel.LINEAR)
    assert panel.model is AttributionModel.LINEAR
    campaigns = table_rows(panel.campaigns_table)
    assert set(campaigns) == set(CAMPAIGNS)
    for row in report.by_campaign:
        assert campaigns[row.name or ""] == [
            str(row.touchpoints), str(row.leads), f"{row.conversions_credited:.2f}",
            f"EUR {row.value_credited['EUR']:,.0f}",
        ]
    assert set(table_rows(panel.platforms_table)) == {"Twitter/X", "Instagram", "LinkedIn"}
    assert panel.summary_label.text() == (
        f"<b>{report.conversions}</b> conversions in the period, worth EUR {report.value['EUR']:,.0f}; "
        "all credited to touchpoints")
    assert bar_values(panel) == pytest.approx({row.name: row.conversions_credited for row in report.by_campaign},
                                              abs=0.01)
    lines = panel.touchpoints_chart.chart().series()
    assert sorted(line.name() for line in lines) == ["Instagram", "LinkedIn", "Twitter/X"]
    assert all(isinstance(line, QLineSeries) for line in lines)
    total = sum(point.y() for line in lines for point in line.points())  # type: ignore[attr-defined]
    assert total == sum(row.touchpoints for row in report.by_platform)


def test_changing_the_model_updates_the_numbers_and_charts_at_once(panel: AttributionPanel,
                                                                   workspace: Workspace) -> None:
    choose(panel.model_combo, "First touch")
    assert panel.model is AttributionModel.FIRST_TOUCH
    first = workspace.social.attribution_report(AttributionModel.FIRST_TOUCH)
    first_bars = bar_values(panel)
    assert first_bars == pytest.approx({row.name: row.conversions_credited for row in first.by_campaign}, abs=0.01)
    choose(panel.model_combo, "Last touch")
    last = workspace.social.attribution_report(AttributionModel.LAST_TOUCH)
    assert bar_values(panel) == pytest.approx({row.name: row.conversions_credited for row in last.by_campaign},
                                              abs=0.01)
    assert bar_values(panel) != pytest.approx(first_bars, abs=0.01), "the demo data credits the models differently"
    credited = {name: values[2] for name, values in table_rows(panel.campaigns_table).items()}
    assert credited == {row.name: f"{row.conversions_credited:.2f}" for row in last.by_campaign}


def test_figures_line_up_on_the_right_names_on_the_left(panel: AttributionPanel) -> None:
    """Counts and money are right-aligned, header and cells, as in a spreadsheet; still so after a model change."""
    right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
    for step in ("Linear", "Time decay"):
        choose(panel.model_combo, step)
        for table in (panel.campaigns_table, panel.platforms_table):
            assert table.rowCount() > 0
            name_header = table.horizontalHeaderItem(0)
            assert not Qt.AlignmentFlag(name_header.textAlignment()) & Qt.AlignmentFlag.AlignRight
            for column in range(1, table.columnCount()):
                assert Qt.AlignmentFlag(table.horizontalHeaderItem(column).textAlignment()) == right
                for row in range(table.rowCount()):
                    assert Qt.AlignmentFlag(table.item(row, column).textAlignment()) == right
                    assert not Qt.AlignmentFlag(table.item(row, 0).textAlignment()) & Qt.AlignmentFlag.AlignRight


def test_the_period_limits_the_touchpoints(panel: AttributionPanel, workspace: Workspace) -> None:
    everything = sum(int(values[0]) for values in table_rows(panel.platforms_table).values())
    choose(panel.period_combo, "Last 7 days")
    assert panel.since_edit.isHidden()
    since = panel.since()
    assert since is not None and since > datetime.now(UTC) - timedelta(days=8)
    recent = sum(int(values[0]) for values in table_rows(panel.platforms_table).values())
    expected = workspace.social.attribution_report(AttributionModel.LINEAR, since)
    assert recent == sum(row.touchpoints for row in expected.by_platform) < everything
    choose(panel.period_combo, "Between dates…")
    assert panel.since_edit.isVisible()
    panel.since_edit.setFocus()
    chosen = (datetime.now(UTC) - timedelta(days=3)).date()
    panel.since_edit.setDate(chosen)
    since = panel.since()
    assert since is not None and since.date() == chosen
    assert sum(int(values[0]) for values in table_rows(panel.platforms_table).values()) <= recent


def test_export_writes_the_report_as_csv(qtbot: QtBot, panel: AttributionPanel, tmp_path: Path) -> None:
    choose(panel.model_combo, "Time decay")
    path = tmp_path / "report.csv"
    dialog = panel.choose_export_file()
    dialog.selectFile(str(path))
    dialog.accept()
    qtbot.waitUntil(path.exists, timeout=2000)
    with path.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert panel.report is not None
    assert len(rows) == len(panel.report.by_campaign) + len(panel.report.by_platform)
    assert {row["model"] for row in rows} == {"time_decay"}
    assert {(row["period_start"], row["period_end"]) for row in rows} == {("", "")}  # all time, up to the export
    campaigns = {row["name"]: row for row in rows if row["breakdown"] == "campaign"}
    for line in panel.report.by_campaign:
        assert float(campaigns[line.name or ""]["conversions_credited"]) == pytest.approx(line.conversions_credited,
                                                                                          abs=1e-4)
        assert campaigns[line.name or ""]["value_credited_EUR"] == f"{line.value_credited['EUR']:.2f}"
    assert "saved to" in panel.notice.text()


def test_an_unwritable_export_is_said_plainly(panel: AttributionPanel, tmp_path: Path) -> None:
    assert not panel.export_csv(tmp_path / "missing-folder" / "report.csv")
    assert panel.notice.isVisible() and "could not be saved" in panel.notice.text()


@pytest.mark.parametrize("highest", [0, 1, 2, 3, 5, 6, 7, 11, 51, 99, 1234])
def test_a_count_axis_ticks_on_whole_numbers_only(qapp: QApplication, highest: int) -> None:
    axis = QValueAxis()
    fit_value_axis(axis, highest, whole_numbers=True)
    step = (axis.max() - axis.min()) / (axis.tickCount() - 1)
    assert axis.min() == 0 and axis.max() >= max(highest, 1)
    assert step >= 1 and step == int(step), (highest, axis.max(), axis.tickCount())
    assert axis.labelFormat() == "%d"


@pytest.mark.parametrize("highest", [0.4, 1.0, 7.92, 8.7, 26.5])
def test_a_credit_axis_tops_out_on_a_round_number(qapp: QApplication, highest: float) -> None:
    axis = QValueAxis()
    fit_value_axis(axis, highest, whole_numbers=False)
    step = (axis.max() - axis.min()) / (axis.tickCount() - 1)
    assert axis.max() >= highest
    assert any(abs(step - nice * 10 ** power) < 1e-9 for nice in (1, 2, 2.5, 5) for power in range(-2, 4)), step


def name_boxes(view: QChartView) -> list[QRectF]:
    """Where the bar chart draws the campaign names it shows: the text Qt left visible on the names' side of the
    bars, in the axis's order from the bars' end."""
    plot = view.chart().plotArea()
    text = QGraphicsTextItem().type()  # Qt lays an axis's labels out as text items (PySide wraps them as plain items)
    boxes = [item.sceneBoundingRect() for item in view.scene().items()
             if item.type() == text and item.isVisible() and item.sceneBoundingRect().width() > 4]
    if campaign_axis(view).alignment() & Qt.AlignmentFlag.AlignLeft:
        return sorted((box for box in boxes if box.right() <= plot.left() + 1
                       and plot.top() <= box.center().y() <= plot.bottom()), key=lambda box: box.top())
    return sorted((box for box in boxes if box.top() >= plot.bottom() - 1), key=lambda box: box.left())


def test_campaign_names_show_whole_beside_the_bars(qtbot: QtBot, panel: AttributionPanel) -> None:
    """Qt would cut "Spring Launch" to "Spring Laun..." with room to spare: the names are put whole and level, and
    shortened (never tilted) when the window gets narrow."""
    qtbot.waitUntil(lambda: sorted(campaign_axis(panel.conversions_chart).categories()) == sorted(CAMPAIGNS),
                    timeout=2000)
    assert not campaign_axis(panel.conversions_chart).truncateLabels()
    panel.resize(520, 760)
    qtbot.waitUntil(lambda: sorted(campaign_axis(panel.conversions_chart).categories()) != sorted(CAMPAIGNS),
                    timeout=2000)
    choose(panel.model_combo, "First touch")  # a redraw keeps the names the width asks for
    axis = campaign_axis(panel.conversions_chart)
    assert axis.labelsAngle() == 0 and len(axis.categories()) == len(CAMPAIGNS)
    assert all(label in CAMPAIGNS or label.endswith("…") for label in axis.categories())
    panel.resize(1100, 760)
    qtbot.waitUntil(lambda: sorted(campaign_axis(panel.conversions_chart).categories()) == sorted(CAMPAIGNS),
                    timeout=2000)


def test_an_overlong_campaign_name_is_shortened_and_none_tilts(qapp: QApplication) -> None:
    axis = QBarCategoryAxis()
    names = ["Spring Launch", "Black Friday", "Webinar Series", "Autumn " * 12 + "Sale"]
    shown = campaign_labels(axis, names, 1000)
    assert axis.labelsAngle() == 0 and not axis.truncateLabels()
    assert shown[:3] == names[:3]
    assert shown[3].endswith("…") and len(shown[3]) < len(names[3])


LONG_CAMPAIGNS = ["Spring Launch Brand Awareness", "Black Friday Early Access Teaser", "Customer stories: retail",
                  "Webinar Series Q3 Data Privacy", "Holiday Gift Guide Influencers", "Product Hunt Launch Day",
                  "LinkedIn Thought Leadership", "Summer Sale Retargeting Europe", "Partner Co-marketing with Acme",
                  "Back to School Student Offer", "Year in Review Recap Video", "New Year Resolution Challenge"]


@pytest.mark.parametrize(("width", "height"), [(1100, 760), (700, 760), (1100, 560)])
def test_every_campaign_the_chart_draws_has_its_name_in_sight(
        qtbot: QtBot, workspace: Workspace, width: int, height: int) -> None:
    """With 12 campaigns of long names, tilted under upright bars, Qt hid the first campaign's name (its bar stood
    unnamed) and cut the others to a few letters. Each bar now lies beside its name, level, the most credited on
    top: every name the chart draws is laid out, in the view, one apart from the next; a chart too short to name
    12 draws as many as it has room to name, and says so."""
    now = seed_marketing(workspace)
    workspace.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.LINKEDIN, type=TouchpointType.CLICK, post_id=f"{rank}-{number}",
        user=EngagementUser(email=email_of(number)), timestamp=now - timedelta(days=3), campaign=name)
        for rank, name in enumerate(LONG_CAMPAIGNS) for number in range(30 - 2 * rank)])
    made = AttributionPanel(PeopleService(workspace.database, workspace.social, workspace.sync), now=now)
    qtbot.addWidget(made)
    made.resize(width, height)
    made.show()
    qtbot.waitExposed(made)
    view = made.conversions_chart
    qtbot.wait(50)
    axis = campaign_axis(view)
    shown = axis.count()
    assert (shown == 12) is (height == 760), shown
    assert shown >= 6 and view.chart().title().startswith(f"Conversions credited: the {shown} campaigns")
    boxes = name_boxes(view)
    assert len(boxes) == shown, f"{len(boxes)} of {shown} names laid out"
    assert all(box.left() >= 0 and box.right() <= view.width() for box in boxes)
    assert all(upper.bottom() <= lower.top() for upper, lower in pairwise(boxes))
    bars = bar_values(made)
    top = axis.categories()[-1]  # the axis counts from the bottom
    assert bars[top] == max(bars.values())
    assert LONG_CAMPAIGNS[0].startswith(top.rstrip("…"))


def test_the_summary_reads_as_a_sentence() -> None:
    assert summary_text(AttributionReport(model=AttributionModel.LINEAR)) == (
        "No conversions in the period yet")
    one = AttributionReport(model=AttributionModel.FIRST_TOUCH, conversions=1, unattributed_conversions=1,
                            value={"EUR": 1200.0})
    assert summary_text(one) == ("<b>1</b> conversion in the period, worth EUR 1,200; 0 credited to touchpoints, "
                                 "1 with no touchpoint before it")
    many = AttributionReport(model=AttributionModel.LINEAR, conversions=1204, unattributed_conversions=4,
                             value={"EUR": 90210.5, "USD": 80.0})
    assert summary_text(many) == ("<b>1,204</b> conversions in the period, worth EUR 90,210 · USD 80; 1,200 "
                                  "credited to touchpoints, 4 with no touchpoint before them")


def test_the_busiest_platforms_get_a_line_each_and_the_rest_share_one() -> None:
    per_platform = {"twitter": [1, 0], "instagram": [9, 9], "linkedin": [4, 4], "facebook": [6, 6],
                    "tiktok": [2, 3], "youtube": [0, 2], "reddit": [1, 1]}
    series = TouchpointSeries(days=[date(2026, 12, 1), date(2026, 12, 2)], per_platform=per_platform)
    lines = platform_lines(series)
    assert list(lines) == ["Instagram", "Facebook", "LinkedIn", "TikTok", "Others"]
    assert lines["Others"] == [2, 3]  # Reddit, Twitter/X and YouTube, day by day
    assert sum(map(sum, lines.values())) == sum(map(sum, per_platform.values()))
    few = TouchpointSeries(days=series.days, per_platform=dict(list(per_platform.items())[:5]))
    assert set(platform_lines(few)) == {"Twitter/X", "Instagram", "LinkedIn", "Facebook", "TikTok"}


def test_touchpoints_of_a_single_day_show_as_points(qtbot: QtBot, workspace: Workspace) -> None:
    """A line of one point draws nothing: on a workspace whose touchpoints are all of today, each platform's count
    is marked, so the chart is not empty."""
    now = datetime.now(UTC)
    workspace.social.record_engagements([
        EngagementEvent(platform=platform, type=TouchpointType.LIKE, timestamp=now - timedelta(minutes=5),
                        post_id="post-1", campaign="Launch", user=EngagementUser(username=f"fan{number}"))
        for number, platform in enumerate([SocialPlatform.TWITTER, SocialPlatform.TWITTER, SocialPlatform.LINKEDIN])
    ])
    made = AttributionPanel(PeopleService(workspace.database, workspace.social, workspace.sync), now=now)
    qtbot.addWidget(made)
    made.refresh()
    lines = {line.name(): line for line in made.touchpoints_chart.chart().series()}
    assert set(lines) == {"Twitter/X", "LinkedIn"}
    for line in lines.values():
        assert isinstance(line, QLineSeries) and line.count() == 1 and line.pointsVisible()
    assert lines["Twitter/X"].at(0).y() == 2


def test_the_value_credited_stays_in_sight_in_a_window_1100_px_wide(panel: AttributionPanel, qtbot: QtBot) -> None:
    """Beside the sidebar of a 1,100 px window the two tables share about 900 px: names elide, figures stay whole."""
    panel.resize(900, 760)
    qtbot.wait(50)
    for table in (panel.campaigns_table, panel.platforms_table):
        last = table.columnCount() - 1
        right = table.horizontalHeader().sectionViewportPosition(last) + table.columnWidth(last)
        assert right <= table.viewport().width(), table.accessibleName()
        assert table.columnWidth(0) >= MIN_NAME_WIDTH


def test_with_the_apps_look_campaign_names_show_whole_in_a_window_1111_px_wide(
    styled_app: QApplication, qtbot: QtBot, workspace: Workspace
) -> None:
    """The two tables share the 930 px beside the sidebar of a 1,111 px window. With the stylesheet's header
    padding every figure took so much of it that the demo's "Customer stories" showed as "Customer...". The tables'
    headers are now as tight as the run history's: campaign and platform names show whole, figures too."""
    made = open_panel(qtbot, workspace, 930)
    qtbot.wait(50)
    for table, names in ((made.campaigns_table, ("Customer stories", "Black Friday")),
                         (made.platforms_table, ("Instagram", "Twitter/X"))):
        name_width = max(table.fontMetrics().horizontalAdvance(name) for name in names)
        assert table.columnWidth(0) >= name_width + 6, table.accessibleName()
        last = table.columnCount() - 1
        right = table.horizontalHeader().sectionViewportPosition(last) + table.columnWidth(last)
        assert right <= table.viewport().width(), table.accessibleName()


@pytest.fixture
def los_angeles(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZoneInfo]:
    """The process's local time zone is Los Angeles (UTC-8 in winter) for the test, as a marketer's there."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield ZoneInfo("America/Los_Angeles")
    monkeypatch.undo()
    time.tzset()


def like_at(when: datetime, campaign: str, post: str) -> EngagementEvent:
    return EngagementEvent(platform=SocialPlatform.TWITTER, type=TouchpointType.LIKE, timestamp=when, post_id=post,
                           campaign=campaign, user=EngagementUser(email=f"{post}@example.com"))


def bare_panel(qtbot: QtBot, workspace: Workspace, now: datetime) -> AttributionPanel:
    made = AttributionPanel(PeopleService(workspace.database, workspace.social, workspace.sync), now=now)
    qtbot.addWidget(made)
    made.resize(1100, 760)
    made.show()
    qtbot.waitExposed(made)
    return made


def chart_days(panel: AttributionPanel) -> dict[str, list[tuple[str, float]]]:
    """Each line of the touchpoints chart as (day as the axis labels it, in local time; count)."""
    return {line.name(): [(QDateTime.fromMSecsSinceEpoch(int(line.at(n).x())).toString("yyyy-MM-dd"), line.at(n).y())
                          for n in range(line.count())]  # type: ignore[attr-defined]
            for line in panel.touchpoints_chart.chart().series()}


def test_last_7_days_are_today_and_the_6_days_before(qtbot: QtBot, workspace: Workspace,
                                                     los_angeles: ZoneInfo) -> None:
    """"Last 7 days" reached back to midnight of the date 7 days ago: 8 calendar days. It starts at local midnight
    6 days before today, and says so."""
    now = datetime(2026, 12, 10, 15, 0, tzinfo=los_angeles)
    workspace.social.record_engagements([
        like_at(datetime(2026, 12, 3, 0, 30, tzinfo=los_angeles), "Eight days back", "p1"),
        like_at(datetime(2026, 12, 4, 0, 30, tzinfo=los_angeles), "Seven days back", "p2"),
    ])
    panel = bare_panel(qtbot, workspace, now)
    choose(panel.period_combo, "Last 7 days")
    assert panel.since() == datetime(2026, 12, 4, tzinfo=los_angeles)
    assert set(table_rows(panel.campaigns_table)) == {"Seven days back"}
    assert [day for day, _count in chart_days(panel)["Twitter/X"]] == [f"2026-12-{d:02d}" for d in range(4, 11)]
    assert "Today and the 6 days before" in panel.period_combo.toolTip()
    choose(panel.period_combo, "Last 30 days")
    assert panel.since() == datetime(2026, 11, 11, tzinfo=los_angeles)
    assert "Today and the 29 days before" in panel.period_combo.toolTip()


def test_a_date_and_the_chart_days_are_the_marketers_local_ones(qtbot: QtBot, workspace: Workspace,
                                                                  los_angeles: ZoneInfo) -> None:
    """West of UTC, "Since 1 Dec" started at 1 Dec 00:00 UTC (30 Nov 16:00 there), and a touch of 2 Dec 18:00
    there (3 Dec UTC) was drawn on the wrong day."""
    now = datetime(2026, 12, 5, 12, 0, tzinfo=los_angeles)
    workspace.social.record_engagements([
        like_at(datetime(2026, 11, 30, 18, 0, tzinfo=los_angeles), "Late Nov", "p1"),
        like_at(datetime(2026, 12, 2, 18, 0, tzinfo=los_angeles), "Dec", "p2"),
    ])
    panel = bare_panel(qtbot, workspace, now)
    choose(panel.period_combo, "Between dates…")
    panel.since_edit.setDate(QDate(2026, 12, 1))
    panel.until_edit.setDate(QDate(2026, 12, 5))
    assert panel.since() == datetime(2026, 12, 1, tzinfo=los_angeles)
    assert set(table_rows(panel.campaigns_table)) == {"Dec"}
    assert chart_days(panel)["Twitter/X"] == [
        ("2026-12-01", 0), ("2026-12-02", 1), ("2026-12-03", 0), ("2026-12-04", 0), ("2026-12-05", 0)]
    choose(panel.period_combo, "All time")
    assert chart_days(panel)["Twitter/X"][:4] == [
        ("2026-11-30", 1), ("2026-12-01", 0), ("2026-12-02", 1), ("2026-12-03", 0)]


def test_between_dates_ends_with_the_last_days_midnight(qtbot: QtBot, workspace: Workspace, tmp_path: Path,
                                                          los_angeles: ZoneInfo) -> None:
    """A period could only run to now ("Since a date…"): November's report counted December too."""
    now = datetime(2026, 12, 5, 12, 0, tzinfo=los_angeles)
    workspace.social.record_engagements([
        like_at(datetime(2026, 11, 10, 9, 0, tzinfo=los_angeles), "Nov", "p1"),
        like_at(datetime(2026, 11, 30, 23, 30, tzinfo=los_angeles), "Nov", "p2"),  # 1 Dec in UTC
        like_at(datetime(2026, 12, 1, 0, 30, tzinfo=los_angeles), "Dec", "p3"),
    ])
    panel = bare_panel(qtbot, workspace, now)
    choose(panel.period_combo, "Between dates…")
    assert panel.until_edit.isVisible() and panel.until_label.isVisible()
    panel.since_edit.setDate(QDate(2026, 11, 1))
    panel.until_edit.setDate(QDate(2026, 11, 30))
    assert panel.until() == datetime(2026, 12, 1, tzinfo=los_angeles)
    assert table_rows(panel.campaigns_table)["Nov"][0] == "2" and "Dec" not in table_rows(panel.campaigns_table)
    days = chart_days(panel)["Twitter/X"]
    assert (days[0][0], days[-1][0], len(days)) == ("2026-11-01", "2026-11-30", 30)
    assert sum(count for _day, count in days) == 2
    assert panel.report is not None and write_report_csv(panel.report, tmp_path / "november.csv") == 2
    with (tmp_path / "november.csv").open(encoding="utf-8-sig") as handle:
        first = next(csv.DictReader(handle))
    assert (first["period_start"], first["period_end"]) == ("2026-11-01T07:00:00Z", "2026-12-01T08:00:00Z")
    # The last day cannot be set before the first.
    panel.until_edit.setDate(QDate(2026, 10, 1))
    assert panel.until_edit.date() == QDate(2026, 11, 1)
    choose(panel.period_combo, "Last 7 days")
    assert panel.until() is None and panel.until_edit.isHidden()


def test_quiet_days_show_as_zero_across_the_whole_period(qtbot: QtBot, workspace: Workspace) -> None:
    """Days without a touchpoint were left out (the line jumped over them) and the axis began at the first busy
    day: every day of the period is on the chart, a quiet one at 0."""
    now = datetime.now(UTC)
    workspace.social.record_engagements([
        like_at(now - timedelta(days=days_ago, minutes=minute), "Launch", f"p{days_ago}-{minute}")
        for days_ago in (10, 2) for minute in range(5)
    ])
    panel = bare_panel(qtbot, workspace, now)
    choose(panel.period_combo, "Last 30 days")
    points = chart_days(panel)["Twitter/X"]
    today = now.astimezone().date()
    assert [day for day, _count in points] == [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    by_day = dict(points)
    assert by_day[(now - timedelta(days=10)).astimezone().date().isoformat()] == 5
    assert by_day[(now - timedelta(days=2)).astimezone().date().isoformat()] == 5
    assert sum(count for _day, count in points) == 10
    assert by_day[(now - timedelta(days=6)).astimezone().date().isoformat()] == 0
    axis = panel.touchpoints_chart.chart().axes(Qt.Orientation.Horizontal)[0]
    assert isinstance(axis, QDateTimeAxis)
    assert axis.min().date().toPython() == today - timedelta(days=29)  # type: ignore[operator]


def test_campaign_names_that_shorten_alike_keep_a_bar_each(qapp: QApplication) -> None:
    """150 campaigns named "Campaign 001 Spring Launch …": shortened on the right they all read "Campaign 0…",
    and the axis kept one bar's slot for them all; each name keeps its own label."""
    axis = QBarCategoryAxis()
    names = [f"Campaign {number:03d} Spring Launch Brand Awareness {network}"
             for number, network in enumerate(["twitter", "instagram", "linkedin", "facebook", "tiktok"] * 3)]
    labels = campaign_labels(axis, names, 500)
    assert len(set(labels)) == len(names)
    axis.append(labels)
    assert axis.count() == len(names)


def test_the_chart_draws_a_bar_per_campaign_and_says_when_it_shows_the_top_ones(
        qtbot: QtBot, workspace: Workspace) -> None:
    now = seed_marketing(workspace)
    workspace.social.record_engagements([EngagementEvent(
        platform=SocialPlatform.LINKEDIN, type=TouchpointType.CLICK, post_id=f"tail-{number}",
        user=EngagementUser(email=email_of(number)), timestamp=now - timedelta(days=3),
        campaign=f"Campaign {number:03d} Spring Launch Brand Awareness") for number in range(20)])
    made = AttributionPanel(PeopleService(workspace.database, workspace.social, workspace.sync), now=now)
    qtbot.addWidget(made)
    made.resize(700, 760)
    made.show()
    qtbot.waitExposed(made)
    chart = made.conversions_chart.chart()
    series = chart.series()[0]
    assert isinstance(series, QHorizontalBarSeries)
    axis = chart.axes(Qt.Orientation.Vertical)[0]
    assert isinstance(axis, QBarCategoryAxis)
    assert made.report is not None
    campaigns = len(made.report.by_campaign)
    assert campaigns > 12
    assert series.barSets()[0].count() == 12 and axis.count() == 12
    assert chart.title() == f"Conversions credited: the 12 campaigns with the most, of {campaigns}"


def test_the_report_is_worked_out_off_the_gui_thread_and_the_newest_ask_is_drawn(
        qtbot: QtBot, workspace: Workspace, qasync_loop: object) -> None:
    """On 100,000 touchpoints a report takes seconds: worked out on the GUI thread, each pick of a model froze
    the window that long. It is worked out on a store thread; picks made meanwhile draw only the newest."""
    panel = open_panel(qtbot, workspace)
    qtbot.waitUntil(lambda: panel.report is not None and not panel.busy, timeout=5000)
    threads: list[threading.Thread] = []
    work_out = panel.service.attribution_report

    def recording(*args: Any, **kwargs: Any) -> AttributionReport:
        threads.append(threading.current_thread())
        return work_out(*args, **kwargs)

    panel.service.attribution_report = recording  # type: ignore[method-assign]
    choose(panel.model_combo, "First touch")
    choose(panel.model_combo, "Position based")
    assert panel.busy and panel.summary_label.text().startswith("Working out the report")
    qtbot.waitUntil(lambda: not panel.busy, timeout=5000)
    assert threads and threading.main_thread() not in threads
    assert panel.report is not None and panel.report.model is AttributionModel.POSITION_BASED
    assert panel.summary_label.text().startswith("<b>")
