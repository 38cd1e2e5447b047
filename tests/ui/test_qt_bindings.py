"""The Qt bindings keep Python's reference counts right: a busy GUI must not wear None away and abort at exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

CALLS = 2_000


def none_references_lost(call: Callable[[], object]) -> int:
    """How many references to None ``CALLS`` calls of ``call`` took away (0 when the bindings are sound)."""
    before = sys.getrefcount(None)
    for _ in range(CALLS):
        call()
    return before - sys.getrefcount(None)


def test_qt_calls_that_return_nothing_keep_nones_reference_count(qapp: QApplication) -> None:
    # PySide6 6.12.0 returned None from such calls without a reference of its own: every call took one away, and
    # once a sync's worth of timer and event-loop calls had gone by, the interpreter freed None at exit and
    # aborted ("Fatal Python error: none_dealloc"). Unless None is immortal (CPython 3.12+), that is.
    holder = QObject()
    timer = QTimer()
    calls: dict[str, Callable[[], object]] = {
        "QObject.setObjectName (void)": lambda: holder.setObjectName("outbox"),
        "QTimer.stop (void)": timer.stop,
        "QCoreApplication.processEvents (void)": qapp.processEvents,
        "QObject.parent (a null pointer)": holder.parent,
    }
    for name, call in calls.items():
        assert none_references_lost(call) < CALLS // 2, f"{name} loses a reference to None per call"
