"""The run and import listeners of the sync service: a failing one is logged and never stops the others."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crm_desktop.app.sync_service import Listeners


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[tuple[Path, int]] = []

    def broken(path: Path, rows: int) -> None:
        raise RuntimeError("listener bug")

    listeners: Listeners[[Path, int]] = Listeners("an import")
    listeners.add(broken)
    listeners.add(lambda path, rows: heard.append((path, rows)))

    with caplog.at_level(logging.ERROR, logger="crm_desktop.app.sync_service"):
        listeners.tell("people.csv", Path("people.csv"), 3)

    assert heard == [(Path("people.csv"), 3)]
    assert [r.getMessage() for r in caplog.records] == ["an import listener failed on people.csv"]


def test_a_removed_listener_hears_nothing_and_removing_twice_is_harmless() -> None:
    heard: list[str] = []
    listeners: Listeners[[str]] = Listeners("a run")
    listeners.add(heard.append)
    listeners.tell("the run of hs", "first")
    listeners.remove(heard.append)
    listeners.remove(heard.append)
    listeners.tell("the run of hs", "second")
    assert heard == ["first"]
