"""Settings > Network: proxy, extra CA certificates and trust, reached from the menu, checked before saving."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from PySide6.QtWidgets import QDialogButtonBox, QStyle
from pytestqt.qtbot import QtBot

from crm_desktop.app.settings import SettingKey
from crm_desktop.app.workspace import Workspace
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.network_dialog import NetworkSettingsDialog
from tests.support.memory_keyring import MemoryKeyring


@pytest.fixture
def company_root(tmp_path: Path) -> Path:
    path = tmp_path / "company-root.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def open_from_menu(qtbot: QtBot, workspace: Workspace) -> NetworkSettingsDialog:
    window = MainWindow(workspace)
    qtbot.addWidget(window)
    window.show()
    menus = {action.text(): action.menu() for action in window.menuBar().actions()}
    network = next(action for action in menus["&Settings"].actions() if action.text() == "&Network…")
    network.trigger()
    dialog = window.findChild(NetworkSettingsDialog)
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def save(dialog: NetworkSettingsDialog) -> None:
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()


def test_the_network_dialog_saves_proxy_password_bundle_and_trust(
    qtbot: QtBot, workspace: Workspace, keyring_backend: MemoryKeyring, company_root: Path
) -> None:
    dialog = open_from_menu(qtbot, workspace)
    assert dialog.proxy_edit.text() == "" and dialog.trust_combo.currentData() == "system"
    dialog.proxy_edit.setText("http://ann@proxy.corp:3128")
    dialog.password_edit.setText("pa ss")
    dialog.bundle_edit.setText(str(company_root))
    dialog.trust_combo.setCurrentIndex(dialog.trust_combo.findData("certifi"))
    with qtbot.waitSignal(dialog.accepted):
        save(dialog)
    assert workspace.network.get(SettingKey.PROXY).value == "http://ann:***@proxy.corp:3128"
    assert workspace.network.get(SettingKey.CA_BUNDLE).value == str(company_root.resolve())
    assert workspace.network.get(SettingKey.TRUST).value == "certifi"
    assert list(keyring_backend.entries.values()) == ["pa ss"]
    network = workspace.network.network()
    assert network.proxy is not None and network.proxy.password == "pa ss"

    # Opened again: the password is not shown, and left empty it stays while the user stays.
    again = open_from_menu(qtbot, workspace)
    assert again.proxy_edit.text() == "http://ann@proxy.corp:3128" and again.password_edit.text() == ""
    assert "unchanged" in again.password_edit.placeholderText()
    again.proxy_edit.setText("http://ann@proxy.corp:8080")
    with qtbot.waitSignal(again.accepted):
        save(again)
    assert workspace.network.network().proxy.full == "http://ann:pa%20ss@proxy.corp:8080"  # type: ignore[union-attr]

    # Emptied: the environment's proxies apply again and the keyring entry goes.
    last = open_from_menu(qtbot, workspace)
    last.proxy_edit.setText("")
    with qtbot.waitSignal(last.accepted):
        save(last)
    assert workspace.network.get(SettingKey.PROXY).value is None and keyring_backend.entries == {}


def test_a_refused_value_is_explained_and_nothing_is_saved(
    qtbot: QtBot, workspace: Workspace, tmp_path: Path
) -> None:
    dialog = open_from_menu(qtbot, workspace)
    dialog.proxy_edit.setText("http://proxy.corp:3128")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    dialog.bundle_edit.setText(str(not_pem))
    save(dialog)
    assert dialog.isVisible() and dialog.error_label.isVisible()
    assert dialog.error_label.objectName() == "dialogError", "the error box of every dialog, in both themes"
    assert dialog.error_label.text() == (
        f"ca-bundle: the CA bundle {not_pem} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    )
    assert workspace.network.get(SettingKey.PROXY).value is None, "the valid proxy waits for the whole form"
    dialog.proxy_edit.setText("http://proxy.corp:3128")
    dialog.bundle_edit.setText("")
    dialog.password_edit.setText("secret")
    save(dialog)
    assert "a proxy password needs a user name" in dialog.error_label.text()
    dialog.reject()


def test_the_certificates_field_and_its_button_say_what_they_are(qtbot: QtBot, workspace: Workspace) -> None:
    """In a row of their own layout they got no name from the form's label: a screen reader read the placeholder
    for the field and a bare "Browse" for its button."""
    dialog = open_from_menu(qtbot, workspace)
    assert dialog.bundle_edit.accessibleName() == "Extra CA certificates file"
    assert dialog.browse_button.accessibleName() == "Browse for the extra CA certificates file"


@pytest.mark.parametrize("styled", [False, True], ids=["plain", "app stylesheet"])
def test_the_placeholders_are_whole_at_the_dialogs_minimum_width(
    qtbot: QtBot, workspace: Workspace, request: pytest.FixtureRequest, styled: bool
) -> None:
    """The proxy and certificate placeholders were cut off at the dialog's minimum width."""
    if styled:
        request.getfixturevalue("styled_app")
    dialog = NetworkSettingsDialog(workspace.network)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.resize(1, 1)  # as narrow as the dialog lets itself be
    qtbot.waitUntil(lambda: dialog.width() < 700)
    assert dialog.width() == max(dialog.minimumWidth(), dialog.minimumSizeHint().width())
    for edit in (dialog.proxy_edit, dialog.password_edit, dialog.bundle_edit):
        frame = edit.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, None, edit)
        margins = edit.textMargins()
        needed = edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + margins.left() + margins.right()
        needed += 2 * frame + 2 * 2  # the frame, and the 2 px QLineEdit keeps on either side of its text
        assert edit.width() >= needed, f"{edit.placeholderText()!r}: {edit.width()} < {needed}"
