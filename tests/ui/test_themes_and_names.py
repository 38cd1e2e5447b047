"""Every panel rendered light and dark with demo data (docs/screenshots/ when ``CRM_DESKTOP_SHOTS`` says so), the
dark theme really dark, icons sharp at 2x, and every control of every panel and dialog named for screen readers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTabBar,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from pytestqt.qtbot import QtBot

from crm_desktop.app.api_port import PORT_ENV
from crm_desktop.domain.models import Integration, Provider
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import ConflictRule
from crm_desktop.ui.accessibility import install_accessible_names, needs_name, unnamed_controls
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.theme import DARK_COLOURS, Theme, apply_theme, icon, resource_file, stylesheet
from tests.support.marketing_data import seed_marketing
from tests.ui.conftest import HubSpotBench
from tests.ui.test_screenshots import distinct_colours, save_shot, shots_dir

__all__ = ["shots_dir"]


@pytest.fixture
def themed(qapp: QApplication) -> Iterator[QApplication]:
    """The app in a theme the test picks; plain light again afterwards."""
    yield qapp
    apply_theme(qapp, Theme.LIGHT)
    qapp.setStyleSheet("")


@pytest.fixture
def demo_window(
    qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop, qapp: QApplication
) -> Iterator[MainWindow]:
    """The window over demo data: marketing people and campaigns, a HubSpot integration synced twice (one record
    refused, two conflicts), a Salesforce one, and the alert the refused record raised."""
    workspace = hubspot.workspace
    seed_marketing(workspace, people=40)
    workspace.integrations.add(
        Integration(provider=Provider.SALESFORCE, name="salesforce-prod", description="Production org",
                    base_url=hubspot.sandbox.base_url),
        {"clientId": "3MVG9-demo-consumer-key"},
    )
    workspace.sync.set_rule(workspace.integrations.get(hubspot.name), RecordObject.CONTACT, "company",
                            ConflictRule.MANUAL)
    names = install_accessible_names(qapp)
    window = MainWindow(workspace, tray_available=False)
    qtbot.addWidget(window)
    window.resize(1240, 820)
    window.show()
    qtbot.waitExposed(window)

    def sync_now() -> None:
        task = window.sync_monitor_panel.sync_now(hubspot.name)
        assert task is not None
        qtbot.waitUntil(task.done, timeout=20_000)

    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[5]))
    sync_now()
    for number, email in enumerate(("person1@example.com", "person2@example.com"), start=1):
        hubspot.edit_locally(email, company=f"Local Co {number}")
        hubspot.edit_in_crm(email, company=f"CRM Co {number}")
    sync_now()
    window.refresh_conflicts()
    window.desk.alerts_dock.show()
    try:
        yield window
    finally:
        qapp.removeEventFilter(names)
        names.deleteLater()


@pytest.mark.parametrize("theme", list(Theme))
def test_every_panel_renders_in_both_themes(
    qtbot: QtBot, demo_window: MainWindow, themed: QApplication, shots_dir: Path, theme: Theme
) -> None:
    apply_theme(themed, theme)
    window = demo_window
    for index, entry in enumerate(window.panels):
        window.show_panel(index)
        # The People list is read on its reading thread: shoot it with its rows.
        qtbot.waitUntil(lambda: not window.people_panel.model.busy, timeout=5000)
        if entry.title == "Attribution" and window.attribution_panel.busy:
            # Worked out on a store thread: the panel waiting for it is in the theme too (its empty charts were
            # two white boxes in the dark theme), then it is shot with its report.
            waiting = window.grab().toImage()
            assert (mean_lightness(waiting) < 70) if theme is Theme.DARK else (mean_lightness(waiting) > 190)
            qtbot.waitUntil(lambda: not window.attribution_panel.busy, timeout=10_000)
        if entry.title == "Conflicts":
            # Both conflicts selected, as a marketer deciding them at once sees them.
            window.conflicts_panel.table.selectAll()
        name = entry.title.lower().replace(" ", "-")
        image = save_shot(window, shots_dir / f"{theme.value}-{name}.png")
        assert distinct_colours(image) > 20, f"{entry.title} looks blank in the {theme.value} theme"
        lightness = mean_lightness(image)
        if theme is Theme.DARK:
            assert lightness < 70, f"{entry.title} is dark in the dark theme (mean lightness {lightness:.0f})"
        else:
            assert lightness > 190, f"{entry.title} is light in the light theme (mean lightness {lightness:.0f})"


def mean_lightness(image: QImage, step: int = 6) -> float:
    values = [QColor(image.pixel(x, y)).lightness()
              for y in range(0, image.height(), step) for x in range(0, image.width(), step)]
    return sum(values) / len(values)


def test_the_settings_dialog_renders_in_both_themes(
    qtbot: QtBot, demo_window: MainWindow, themed: QApplication, shots_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pictures show the dialog as a marketer sees it, without the tests' port variable (its note aside).
    monkeypatch.delenv(PORT_ENV, raising=False)
    for theme in Theme:
        apply_theme(themed, theme)
        dialog = demo_window.desk.open_settings()
        qtbot.waitExposed(dialog)
        for index in range(dialog.tabs.count()):
            dialog.tabs.setCurrentIndex(index)
            tab = dialog.tabs.tabText(index).lower().replace(" ", "-")
            image = save_shot(dialog, shots_dir / f"{theme.value}-settings-{tab}.png")
            assert distinct_colours(image) > 10
        dialog.reject()
        qtbot.waitUntil(lambda: demo_window.desk.settings_dialog is None)


def test_every_control_of_every_panel_and_dialog_has_an_accessible_name(
    qtbot: QtBot, demo_window: MainWindow
) -> None:
    window = demo_window
    problems = []
    for index, entry in enumerate(window.panels):
        window.show_panel(index)
        if missing := unnamed_controls(entry.widget):
            problems.append(f"{entry.title}: {describe(missing)}")
    in_panels = {id(w) for entry in window.panels for w in unnamed_controls(entry.widget)}
    if missing := [w for w in unnamed_controls(window) if id(w) not in in_panels]:
        problems.append(f"window: {describe(missing)}")
    dialogs = [window.desk.open_settings(), window.open_network_settings()]
    window.integrations_panel.reload(select="salesforce-prod")
    dialogs.append(window.integrations_panel.open_edit_dialog())  # type: ignore[arg-type]
    for dialog in dialogs:
        qtbot.waitExposed(dialog)
        if missing := unnamed_controls(dialog):
            problems.append(f"{dialog.windowTitle()}: {describe(missing)}")
        dialog.reject()
    assert not problems, "controls without an accessible name:\n" + "\n".join(problems)


def test_tab_moves_on_from_every_table_of_every_panel_and_dialog(
    qtbot: QtBot, demo_window: MainWindow, tmp_path: Path
) -> None:
    """A keyboard user who tabbed into a table could not tab out of it: Tab stepped from cell to cell and wrapped
    round from the last to the first, for ever (every panel has a table, so Tab never reached the controls after
    it, such as Import's Save). Tab now goes on to the next control; the arrow keys move in the table."""
    window = demo_window
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    people = window.people_panel
    path = tmp_path / "contacts.csv"
    path.write_text("email,firstName\nada@example.com,Ada\nnot-an-email,Bob\n", encoding="utf-8")
    task = people.preview_import(path)
    qtbot.waitUntil(task.done, timeout=5000)
    imported = task.result()
    assert imported is not None
    roots: list[QWidget] = [entry.widget for entry in window.panels] + [window.desk.alerts_panel, imported]
    stuck = []
    checked = 0
    for root in roots:
        if root in (entry.widget for entry in window.panels):
            window.show_panel(window.stack.indexOf(root))
            qtbot.waitUntil(lambda: not people.model.busy, timeout=5000)
        else:
            root.show()
            qtbot.waitExposed(root)
        shown = root.window()
        shown.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is shown)  # noqa: B023 (waited for here)
        for table in root.findChildren(QAbstractItemView):
            model = table.model()
            if (not needs_name(table) or not table.isVisible() or model is None or model.rowCount() == 0
                    or model.columnCount() < 2):
                continue
            table.setFocus(Qt.FocusReason.TabFocusReason)
            table.setCurrentIndex(model.index(0, 0))
            checked += 1
            for _ in range(3):
                QTest.keyClick(table, Qt.Key.Key_Tab)
                if QApplication.focusWidget() is not table:
                    break
            else:
                stuck.append(table.accessibleName())
    imported.reject()
    assert checked >= 8, "the walk reached the tables with rows"
    assert not stuck, f"Tab stays in {stuck}"


