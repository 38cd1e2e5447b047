"""The Sync Monitor, offscreen, after each CRM refused a sync for a missing permission (the three sandboxes served on
loopback): a "Permission" error group with its count and a sample saying what to ask the CRM's admin for, and a
health line that is "Failing" with that reason, never "Needs reconnect"."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Contact
from crm_desktop.sandbox.hubspot import DEFAULT_SCOPES
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import ErrorColumn
from crm_desktop.ui.tasks import BackgroundTasks
from tests.support.served_crms import ServedCrms, served_crms
from tests.ui.conftest import unfinished_tasks

#: Per CRM: how its sandbox is made to refuse, and what the marketer is told to ask the admin for.
REFUSALS: dict[str, tuple[Callable[[ServedCrms], None], str]] = {
    "salesforce": (lambda crms: crms.salesforce.apply_config({"read_only_objects": ["Contact"]}),
                   "ask your Salesforce admin for Read, Create and Edit on Contact"),
    "hubspot": (lambda crms: setattr(crms.hubspot, "scopes",
                                     [s for s in DEFAULT_SCOPES if s != "crm.objects.contacts.write"]),
                "crm.objects.contacts.write"),
    "pipedrive": (lambda crms: crms.pipedrive.apply_config({"can_edit_persons": False}),
                  "ask your Pipedrive admin to allow it"),
}


@pytest.fixture
def served(workspace: Workspace) -> Iterator[ServedCrms]:
    with served_crms() as crms:
        crms.connect(workspace)
        workspace.contacts.save_many(Contact(email=f"fan{n}@example.com", first_name="Fan", last_name=str(n))
                                     for n in range(1, 4))
        yield crms


@pytest.fixture
def panel(qtbot: QtBot, workspace: Workspace, served: ServedCrms,
          qasync_loop: qasync.QEventLoop) -> Iterator[SyncMonitorPanel]:
    widget = SyncMonitorPanel(workspace.monitor, BackgroundTasks())
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: "pipedrive" in widget.health_board.rows, timeout=5000)
    yield widget


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_permission_refusal_shows_a_permission_group_and_a_failing_health_line(
    panel: SyncMonitorPanel, qtbot: QtBot, served: ServedCrms, name: str
) -> None:
    refuse, ask_for = REFUSALS[name]
    refuse(served)
    panel.integration_combo.setCurrentText(name)

    with qtbot.waitSignal(panel.runs_finished, timeout=15_000):
        QTest.mouseClick(panel.sync_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.running_integrations and not unfinished_tasks(), timeout=15_000)

    qtbot.waitUntil(lambda: panel.errors_model.rowCount() == 1, timeout=5000)
    errors = panel.errors_model
    assert errors.index(0, ErrorColumn.CATEGORY).data() == "Permission"
    assert errors.index(0, ErrorColumn.RECORDS).data() == 3
    assert ask_for in errors.index(0, ErrorColumn.SAMPLE).data()
    assert panel.errors_table.isVisible()

    row = panel.health_board.rows[name]
    qtbot.waitUntil(lambda: "Failing" in row.state_label.text(), timeout=5000)
    assert "Needs reconnect" not in row.state_label.text()
    assert ask_for in row.state_label.toolTip()
