"""The Sync Monitor shows every run the app starts as it goes, not only its own: a local API batch posted over
loopback (in the sync process when large), People's "Sync this one now", the panel's own "Retry failed"; and a run
cancelled mid-way (the app quitting) counts in the health line and figures with what it did before it stopped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import qasync
from pytestqt.qtbot import QtBot

from crm_desktop.api.server import LocalApiServer
from crm_desktop.app.api_access import ApiTokens
from crm_desktop.app.people import PeopleService
from crm_desktop.app.sync_monitor import HealthState, MetricsRange
from crm_desktop.app.text import plural
from crm_desktop.app.workspace import Workspace
from crm_desktop.domain.outcomes import RecordObject
from crm_desktop.sandbox.core import FaultKind, FaultRule
from crm_desktop.sync.engine import CANCELLED_MESSAGE
from crm_desktop.ui.sync_monitor_panel import SyncMonitorPanel
from crm_desktop.ui.sync_runs_model import RunColumn
from crm_desktop.ui.tasks import BackgroundTasks
from crm_desktop.ui.wording import local_time
from crm_desktop.vault import Vault
from tests.support.cli_runs import run_json
from tests.support.memory_keyring import MemoryKeyring
from tests.support.served_crms import served_crms
from tests.ui.conftest import HubSpotBench, shown, unfinished_tasks

NAME = "hubspot-marketing"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def panel(qtbot: QtBot, hubspot: HubSpotBench, qasync_loop: qasync.QEventLoop) -> Iterator[SyncMonitorPanel]:
    """The panel on a workspace whose runs go to the sync worker, as in the app."""
    hubspot.workspace.sync.run_off_thread()
    widget = shown(qtbot, SyncMonitorPanel(hubspot.workspace.monitor, BackgroundTasks()), 1100, 700)
    qtbot.waitUntil(lambda: NAME in widget.health_board.rows, timeout=5000)
    yield widget


def cells(panel: SyncMonitorPanel, row: int, *columns: RunColumn) -> list[Any]:
    return [panel.runs_model.index(row, column).data() for column in columns]


def state_text(panel: SyncMonitorPanel, name: str = NAME) -> str:
    return panel.health_board.rows[name].state_label.text()


def watch_while_running(qtbot: QtBot, panel: SyncMonitorPanel, task: asyncio.Task[Any], name: str = NAME
                        ) -> dict[str, bool]:
    """What the panel showed while ``task`` ran: the health line syncing, its progress line with figures, the
    panel's progress text naming the integration, the run's row as running."""
    seen = {"syncing": False, "line": False, "figures": False, "progress": False, "row": False}
    row = panel.health_board.rows[name]

    def look() -> bool:
        seen["syncing"] |= "Syncing" in state_text(panel, name)
        seen["line"] |= row.progress_bar.isVisible()
        seen["figures"] |= row.progress_bar.isVisible() and "pushing contacts" in row.progress_label.text()
        seen["progress"] |= panel.progress_label.text().startswith(f"“{name}”: ")
        seen["row"] |= panel.runs_model.rowCount() > 0 and cells(panel, 0, RunColumn.STATUS) == ["Running"]
        return task.done()

    qtbot.waitUntil(look, timeout=30_000)
    return seen


def post_batch(qtbot: QtBot, panel: SyncMonitorPanel, workspace: Workspace, name: str, count: int
               ) -> dict[str, bool]:
    """POST ``count`` contacts to the local API's batch-sync route of ``name``, served over loopback on the
    panel's loop; what the panel showed while the push ran."""
    server = LocalApiServer(workspace, free_port())
    token = ApiTokens(workspace.vault).current()
    contacts = [{"email": f"fan{n}@example.com", "firstName": "Fan", "lastName": f"No {n}"} for n in range(count)]

    async def post() -> httpx.Response:
        base = await server.start()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                return await client.post(f"/api/crm/integrations/{name}/contacts/batch-sync", json=contacts,
                                         headers={"Authorization": f"Bearer {token}"})
        finally:
            await server.stop()

    assert panel.progress_label.text() == panel.IDLE_TEXT
    task = asyncio.get_event_loop().create_task(post())
    seen = watch_while_running(qtbot, panel, task, name)
    answer = task.result()
    assert answer.status_code == 200, answer.text
    assert answer.json()["summary"]["created"] == count
    return seen