def contrast(first: QColor, second: QColor) -> float:
    """WCAG's contrast ratio of two colours (1 to 21)."""
    def luminance(colour: QColor) -> float:
        channels = [value / 255 for value in (colour.red(), colour.green(), colour.blue())]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.mark.parametrize("theme", list(Theme))
def test_the_button_the_keyboard_is_on_is_plain_to_see(qtbot: QtBot, themed: QApplication, theme: Theme) -> None:
    """Tabbing onto a button drew only the platform style's faint inner frame (about 1.5:1 against the button; on the
    dark theme's window nobody could tell where the keyboard was). Each kind of button now changes, where the focus
    is, by 3:1 or more (WCAG's least for a focus indicator), and keeps its size."""
    apply_theme(themed, theme)
    root = QWidget()
    qtbot.addWidget(root)
    layout = QVBoxLayout(root)
    start = QLineEdit()
    plain = QPushButton("Edit…")
    primary = QPushButton("Sync now")
    primary.setProperty("primary", True)
    default = QPushButton("Save")
    default.setDefault(True)
    for widget in (start, plain, primary, default):
        layout.addWidget(widget)
    root.show()
    root.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is root)
    start.setFocus()
    for button in (plain, primary, default):
        size = button.size()
        before = button.grab().toImage()
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is button
        after = button.grab().toImage()
        assert button.size() == size
        change = max((contrast(QColor(before.pixel(x, y)), QColor(after.pixel(x, y)))
                      for y in range(after.height()) for x in range(after.width())), default=1.0)
        assert change >= 3, f"{button.text()} with the focus in the {theme.value} theme: {change:.2f}:1"


