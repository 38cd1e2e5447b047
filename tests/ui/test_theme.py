"""The resources folder is found in a checkout and in an installed wheel; icons and the stylesheet load."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QLineEdit
from pytestqt.qtbot import QtBot

import crm_desktop.resources_path as resources_path
from crm_desktop.resources_path import resource_file, resources_dir
from crm_desktop.ui.theme import app_icon, icon, stylesheet

REPO = Path(__file__).resolve().parents[2]
ICONS = ["crm-desktop.svg", "integrations.svg", "field-mapping.svg", "conflicts.svg", "sync-monitor.svg"]


def test_a_source_checkout_uses_the_repository_resources() -> None:
    assert resources_dir() == REPO / "resources"


def fake_install(root: Path, *, packaged: bool, checkout: bool, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = root / "crm_desktop"
    package.mkdir(parents=True)
    for folder, wanted in ((package / "resources", packaged), (root / "resources", checkout)):
        if wanted:
            folder.mkdir()
            (folder / "style.qss").write_text("QWidget {}", encoding="utf-8")
    monkeypatch.setattr(resources_path, "__file__", str(package / "resources_path.py"))
    return package


def test_an_installed_wheel_uses_the_packaged_resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = fake_install(tmp_path, packaged=True, checkout=True, monkeypatch=monkeypatch)
    assert resources_dir() == package / "resources"


def test_a_checkout_layout_is_found_next_to_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(tmp_path, packaged=False, checkout=True, monkeypatch=monkeypatch)
    assert resources_dir() == tmp_path / "resources"


def test_missing_resources_say_where_they_were_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_install(tmp_path, packaged=False, checkout=False, monkeypatch=monkeypatch)
    with pytest.raises(FileNotFoundError, match="resources folder is missing") as error:
        resources_dir()
    assert str(tmp_path / "resources") in str(error.value)


def test_a_missing_resource_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match=r"icons/nope\.svg"):
        resource_file("icons", "nope.svg")


@pytest.mark.parametrize("name", ICONS)
def test_every_icon_renders(qapp: QApplication, name: str) -> None:
    pixmap = icon(name).pixmap(32, 32)
    assert not pixmap.isNull()
    image = pixmap.toImage()
    drawn = sum(1 for y in range(32) for x in range(32) if image.pixelColor(x, y).alpha() > 0)
    assert drawn > 60, f"{name} draws almost nothing"


def test_the_app_icon_is_opaque_in_the_middle(qapp: QApplication) -> None:
    image = app_icon().pixmap(64, 64).toImage()
    assert image.pixelColor(32, 32).alpha() == 255
    assert image.pixelColor(0, 0).alpha() == 0, "rounded corners stay transparent"


def test_the_stylesheet_applies_without_qt_complaining(qtbot: QtBot, styled_app: QApplication) -> None:
    text = stylesheet()
    assert "QListWidget#sidebar" in text
    edit = QLineEdit()
    qtbot.addWidget(edit)
    edit.setProperty("invalid", True)
    edit.show()
    qtbot.waitExposed(edit)
    assert styled_app.styleSheet() == text
