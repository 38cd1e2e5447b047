"""The scheduler while the window is open: due syncs run from the minute timer's slot and show in the monitor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import qasync
from pytestqt.qtbot import QtBot

from crm_desktop.app.sync_service import SyncResult, SyncTrigger
from crm_desktop.domain.social import ConversationEvent
from crm_desktop.store.models import utcnow
from crm_desktop.ui.main_window import MainWindow
from crm_desktop.ui.scheduler import MAX_TIMER_MS, timer_interval_ms
from crm_desktop.ui.sync_runs_model import RunColumn
from tests.ui.conftest import HubSpotBench, unfinished_tasks


@pytest.mark.parametrize(
    ("seconds", "milliseconds"),
    [(60, 60_000), (0.0004, 1), (0, 1), (-5, 1), (24 * 86400, 2_073_600_000), (30 * 86400, MAX_TIMER_MS),
     (1e12, MAX_TIMER_MS)],
)
def test_timer_intervals_never_overflow_qts_int32(seconds: float, milliseconds: int) -> None:
    assert timer_interval_ms(seconds) == milliseconds


def test_a_nan_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="number of seconds"):
        timer_interval_ms(float("nan"))


@pytest.fixture
def window(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[MainWindow]:
    hubspot.add_integration("hubspot-auto", auto_sync=True)
    shown = MainWindow(hubspot.workspace)
    qtbot.addWidget(shown)
    shown.show()
    qtbot.waitExposed(shown)
    yield shown
    shown.close()


def scheduled_runs(window: MainWindow) -> list[tuple[object, object, object]]:
    model = window.sync_monitor_panel.runs_model
    return [
        tuple(model.index(row, c).data() for c in (RunColumn.INTEGRATION, RunColumn.TRIGGER, RunColumn.DIRECTION))
        for row in range(model.rowCount())
    ]


def test_the_timer_runs_every_minute_while_the_window_is_open(window: MainWindow, qtbot: QtBot) -> None:
    scheduler = window.scheduler
    assert scheduler.active
    assert scheduler.timer.interval() == 60_000
    assert scheduler.first_check.isActive() and scheduler.first_check.isSingleShot()
    window.close()
    assert not scheduler.active
    assert not scheduler.first_check.isActive()


def test_a_due_sync_runs_from_the_timer_slot_and_shows_in_the_monitor(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    monitor = window.sync_monitor_panel
    started: list[list[str]] = []
    window.scheduler.batch_started.connect(started.append)
    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=10_000) as finished:
        window.scheduler.timer.timeout.emit()  # what the minute timer does
        assert monitor.progress_label.text() == "“hubspot-auto”: scheduled sync running…"
        assert window.scheduler.check_due() is not None, "a check while the batch runs follows it"
    assert started == [["hubspot-auto"]], "only the integration with auto-sync is scheduled"
    [(name, result)] = finished.args[0]
    assert name == "hubspot-auto" and not isinstance(result, Exception)
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)

    assert scheduled_runs(window) == [("hubspot-auto", "Scheduled", "Two-way")]
    assert monitor.notice.text().startswith("Scheduled: Synced “hubspot-auto”: 3 created")
    assert monitor.progress_label.text() == monitor.IDLE_TEXT
    assert hubspot.sandbox.summary()["contacts"] == 3

    # Nothing is due a minute later: the next full sync is 6 h away, the next push of new contacts 1 h.
    assert window.scheduler.check_due() is None
    assert len(hubspot.workspace.sync.runs()) == 1


def test_a_batch_shows_only_the_running_sync_as_running_and_the_others_waiting(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: every integration of a scheduled batch read "scheduled sync running…" while the batch runs them one by
    one; those whose turn had not come were only waiting."""
    hubspot.add_integration("hubspot-later", auto_sync=True)
    monitor = window.sync_monitor_panel
    monitor.reload_integrations()
    qtbot.waitUntil(lambda: "hubspot-later" in monitor.health_board.rows, timeout=5000)
    names = ("hubspot-auto", "hubspot-later")

    def lines() -> dict[str, str]:
        rows = monitor.health_board.rows
        return {name: "" if rows[name].progress_label.isHidden() else rows[name].progress_label.text()
                for name in names}

    seen: list[tuple[str, dict[str, str], str]] = []
    sync = hubspot.workspace.sync.sync

    async def looked_at(name: str, *args: object, **kwargs: object) -> SyncResult:
        seen.append((name, lines(), monitor.progress_label.text()))
        return await sync(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hubspot.workspace.sync, "sync", looked_at)
    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=20_000):
        window.scheduler.timer.timeout.emit()
        assert lines() == {"hubspot-auto": "scheduled sync running…",
                           "hubspot-later": "waiting for “hubspot-auto”…"}
    assert seen == [
        ("hubspot-auto", {"hubspot-auto": "scheduled sync running…", "hubspot-later": "waiting for “hubspot-auto”…"},
         "“hubspot-auto”: scheduled sync running…   ·   “hubspot-later”: waiting for “hubspot-auto”…"),
        ("hubspot-later", {"hubspot-auto": "", "hubspot-later": "scheduled sync running…"},
         "“hubspot-later”: scheduled sync running…"),
    ]
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert lines() == {"hubspot-auto": "", "hubspot-later": ""}
    assert monitor.progress_label.text() == monitor.IDLE_TEXT


