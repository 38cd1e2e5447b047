"""The resources folder is found in a checkout and in an installed wheel; icons and the stylesheet load; the
window follows the desktop switching between light and dark unless Settings pick one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QLineEdit,
    QPushButton,
    QStyle,
    QStyleOptionButton,
    QWidget,
)
from pytestqt.qtbot import QtBot

import crm_desktop.resources_path as resources_path
from crm_desktop.app.preferences import ThemeChoice
from crm_desktop.app.workspace import Workspace
from crm_desktop.resources_path import resource_file, resources_dir
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.theme import Theme, app_icon, apply_theme, current_theme, icon, palette, stylesheet
from tests.support.colours import contrast

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


@pytest.fixture
def light_again(qapp: QApplication) -> Iterator[QApplication]:
    """The app starts light and is put back in its plain light look afterwards."""
    apply_theme(qapp, Theme.LIGHT)
    yield qapp
    apply_theme(qapp, Theme.LIGHT)
    qapp.setStyleSheet("")


def open_window(qtbot: QtBot, workspace: Workspace, choice: ThemeChoice) -> MainWindow:
    workspace.preferences.update(theme=choice)
    window = MainWindow(workspace, tray_available=False)
    qtbot.addWidget(window)
    return window


def desktop_switches_to(scheme: Qt.ColorScheme) -> None:
    """What the platform does when the desktop's light or dark mode changes (an offscreen platform never does;
    tests/ui/test_theme_follows_desktop.py has Qt's xcb platform do it on Xvfb, told by a desktop portal)."""
    QGuiApplication.styleHints().colorSchemeChanged.emit(scheme)


def dressed_in(app: QApplication, theme: Theme) -> bool:
    window_colour = app.palette().color(QPalette.ColorRole.Window)
    return (current_theme(app) is theme and app.styleSheet() == stylesheet(theme)
            and window_colour == palette(theme).color(QPalette.ColorRole.Window))


def test_following_the_system_switches_with_the_desktop(
    qtbot: QtBot, workspace: Workspace, light_again: QApplication
) -> None:
    app = light_again
    window = open_window(qtbot, workspace, ThemeChoice.SYSTEM)
    desktop_switches_to(Qt.ColorScheme.Dark)
    assert dressed_in(app, Theme.DARK)
    desktop_switches_to(Qt.ColorScheme.Light)
    assert dressed_in(app, Theme.LIGHT)
    window.desk.quit()


def test_a_theme_picked_in_settings_overrides_the_desktop(
    qtbot: QtBot, workspace: Workspace, light_again: QApplication
) -> None:
    app = light_again
    window = open_window(qtbot, workspace, ThemeChoice.LIGHT)
    desktop_switches_to(Qt.ColorScheme.Dark)
    assert dressed_in(app, Theme.LIGHT), "light was picked: the desktop's dark mode is ignored"

    window.desk.apply_preferences(workspace.preferences.update(theme=ThemeChoice.DARK))
    assert dressed_in(app, Theme.DARK)
    desktop_switches_to(Qt.ColorScheme.Light)
    assert dressed_in(app, Theme.DARK), "dark was picked: the desktop's light mode is ignored"

    window.desk.apply_preferences(workspace.preferences.update(theme=ThemeChoice.SYSTEM))
    desktop_switches_to(Qt.ColorScheme.Dark)
    assert dressed_in(app, Theme.DARK), "back to following the desktop"
    desktop_switches_to(Qt.ColorScheme.Light)
    assert dressed_in(app, Theme.LIGHT)
    window.desk.quit()


@pytest.mark.parametrize("theme", list(Theme))
def test_a_disabled_main_button_looks_disabled(qtbot: QtBot, light_again: QApplication, theme: Theme) -> None:
    # In the dark theme the disabled accent was a dimmer blue with white text: it read as a button to press.
    apply_theme(light_again, theme)
    shades = []
    for enabled in (True, False):
        button = QPushButton("Save")
        qtbot.addWidget(button)
        button.setProperty("primary", True)
        button.setEnabled(enabled)
        button.resize(120, 32)
        button.show()
        qtbot.waitExposed(button)
        shades.append(button.grab().toImage().pixelColor(6, 16))
    enabled_shade, disabled_shade = shades
    assert enabled_shade.saturation() > 150, "the main button wears the accent"
    distance = sum(abs(a - b) for a, b in zip(enabled_shade.getRgb()[:3], disabled_shade.getRgb()[:3], strict=True))
    assert distance > 120, f"disabled {disabled_shade.name()} is too close to enabled {enabled_shade.name()}"


@pytest.mark.parametrize("theme", list(Theme))
@pytest.mark.parametrize("checked", [False, True])
def test_a_tick_box_shows_ticked_or_not_on_the_window(
    qtbot: QtBot, light_again: QApplication, theme: Theme, checked: bool
) -> None:
    """Seen in the dark theme: an empty tick box ("Preview first" once turned off, "Don't ask again", the
    transforms and "Take other" lists) was outlined in a shade of the window's own colour, at 1.1:1, invisible."""
    apply_theme(light_again, theme)
    page = QWidget()
    qtbot.addWidget(page)
    box = QCheckBox("Preview first", page)
    box.setChecked(checked)
    page.resize(200, 40)
    page.show()
    qtbot.waitExposed(page)
    option = QStyleOptionButton()
    box.initStyleOption(option)
    indicator = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, option, box)
    image = box.grab().toImage()
    window = palette(theme).color(QPalette.ColorRole.Window)
    outline = max(contrast(image.pixelColor(x, indicator.center().y()), window)
                  for x in range(indicator.left(), indicator.center().x()))
    assert outline >= 3.0, f"the box's edge reads at {outline:.1f}:1 on the {theme.value} window"