def ended_and_shown(qtbot: QtBot, panel: SyncMonitorPanel, name: str, created: int) -> None:
    """The run ended: no progress left, its row's figures and the health line at once, not at the next watch."""
    panel.runs_watch.stop()  # only the run's end can show them now, however long the reads take on a loaded host
    qtbot.waitUntil(lambda: cells(panel, 0, RunColumn.STATUS) == ["Succeeded"], timeout=10_000)
    assert cells(panel, 0, RunColumn.INTEGRATION, RunColumn.TRIGGER, RunColumn.CREATED) == [
        name, "Automatic", str(created)]
    assert panel.progress_label.text() == panel.IDLE_TEXT
    assert not panel.health_board.rows[name].progress_bar.isVisible()
    qtbot.waitUntil(lambda: "In sync" in state_text(panel, name), timeout=10_000)
    assert not panel.live_refresh.isActive()
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_a_local_api_batch_posted_over_loopback_shows_as_it_runs_and_its_figures_when_it_ends(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """Seen with a 5,000-contact batch: the panel said "No sync running." and the line "In sync" for the whole push,
    then the run appeared five seconds after it had ended."""
    hubspot.sandbox.config.latency_ms = 150.0  # each batch of the push takes a moment: it is seen while it runs
    seen = post_batch(qtbot, panel, hubspot.workspace, NAME, 250)
    assert seen == {"syncing": True, "line": True, "figures": True, "progress": True, "row": True}
    ended_and_shown(qtbot, panel, NAME, 250)


@pytest.mark.loopback
@pytest.mark.timeout(120)
def test_a_large_local_api_batch_run_in_the_sync_process_shows_as_it_runs(
    qtbot: QtBot, qasync_loop: qasync.QEventLoop, tmp_path: Path, keyring_backend: MemoryKeyring
) -> None:
    """A batch of 200 contacts or more is pushed from the sync process, as a full run: its progress comes back from
    there, and the window shows it."""
    with served_crms() as served:
        workspace = Workspace.open(tmp_path / "data", vault=Vault(backend=keyring_backend))
        try:
            served.connect(workspace)
            workspace.sync.run_off_thread()
            assert workspace.run_syncs_in_process()
            panel = shown(qtbot, SyncMonitorPanel(workspace.monitor, BackgroundTasks()), 1100, 700)
            qtbot.waitUntil(lambda: "hubspot" in panel.health_board.rows, timeout=5000)
            served.hubspot.config.latency_ms = 150.0
            seen = post_batch(qtbot, panel, workspace, "hubspot", 250)
            assert workspace.sync.sync_process is not None and workspace.sync.sync_process.pid is not None
            assert seen == {"syncing": True, "line": True, "figures": True, "progress": True, "row": True}
            ended_and_shown(qtbot, panel, "hubspot", 250)
            assert served.hubspot.summary()["contacts"] == 250
        finally:
            workspace.close()


def test_people_s_sync_this_one_now_shows_as_running(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    workspace = hubspot.workspace
    hubspot.sandbox.config.latency_ms = 400.0
    people = PeopleService(workspace.database, workspace.social, workspace.sync)
    task = asyncio.get_event_loop().create_task(people.sync_one(NAME, RecordObject.CONTACT, person_id(hubspot)))
    seen = watch_while_running(qtbot, panel, task)
    assert task.result().outcome == "created"
    # One record: its only figures come as it ends; until then the line says it is starting.
    assert seen["syncing"] and seen["line"] and seen["progress"] and seen["row"], seen
    panel.runs_watch.stop()  # the row's figures come with the run's end, not with the next watch
    qtbot.waitUntil(lambda: cells(panel, 0, RunColumn.STATUS, RunColumn.TRIGGER, RunColumn.CREATED)
                    == ["Succeeded", "Manual", "1"], timeout=10_000)
    assert panel.progress_label.text() == panel.IDLE_TEXT
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def test_the_panel_s_retry_failed_shows_as_running(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench
) -> None:
    """"Retry failed" said only "Sending the failed records of run 1 again…", the line "Some records failed" and the
    progress "No sync running." while the records went."""
    hubspot.sandbox.faults.replace([FaultRule(FaultKind.INVALID_RECORD, at=[2])])
    first = asyncio.get_event_loop().create_task(hubspot.workspace.sync.sync(NAME))
    qtbot.waitUntil(first.done, timeout=10_000)
    assert first.result().counts["failed"] == 1
    panel.refresh_runs()
    assert panel.select_run(first.result().run_id or 0)
    qtbot.waitUntil(panel.retry_button.isEnabled, timeout=5000)
    hubspot.sandbox.config.latency_ms = 400.0

    retry = panel.retry_selected()
    assert retry is not None
    seen = watch_while_running(qtbot, panel, retry)
    assert seen["syncing"] and seen["line"] and seen["progress"] and seen["row"], seen
    assert panel.notice.text().startswith("Retried 1 failed record of run 1 as run 2: 1 created.")
    assert cells(panel, 0, RunColumn.STATUS, RunColumn.CREATED) == ["Succeeded", "1"]
    assert panel.progress_label.text() == panel.IDLE_TEXT
    qtbot.waitUntil(lambda: not unfinished_tasks(), timeout=5000)


def person_id(hubspot: HubSpotBench) -> int:
    store = hubspot.workspace.sync.store
    return store.local_by_emails(RecordObject.CONTACT, ["person1@example.com"])["person1@example.com"].id


def test_a_run_cancelled_mid_push_counts_in_the_health_line_with_what_it_did(
    panel: SyncMonitorPanel, qtbot: QtBot, hubspot: HubSpotBench, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seen after a Quit mid-sync: the line said "Not synced yet" and the charts counted nothing of a run that had
    created 200 contacts in the CRM; ``runs list`` and ``runs show`` say what the panel says."""
    workspace = hubspot.workspace
    integration_id = workspace.integrations.get(NAME).id or 0
    hubspot.save_people(600, start=10)
    figures: list[tuple[int, int]] = []
    panel.progress_shown.connect(lambda _text, done, total: figures.append((done, total)))
    panel.sync_now(NAME)
    qtbot.waitUntil(lambda: any(done >= 200 for done, _ in figures), timeout=15_000)
    hubspot.sandbox.config.latency_ms = 1000.0  # the next batch is on its way when the app quits
    qtbot.wait(100)
    workspace.sync.close()  # File > Quit: the sync worker cancels the run and lets it wind down
    qtbot.waitUntil(lambda: not panel.running_integrations, timeout=5000)

    [run] = workspace.sync.runs()
    assert (run.status.value, run.created) == ("cancelled", 200)
    created_in_crm = hubspot.sandbox.summary()["contacts"]
    assert created_in_crm >= 200
    attempt = workspace.monitor.store.latest_attempt(integration_id)
    assert attempt is not None and (attempt.run_id, attempt.status.value) == (run.id, "cancelled")
    assert (attempt.contacts_synced, attempt.records_failed) == (200, 0)
    assert attempt.api_calls == run.api_calls > 0

    [line] = workspace.monitor.health()
    assert line.state is HealthState.CANCELLED
    assert line.reason == ("the last run was cancelled before it finished (200 records created or updated before it "
                           "stopped); the next run picks up where it stopped")
    panel.refresh_health()
    qtbot.waitUntil(lambda: "Cancelled today " in state_text(panel), timeout=10_000)
    label = panel.health_board.rows[NAME].state_label
    assert "#64748b" in label.text(), "grey, as the run's status: nothing was refused"
    assert label.toolTip().startswith("The last run was cancelled before it finished (200 records created")
    assert local_time(attempt.at) in label.toolTip()
    hour = workspace.monitor.metrics(MetricsRange.DAY).points[-1]
    assert (hour.runs, hour.contacts_per_hour) == (1, 200)

    # The panel's row and summary, and the command line, tell the same run.
    panel.refresh_runs()
    assert cells(panel, 0, RunColumn.STATUS, RunColumn.CREATED) == ["Cancelled", "200"]
    assert panel.select_run(run.id)
    assert panel.run_summary.text().splitlines()[2] == f"200 created; {plural(run.api_calls, 'API call')}."
    code, shown_run = run_json(workspace.paths.data_dir, ["runs", "show", str(run.id)], capsys)
    assert code == 0
    assert (shown_run["run"]["status"], shown_run["run"]["counts"]["created"]) == ("cancelled", 200)
    assert shown_run["run"]["message"] == CANCELLED_MESSAGE
    code, listed = run_json(workspace.paths.data_dir, ["runs", "list"], capsys)
    assert [(r["id"], r["status"], r["counts"]["created"]) for r in listed] == [(run.id, "cancelled", 200)]