def test_pausing_auto_sync_while_a_batch_runs_starts_no_further_sync_of_it(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: "Pause auto-sync" (the tray, Settings) while a scheduled batch synced its first integration said
    "Auto-sync paused: syncs run only when you ask", and the batch then synced the next one all the same."""
    hubspot.add_integration("hubspot-later", auto_sync=True)
    sync = hubspot.workspace.sync.sync
    asked: list[str] = []

    async def paused_meanwhile(name: str, *args: object, **kwargs: object) -> SyncResult:
        asked.append(name)
        window.scheduler.stop()  # what pausing auto-sync does
        return await sync(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hubspot.workspace.sync, "sync", paused_meanwhile)
    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=20_000) as finished:
        window.scheduler.timer.timeout.emit()
    assert asked == ["hubspot-auto"]
    assert [name for name, _ in finished.args[0]] == ["hubspot-auto"]
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert [run.trigger for run in hubspot.workspace.sync.runs()] == ["scheduled"]
    assert window.sync_monitor_panel.progress_label.text() == window.sync_monitor_panel.IDLE_TEXT


def test_a_sync_missed_while_the_app_was_closed_is_caught_up_once(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    store = hubspot.workspace.sync.store
    integration_id = hubspot.workspace.integrations.get("hubspot-auto").id or 0
    for hours_ago in (20, 13):  # two six-hourly syncs ran, then the laptop stayed shut for 13 hours
        run_id = store.start_run(integration_id, SyncTrigger.SCHEDULED, "both")
        store.finish_run(run_id, "succeeded")  # type: ignore[arg-type]
        store.update_run(run_id, started_at=utcnow() - timedelta(hours=hours_ago))
    window.sync_monitor_panel.refresh_runs()

    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=10_000):
        assert window.scheduler.check_due() is not None
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    assert window.scheduler.check_due() is None, "one catch-up run, not one per missed slot"
    assert [run.trigger for run in hubspot.workspace.sync.runs()] == ["scheduled"] * 3
    assert scheduled_runs(window)[0] == ("hubspot-auto", "Scheduled", "Two-way")


def test_a_scheduled_failure_is_a_sentence_in_the_monitor(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    hubspot.workspace.integrations.remove("hubspot-auto")
    hubspot.add_integration("hubspot-revoked", auto_sync=True, token="pat-na1-00000000-0000-0000-0000-000000000000")
    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=10_000):
        assert window.scheduler.check_due() is not None
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    notice = window.sync_monitor_panel.notice
    assert notice.tone == "error"
    assert "hubspot-revoked" in notice.text() and "failed: " in notice.text()


def test_a_due_sync_another_process_is_running_is_no_failure_in_the_monitor(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """Seen with cron's `sync --due` running a long sync while the app was open: each minute's tick, refused the
    integration's lock, put "Scheduled: Sync of “…” failed: a sync of … is already running" in red in the monitor,
    though nothing failed: the sync was under way and the tick only had to wait."""
    integration_id = hubspot.workspace.integrations.get("hubspot-auto").id or 0
    assert hubspot.workspace.sync.store.acquire_lock(integration_id, owner="other-host:4242")
    with qtbot.waitSignal(window.scheduler.batch_finished, timeout=10_000):
        assert window.scheduler.check_due() is not None
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)
    notice = window.sync_monitor_panel.notice
    assert notice.tone != "error" and "failed" not in notice.text(), notice.text()
    assert notice.text().startswith(
        "Scheduled: a sync of 'hubspot-auto' is already running (on other-host, process 4242); last heartbeat ")
    assert notice.text().endswith("; the scheduled sync of “hubspot-auto” waits for the next check.")


def test_with_the_api_off_the_scheduler_runs_the_hourly_contact_push_once(
    window: MainWindow, qtbot: QtBot, hubspot: HubSpotBench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_DESKTOP_API_PORT", "off")  # the window alone: no local API, so no API workflows
    hubspot.workspace.social.record_conversations([ConversationEvent.model_validate({
        "conversationId": "ig-c-9", "platform": "instagram", "startedAt": "2026-11-20T10:00:00Z",
        "participant": {"email": "nia@example.com", "firstName": "Nia", "username": "nia.k"}})])
    before = hubspot.sandbox.summary()["contacts"]
    task = window.scheduler.check_hourly()
    assert task is not None
    qtbot.waitUntil(task.done, timeout=10_000)
    outcomes = task.result()
    assert isinstance(outcomes, list)
    [(name, result)] = outcomes
    assert name == "hubspot-auto" and isinstance(result, SyncResult) and result.counts.get("created") == 1
    assert hubspot.sandbox.summary()["contacts"] == before + 1
    assert [run.trigger for run in hubspot.workspace.sync.runs()] == ["scheduled"]
    # A second tick in the same hour starts nothing.
    assert window.scheduler.check_hourly() is None
    assert len(hubspot.workspace.sync.runs()) == 1