@pytest.mark.parametrize("theme", list(Theme))
def test_the_tick_box_tab_and_cell_the_keyboard_is_on_are_plain_to_see(
    qtbot: QtBot, themed: QApplication, theme: Theme
) -> None:
    """Tabbing onto a tick box turned its border blue and drew the platform style's faint frame round its label;
    onto a tab bar or a table, a pale frame inside the tab or round the cell (1.2-2:1 against what was there). Each
    now changes by 3:1 or more where the focus is, as the buttons do, ticked or not, and keeps its size: the
    tabs keep their places (also sized again with the focus on them: a ring as a border then cut "Contacts" to
    "ontac"), and a table's current cell (with its tick box) is ringed."""
    apply_theme(themed, theme)
    root = QWidget()
    qtbot.addWidget(root)
    layout = QVBoxLayout(root)
    start = QLineEdit()
    unticked = QCheckBox("Preview first")
    ticked = QCheckBox("Keep syncing in the tray")
    ticked.setChecked(True)
    bar = QTabBar()  # as People's: each tab as wide as its title needs
    bar.setExpanding(False)
    bar.setDrawBase(False)
    for title in ("Contacts", "Leads"):
        bar.addTab(title)
    pages = QTabWidget()
    for title in ("General", "Local API"):
        pages.addTab(QWidget(), title)
    table = QTableWidget(2, 2)
    for row in range(2):
        item = QTableWidgetItem("Sync")
        item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        item.setCheckState(Qt.CheckState.Checked if row else Qt.CheckState.Unchecked)
        table.setItem(row, 0, item)
    table.setCurrentCell(0, 0)
    for widget in (start, unticked, ticked, bar, pages, table):
        layout.addWidget(widget)
    root.show()
    root.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is root)
    start.setFocus()
    for widget, name in ((unticked, "unticked box"), (ticked, "ticked box"), (bar, "tab bar"),
                         (pages.tabBar(), "tab widget's tabs"), (table, "table's cell")):
        size = widget.size()
        tabs = [widget.tabRect(index) for index in range(widget.count())] if isinstance(widget, QTabBar) else []
        before = widget.grab().toImage()
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is widget, name
        if isinstance(widget, QTabBar):  # the tabs sized again while the bar has the focus
            title = widget.tabText(0)
            widget.setTabText(0, title + " ")
            widget.setTabText(0, title)
            assert [widget.tabRect(index) for index in range(widget.count())] == tabs, name
        after = widget.grab().toImage()
        assert widget.size() == size, name
        change = max((contrast(QColor(before.pixel(x, y)), QColor(after.pixel(x, y)))
                      for y in range(after.height()) for x in range(after.width())), default=1.0)
        assert change >= 3, f"the {name} with the focus in the {theme.value} theme: {change:.2f}:1"


