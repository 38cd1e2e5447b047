"""Keys and sizes a marketer meets on a common laptop's window: the sync preview's Enter cancels while it is still
being worked out."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from crm_desktop.ui.sync_preview_dialog import SyncPreviewDialog


def test_enter_in_the_sync_preview_cancels_while_the_plans_are_worked_out(
    qtbot: QtBot, styled_app: QApplication
) -> None:
    """Cancel was made the default before it was in the dialog, so the dialog never knew: shown, the button box
    made the disabled Proceed the default, and Enter did nothing. While the plans are worked out, Enter is Cancel
    (once they are in it is Proceed: tests/ui/test_table_keys.py)."""
    dialog = SyncPreviewDialog(["HubSpot (demo)"])
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert not dialog.proceed_button.isEnabled()
    assert dialog.cancel_button.isDefault() and not dialog.proceed_button.isDefault()
    answers: list[str] = []
    dialog.accepted.connect(lambda: answers.append("proceed"))
    dialog.rejected.connect(lambda: answers.append("cancel"))
    QTest.keyClick(dialog.dont_ask_check, Qt.Key.Key_Return)  # a box that leaves Enter to the dialog
    assert answers == ["cancel"]
