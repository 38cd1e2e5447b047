"""Render the People and Attribution panels with demo-like marketing data to PNG and check something was drawn.

Set ``CRM_DESKTOP_SHOTS=docs/screenshots`` to keep the images (the README shows them).
"""

from __future__ import annotations

from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.main_window import MainWindow
from tests.support.marketing_data import email_of, seed_marketing
from tests.ui.test_screenshots import distinct_colours, save_shot, shots_dir

__all__ = ["shots_dir"]


def test_the_people_and_attribution_panels_render(
    qtbot: QtBot, styled_app: QApplication, workspace: Workspace, shots_dir: Path, qasync_loop: qasync.QEventLoop
) -> None:
    seed_marketing(workspace, people=60)
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.resize(1240, 760)
    window.show()
    qtbot.waitExposed(window)
    window.show_panel(window.stack.indexOf(window.people_panel))
    people = window.people_panel
    QTest.mouseClick(people.kind_tabs, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     people.kind_tabs.tabRect(1).center())
    qtbot.waitUntil(lambda: not people.model.busy, timeout=5000)  # read on the list's reading thread
    row = next(r for r in range(people.model.rowCount()) if people.model.line(r).email == email_of(0))  # type: ignore[union-attr]
    people.table.selectRow(row)
    qtbot.waitUntil(lambda: people.detail_pane.detail is not None, timeout=5000)  # read on a store thread
    people.detail_pane.tabs.setCurrentIndex(1)
    image = save_shot(window, shots_dir / "window-people.png")
    assert distinct_colours(image) > 20
    people.detail_pane.tabs.setCurrentIndex(2)
    image = save_shot(window, shots_dir / "window-people-attribution.png")
    assert distinct_colours(image) > 20

    window.show_panel(window.stack.indexOf(window.attribution_panel))
    attribution = window.attribution_panel
    qtbot.waitUntil(lambda: attribution.report is not None and not attribution.busy, timeout=5000)  # a store thread
    assert attribution.report is not None and attribution.report.by_campaign
    image = save_shot(window, shots_dir / "window-attribution.png")
    assert distinct_colours(image) > 40, "the charts are drawn"
