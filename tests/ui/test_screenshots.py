"""Render the window, each panel and the integration dialog to PNG, and check something sensible was drawn.

Set ``CRM_DESKTOP_SHOTS=/tmp/crm-shots`` to keep the images for a look; by default they go to the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import qasync
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.store.models import ConflictRule
from crm_desktop.ui.field_mapping_panel import MappingColumn
from crm_desktop.ui.integrations_panel import IntegrationDialog
from crm_desktop.ui.main_window import MainWindow
from tests.ui.conftest import HubSpotBench


@pytest.fixture
def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CRM_DESKTOP_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def distinct_colours(image: QImage, step: int = 4) -> int:
    colours = set()
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            colours.add(image.pixel(x, y))
    return len(colours)


#: Every image written in this test session: two tests writing one name would leave whichever ran last in
#: ``CRM_DESKTOP_SHOTS`` (the People picture in README was once the empty window of another test).
_WRITTEN: set[str] = set()


def save_shot(widget: QWidget, path: Path) -> QImage:
    key = path.name if os.environ.get("CRM_DESKTOP_SHOTS") else str(path)
    assert key not in _WRITTEN, f"{path.name} is written by two screenshot tests: give one of them its own name"
    _WRITTEN.add(key)
    for _ in range(5):  # let nested layouts settle after the last text change (one level per pass)
        QApplication.processEvents()
    assert widget.grab().save(str(path)), f"could not write {path}"
    image = QImage(str(path))
    assert not image.isNull()
    return image


def seed(workspace: Workspace) -> None:
    workspace.integrations.add(
        Integration(provider=Provider.HUBSPOT, name="hubspot-marketing", description="Main marketing portal"),
        {"token": "pat-na1-11111111-2222"},
    )
    workspace.integrations.add(
        Integration(
            provider=Provider.SALESFORCE,
            name="salesforce-sandbox",
            description="Full-copy sandbox for campaign tests",
            base_url="https://acme--full.sandbox.my.salesforce.com",
            sync_config=SyncConfig(direction=SyncDirection.PUSH, sync_interval=60, auto_sync=False),
        ),
        None,
    )
    workspace.integrations.add(
        Integration(provider=Provider.PIPEDRIVE, name="pipedrive-sales", domain="acme"),
        {"apiToken": "0123456789abcdef0123"},
    )


def test_every_panel_renders(qtbot: QtBot, styled_app: QApplication, workspace: Workspace, shots_dir: Path) -> None:
    seed(workspace)
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.resize(1240, 760)
    window.show()
    qtbot.waitExposed(window)
    for index, entry in enumerate(window.panels):
        window.show_panel(index)
        name = entry.title.lower().replace(" ", "-")
        image = save_shot(window, shots_dir / f"bare-{name}.png")  # window-*.png are the ones with demo data
        assert (image.width(), image.height()) == (window.width(), window.height())
        assert distinct_colours(image) > 20, f"{entry.title} looks blank"


@pytest.mark.parametrize("provider", list(Provider))
def test_the_integration_dialog_renders(
    qtbot: QtBot, styled_app: QApplication, workspace: Workspace, shots_dir: Path, provider: Provider
) -> None:
    dialog = IntegrationDialog(workspace.integrations)
    qtbot.addWidget(dialog)
    dialog.provider_combo.setCurrentIndex(dialog.provider_combo.findData(provider))
    dialog.show()
    qtbot.waitExposed(dialog)
    image = save_shot(dialog, shots_dir / f"dialog-add-{provider.value}.png")
    assert distinct_colours(image) > 20


def test_the_dialog_error_renders(
    qtbot: QtBot, styled_app: QApplication, workspace: Workspace, shots_dir: Path
) -> None:
    dialog = IntegrationDialog(workspace.integrations)
    qtbot.addWidget(dialog)
    dialog.show()
    QTest.keyClicks(dialog.name_edit, "hubspot-prod")
    QTest.keyClicks(dialog.base_url_edit, "http://example.com")
    dialog.accept()
    assert dialog.error_label.isVisible()
    save_shot(dialog, shots_dir / "dialog-error.png")


def test_the_edit_dialog_renders(qtbot: QtBot, styled_app: QApplication, workspace: Workspace, shots_dir: Path) -> None:
    seed(workspace)
    dialog = IntegrationDialog(workspace.integrations, workspace.integrations.get("hubspot-marketing"))
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    image = save_shot(dialog, shots_dir / "dialog-edit-hubspot.png")
    assert distinct_colours(image) > 20


# -- the sync panels with real data from an in-process HubSpot ---------------------------------------------------


def test_the_sync_panels_render_with_data(
    qtbot: QtBot,
    styled_app: QApplication,
    hubspot: HubSpotBench,
    shots_dir: Path,
    qasync_loop: qasync.QEventLoop,
) -> None:
    workspace = hubspot.workspace
    hubspot.save_people(9, start=4)
    workspace.integrations.add(
        Integration(provider=Provider.SALESFORCE, name="salesforce-prod", description="Production org",
                    base_url=hubspot.sandbox.base_url),
        {"clientId": "3MVG9-demo-consumer-key"},
    )
    integration = workspace.integrations.get(hubspot.name)
    workspace.sync.set_rule(integration, RecordObject.CONTACT, "company", ConflictRule.MANUAL)
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.resize(1240, 760)
    window.show()
    qtbot.waitExposed(window)
    monitor = window.sync_monitor_panel

    def sync_now() -> None:
        with qtbot.waitSignal(monitor.runs_finished, timeout=10_000):
            monitor.sync_now(hubspot.name)
        qtbot.waitUntil(lambda: not window.tasks.pending, timeout=5000)

    shots: dict[str, QImage] = {}

    def shoot_while_running(text: str, done: int, total: int) -> None:
        if "pushing" in text and "sync-monitor-running" not in shots:
            shots["sync-monitor-running"] = save_shot(window, shots_dir / "window-sync-monitor-running.png")

    window.show_panel(3)
    monitor.progress_shown.connect(shoot_while_running)
    hubspot.sandbox.faults.add(FaultRule(FaultKind.INVALID_RECORD, at=[5]))
    sync_now()
    monitor.progress_shown.disconnect(shoot_while_running)
    assert "sync-monitor-running" in shots
    for number, email in enumerate(("person1@example.com", "person2@example.com"), start=1):
        hubspot.edit_locally(email, company=f"Local Co {number}")
        hubspot.edit_in_crm(email, company=f"CRM Co {number}")
    hubspot.edit_in_crm("person3@example.com", firstname="Augusta")
    sync_now()
    monitor.select_run(1)

    shots["sync-monitor"] = save_shot(window, shots_dir / "window-sync-monitor.png")
    window.show_panel(2)
    assert window.sidebar.item(2).text() == "Conflicts (2)"
    shots["conflicts"] = save_shot(window, shots_dir / "window-conflicts.png")

    window.show_panel(1)
    mapping = window.field_mapping_panel
    twitter = mapping.model.row_of("twitterUsername")
    assert twitter is not None
    mapping.model.setData(mapping.model.index(twitter, MappingColumn.CRM_FIELD), "twitter_handle_old")
    mapping.save()
    task = mapping.check_against_crm()
    assert task is not None
    qtbot.waitUntil(task.done, timeout=5000)
    shots["field-mapping"] = save_shot(window, shots_dir / "window-field-mapping.png")

    window.show_panel(0)
    integrations = window.integrations_panel
    integrations.reload(select=hubspot.name)
    test = integrations.test_connection()
    assert test is not None
    qtbot.waitUntil(test.done, timeout=5000)
    shots["integrations-connected"] = save_shot(window, shots_dir / "window-integrations-connected.png")

    opened: list[str] = []
    integrations.open_browser = opened.append
    integrations.sign_in_port = 0
    integrations.reload(select="salesforce-prod")
    sign_in = integrations.sign_in()
    assert sign_in is not None
    qtbot.waitUntil(lambda: bool(opened), timeout=5000)
    shots["integrations-sign-in"] = save_shot(window, shots_dir / "window-integrations-sign-in.png")
    integrations.cancel_sign_in()
    qtbot.waitUntil(sign_in.done, timeout=5000)

    for name, image in shots.items():
        assert distinct_colours(image) > 20, f"{name} looks blank"
