"""Render the window, each panel and the integration dialog to PNG, and check something sensible was drawn.

Set ``CRM_DESKTOP_SHOTS=/tmp/crm-shots`` to keep the images for a look; by default they go to the test's tmp dir.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.models import Integration, Provider, SyncConfig, SyncDirection
from crm_desktop.ui.integrations_panel import IntegrationDialog
from crm_desktop.ui.main_window import MainWindow


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


def save_shot(widget: QWidget, path: Path) -> QImage:
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
    window.resize(1120, 720)
    window.show()
    qtbot.waitExposed(window)
    for index, entry in enumerate(window.panels):
        window.show_panel(index)
        name = entry.title.lower().replace(" ", "-")
        image = save_shot(window, shots_dir / f"window-{name}.png")
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