def test_the_walk_finds_an_unnamed_control(qtbot: QtBot, qapp: QApplication) -> None:
    """The accessibility walk is not vacuous: a control showing nothing to name it by is reported."""
    names = install_accessible_names(qapp)
    try:
        root = QWidget()
        qtbot.addWidget(root)
        table = QTableView(root)
        named = QPushButton("Sync now", root)
        scroll = QScrollArea(root)  # not a control one acts on, but Tab stops on it: a screen reader announces it
        root.show()
        qtbot.waitExposed(root)
        assert unnamed_controls(root) == [table, scroll]
        assert named.accessibleName() == "Sync now"
    finally:
        qapp.removeEventFilter(names)


def describe(widgets: list[QWidget]) -> str:
    return ", ".join(f"{type(w).__name__}({w.objectName() or w.toolTip()[:30]!r})" for w in widgets)


def test_every_stylesheet_colour_has_a_dark_counterpart() -> None:
    light = resource_file("style.qss").read_text(encoding="utf-8")
    used = {colour.lower() for colour in re.findall(r"#[0-9a-fA-F]{6}\b", light)}
    assert used <= DARK_COLOURS.keys(), f"no dark colour for {sorted(used - DARK_COLOURS.keys())}"
    dark = stylesheet(Theme.DARK).lower()
    assert "#ffffff" not in dark and "background: #0f172a" in dark, "the window background is dark"
    assert stylesheet(Theme.LIGHT) == light


@pytest.mark.parametrize("name", ["crm-desktop.svg", "people.svg", "sync-monitor.svg"])
def test_icons_are_drawn_sharp_at_twice_the_pixels(qapp: QApplication, name: str) -> None:
    """An icon asked for at a device pixel ratio of 2 is drawn at 2x from its SVG, not a 1x bitmap scaled up."""
    sharp = icon(name).pixmap(QSize(24, 24), 2.0)
    assert sharp.devicePixelRatio() == 2.0
    assert (sharp.width(), sharp.height()) == (48, 48)
    drawn_at_48 = icon(name).pixmap(QSize(48, 48), 1.0).toImage()
    scaled_up = icon(name).pixmap(QSize(24, 24), 1.0).toImage().scaled(48, 48)
    as_drawn = sharp.toImage()
    as_drawn.setDevicePixelRatio(1.0)
    assert as_drawn.convertToFormat(drawn_at_48.format()) == drawn_at_48
    assert as_drawn.convertToFormat(scaled_up.format()) != scaled_up
