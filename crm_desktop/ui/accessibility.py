"""Accessible names: every control a screen reader can reach says what it is.

Most controls get their name where they are built. For the rest, the name a sighted user reads next to the
control is given to it when it is first polished: its label (a buddy or a form row), its own text, its
placeholder. A control with none of these stays unnamed, and :func:`unnamed_controls` finds it (the test suite
walks every panel and dialog with it).
"""

from __future__ import annotations

import logging
import re

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QBoxLayout,
    QComboBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTabBar,
    QTextEdit,
    QWidget,
)

logger = logging.getLogger(__name__)

#: What a user acts on: these need a name.
INTERACTIVE = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView, QAbstractSlider,
               QTextEdit, QPlainTextEdit, QTabBar)
#: Qt's own parts of a bigger control (a scroll bar, a table's header and corner, a spin box's text field): the
#: control they belong to carries the name.
_QT_PARTS = (QScrollBar, QHeaderView)


def _clean(text: str) -> str:
    """``&Save…`` -> ``Save``: mnemonics, ellipses and trailing colons are not part of a name."""
    text = re.sub(r"&(?!&)", "", text).replace("&&", "&")
    return text.replace("…", "").replace("...", "").strip().rstrip(":").strip()


def is_qt_part(widget: QWidget) -> bool:
    """Whether ``widget`` is an inner part of another control rather than a control of its own."""
    if isinstance(widget, _QT_PARTS) or widget.objectName().startswith("qt_"):
        return True
    if widget.metaObject().className() == "QTableCornerButton":
        return True
    # A combo box's or spin box's own text field or pop-up list; a tab bar's scroll arrows; a text field's clear
    # button.
    parent = widget.parentWidget()
    grandparent = parent.parentWidget() if parent is not None else None
    return (isinstance(parent, QComboBox | QAbstractSpinBox | QTabBar | QLineEdit)
            or isinstance(grandparent, QComboBox)
            or (isinstance(parent, QAbstractScrollArea) and parent.viewport() is widget))


def takes_tab(widget: QWidget) -> bool:
    """Whether Tab stops on ``widget`` itself (not on a control it hands the focus to)."""
    return (widget.focusPolicy() & Qt.FocusPolicy.TabFocus) == Qt.FocusPolicy.TabFocus and widget.focusProxy() is None


def needs_name(widget: QWidget) -> bool:
    """Whether ``widget`` is a control of its own that a screen reader reaches: one a user acts on, or anything else
    Tab stops on (a scroll area, a chart), which a screen reader announces when the focus lands there."""
    return (isinstance(widget, INTERACTIVE) or takes_tab(widget)) and not is_qt_part(widget)


def _label_of(widget: QWidget) -> str:
    window = widget.window()
    for label in window.findChildren(QLabel):
        if label.buddy() is widget and label.text():
            return _clean(label.text())
    parent = widget.parentWidget()
    layout = parent.layout() if parent is not None else None
    forms = [layout] if isinstance(layout, QFormLayout) else []
    if parent is not None:
        forms += parent.findChildren(QFormLayout)
    for form in forms:
        row_label = form.labelForField(widget)
        if isinstance(row_label, QLabel) and row_label.text():
            return _clean(row_label.text())
    # "Integration [combo]": the label just before the control in its row.
    for row in parent.findChildren(QBoxLayout) if parent is not None else []:
        position = row.indexOf(widget)
        item = row.itemAt(position - 1) if position > 0 else None
        before = item.widget() if item is not None else None
        if isinstance(before, QLabel) and before.text() and before.buddy() is None:
            return _clean(before.text())
    return ""


def derived_name(widget: QWidget) -> str:
    """The name a sighted user would give the control: its label, its text, or its placeholder ("" if none)."""
    label = _label_of(widget)
    if label:
        return label
    if isinstance(widget, QAbstractButton) and widget.text():
        return _clean(widget.text())
    if isinstance(widget, QLineEdit) and widget.placeholderText():
        return _clean(widget.placeholderText())
    editor = widget.lineEdit() if isinstance(widget, QComboBox) else None
    if editor is not None and editor.placeholderText():
        return _clean(editor.placeholderText())
    return ""


def name_control(widget: QWidget) -> bool:
    """Give an unnamed control the name it shows; return whether it has a name now."""
    if widget.accessibleName():
        return True
    name = derived_name(widget)
    if name:
        widget.setAccessibleName(name)
    return bool(name)


def name_controls(root: QWidget) -> None:
    """Name every unnamed control under ``root`` (and ``root``) from what it shows."""
    for widget in [root, *root.findChildren(QWidget)]:
        if needs_name(widget):
            name_control(widget)


def unnamed_controls(root: QWidget) -> list[QWidget]:
    """The controls under ``root`` still without an accessible name."""
    return [w for w in [root, *root.findChildren(QWidget)] if needs_name(w) and not w.accessibleName()]


class AccessibleNames(QObject):
    """An application event filter naming each control from what it shows when its window is first shown."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and isinstance(watched, QWidget) and watched.isWindow():
            name_controls(watched)
        return False


def install_accessible_names(app: QApplication) -> AccessibleNames:
    """Name the controls of every window the app shows (kept alive by the app)."""
    names = AccessibleNames(app)
    app.installEventFilter(names)
    return names
