"""Render the Sync Monitor (health, a failed run's errors, the metrics charts) with real runs to PNG.

Set ``CRM_DESKTOP_SHOTS=docs/screenshots`` to keep the images (the README shows them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.metrics_store import AttemptFigures
from crm_desktop.store.models import SyncRunStatus
from crm_desktop.ui.main_window import MainWindow
from tests.ui.conftest import HubSpotBench, unfinished_tasks
from tests.ui.test_screenshots import distinct_colours, save_shot, shots_dir

__all__ = ["shots_dir"]


def earlier_figures(bench: HubSpotBench, name: str, hours: int, *, failing_every: int = 0,
                    calls_per_hour: int = 2_000) -> None:
    """A day of hourly runs before the ones the test makes, as the store would hold them (for the charts)."""
    integration = bench.workspace.integrations.get(name)
    assert integration.id is not None
    store = bench.workspace.monitor.store
    now = datetime.now(UTC)
    for hour in range(hours, 0, -1):
        failed = bool(failing_every) and hour % failing_every == 0
        store.record_attempt(AttemptFigures(
            integration.id, None, SyncRunStatus.PARTIAL if failed else SyncRunStatus.SUCCEEDED,
            contacts_synced=40 + (hour * 37) % 90, leads_synced=hour % 7, records_failed=3 if failed else 0,
            api_calls=60 + hour % 11, api_errors=4 if failed else hour % 2, quota_limit=250_000,
            quota_remaining=250_000 - calls_per_hour * (hours - hour + 1), at=now - timedelta(hours=hour, minutes=10),
        ))
        bench.workspace.monitor.store.record_event_latency(
            integration.id, 4.0 + (hour * 13) % 9, at=now - timedelta(hours=hour, minutes=20))


def test_the_sync_monitor_renders_health_errors_and_metrics(
    qtbot: QtBot, styled_app: QApplication, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop,
    shots_dir: Path,
) -> None:
    hubspot.add_integration("hubspot-sales")
    hubspot.add_integration("hubspot-emea", token="pat-na1-00000000-0000-0000-0000-000000000000")
    hubspot.save_people(40, start=4)
    earlier_figures(hubspot, "hubspot-marketing", 23)
    earlier_figures(hubspot, "hubspot-sales", 23, failing_every=5, calls_per_hour=4_500)
    window = MainWindow(hubspot.workspace)
    qtbot.addWidget(window)
    window.resize(1240, 900)
    window.show()
    qtbot.waitExposed(window)
    window.show_panel(window.stack.indexOf(window.sync_monitor_panel))
    panel = window.sync_monitor_panel

    def sync(name: str) -> None:
        with qtbot.waitSignal(panel.runs_finished, timeout=20_000):
            panel.sync_now(name)
        qtbot.waitUntil(lambda: not panel.running_integrations and not unfinished_tasks(), timeout=10_000)

    hubspot.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[4, 9, 17])])
    sync("hubspot-sales")
    hubspot.sandbox.faults.replace([])
    sync("hubspot-marketing")
    sync("hubspot-emea")
    failed_run = next(run for run in hubspot.workspace.sync.runs() if run.failed)
    assert panel.select_run(failed_run.id)
    qtbot.waitUntil(lambda: panel.errors_model.rowCount() == 1, timeout=5000)
    qtbot.waitUntil(lambda: len(panel.health_board.rows) == 3 and
                    "Needs reconnect" in panel.health_board.rows["hubspot-emea"].state_label.text(), timeout=5000)
    assert "Some records failed" in panel.health_board.rows["hubspot-sales"].state_label.text()
    assert "In sync" in panel.health_board.rows["hubspot-marketing"].state_label.text()

    image = save_shot(window, shots_dir / "sync_monitor.png")
    assert distinct_colours(image) > 30

    tab_bar = panel.tabs.tabBar()
    with qtbot.waitSignal(panel.metrics_shown, timeout=5000):
        QTest.mouseClick(tab_bar, Qt.MouseButton.LeftButton, pos=tab_bar.tabRect(1).center())
    assert len(panel.charts.line_values(panel.charts.contacts_chart)["Contacts"]) == 24
    image = save_shot(window, shots_dir / "sync_monitor_metrics.png")
    assert distinct_colours(image) > 40, "the charts are drawn"
